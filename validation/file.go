package validation

import "github.com/ambit-authz/ambit/tuple"

// File is one YAML document of a validation file. A file holds several
// documents when they are separated by `---`; each stands alone (its own
// schema, relationships and expectations).
type File struct {
	// Name is the file name given to Parse.
	Name string
	// Doc is the document's position in the YAML stream, the first being 1.
	Doc int
	// Schema is the schema text, from `schema` or read from `schemaFile`.
	Schema string
	// SchemaLine is the line of Name on which the schema text begins (1 when
	// the schema came from SchemaFile). Use SchemaPos to place any position in it.
	SchemaLine int
	// SchemaFile is the path of the file the schema was read from (the
	// `schemaFile` key joined to Name's directory), or "" when the schema is
	// inline.
	SchemaFile string
	// Relationships are the lines of `relationships`, in order.
	Relationships []Rel
	// Assertions are the checks of `assertions`.
	Assertions Assertions
	// Validation is the `validation` map in file order: for each resource
	// and permission, the complete set of subjects expected to have it.
	Validation []Expected

	// schemaLines[i] is the line of Name holding line i+1 of an inline
	// Schema, or 0 where it is not known; schemaCols[i] is what to add to a
	// column of that line to get the column in Name, or -1 when unknown.
	schemaLines []int
	schemaCols  []int
}

// SchemaPos maps a position in Schema (1-based line and column) to the file,
// line and column that hold it, so that a schema compile error can be
// reported against the YAML file. YAML may fold or unescape text: a line that
// cannot be traced back is placed at SchemaLine, and a column that cannot be
// is returned as 0.
func (f *File) SchemaPos(line, col int) (file string, fileLine, fileCol int) {
	if f.SchemaFile != "" {
		return f.SchemaFile, line, col
	}
	if line < 1 || line > len(f.schemaLines) || f.schemaLines[line-1] == 0 {
		return f.Name, f.SchemaLine, 0
	}
	fileLine = f.schemaLines[line-1]
	if off := f.schemaCols[line-1]; col >= 1 && off >= 0 {
		fileCol = col + off
	}
	return f.Name, fileLine, fileCol
}

// Rel is one relationship of the relationships block and its line.
type Rel struct {
	tuple.Relationship
	Line int
}

// Assertions are the three lists of checks. A document without assertions
// has all three empty.
type Assertions struct {
	// True: the check must answer "has permission".
	True []Assertion
	// False: the check must answer "no permission".
	False []Assertion
	// Caveated: the check must answer "has permission if the missing caveat
	// context allows it" (SpiceDB's CONDITIONAL_PERMISSION).
	Caveated []Assertion
}

// Assertion is one check: does Rel.Subject have Rel.Relation (a relation or a
// permission) on Rel.Resource, given Context? Rel never carries a caveat or an
// expiration.
type Assertion struct {
	Rel tuple.Relationship
	// Context is the JSON object written after ` with `, or nil.
	Context map[string]any
	Line    int
	// Text is the entry as written in the file.
	Text string
}

// Expected is one entry of the validation map: every subject that has
// Permission on Resource, and how each is reached. validation/oracle checks
// that each listed subject holds the permission (with Check) and that no
// unlisted one does (with LookupSubjects); it does not compare how subjects
// are reached (ExpectedSubject.Via).
type Expected struct {
	Resource   tuple.ObjectRef
	Permission string
	Line       int
	Subjects   []ExpectedSubject
}

// ExpectedSubject is one string of an expected-relations list:
//
//	[user:ana] is <document:1#viewer>/<group:g#member>
//	[user:ana[...]] is <document:1#viewer>              (caveated)
//	[user:* - {user:bob, user:tom[...]}] is <document:1#viewer>
type ExpectedSubject struct {
	Subject tuple.SubjectRef
	// Caveated is true when the subject is written `type:id[...]`: it has
	// the permission only if a caveat allows it.
	Caveated bool
	// Excluded lists the subjects removed from a wildcard subject.
	Excluded []tuple.SubjectRef
	// ExcludedCaveated[i] is true when Excluded[i] is written with `[...]`:
	// it is removed only if a caveat says so. Same length as Excluded.
	ExcludedCaveated []bool
	// Via lists the object#relation sets written as `<type:id#relation>`
	// after `is`, through which the subject reaches the resource.
	Via  []tuple.SubjectRef
	Line int
	// Text is the string as written in the file.
	Text string
}
