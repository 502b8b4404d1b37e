// Package schema owns ambit's schema language, which is SpiceDB's: the lexer,
// parser, AST, canonical printer and the compiler that turns source text into
// an immutable, validated *Schema that the engine evaluates. It does no I/O.
//
// Compile is the entry point:
//
//	s, err := schema.Compile("schema.zed", src)
//
// Errors are an ErrorList of positioned errors (file:line:col, the source line
// and a caret), sorted, at most one per line. Compile never returns a partial
// schema: either a complete *Schema or an error.
//
// The front end follows go/scanner and go/parser: Scanner is a pull scanner
// that turns a newline ending a statement into a SEMICOLON, Parse builds a
// *File syntax tree with positions, Print and Format write the canonical form
// (Parse(Print(f)) == f, positions aside). Operator precedence is SpiceDB's:
// `+` binds tightest, then `&`, then `-`, all left-associative. Caveat bodies
// are captured as raw text and type-checked by package schema/caveats. The
// Max* constants bound source size, nesting, counts and name length.
package schema

import (
	"sort"

	"github.com/ambit-authz/ambit/schema/caveats"
)

// Schema is a compiled, validated schema. It is immutable once returned by
// Compile and safe for concurrent use.
type Schema struct {
	// Definitions by type name (tenant prefix included, e.g. "org/user").
	Definitions map[string]*Definition
	// Caveats by name.
	Caveats map[string]*caveats.Caveat
	// UsesExpiration is true when the source says `use expiration`.
	UsesExpiration bool
	// Hash is the Digest of the canonical printed form (Source), in hex;
	// part of every cache key.
	Hash string
	// Source is the canonical printed form.
	Source string
	// Warnings are problems SpiceDB also accepts with only a warning (an
	// arrow to a relation that none of the tupleset's subject types has),
	// sorted by position. They do not stop compilation.
	Warnings ErrorList
}

// Definition is one `definition name { ... }`.
type Definition struct {
	Name string
	// Relations holds relations and permissions by name.
	Relations map[string]*Relation
	// Order lists relation and permission names in source order.
	Order []string
}

// Relation is a `relation` (IsPermission false, AllowedTypes set, Expr nil)
// or a `permission` (IsPermission true, AllowedTypes nil, Expr set, except in
// a schema from Declarations, whose permissions have no Expr).
type Relation struct {
	Name         string
	Definition   string // the owning definition's name
	IsPermission bool
	AllowedTypes []AllowedType
	Expr         Expr
}

// AllowedType is one alternative of a relation's type restriction:
// `user`, `user:*`, `group#member`, each optionally `with caveat_name`
// and/or `with expiration`.
type AllowedType struct {
	Type       string
	Relation   string // "" for a plain object; set for a subject set (group#member)
	Wildcard   bool   // user:*
	Caveat     string // "" if none
	Expiration bool
}

// Expr is a permission expression node: one of *Union, *Intersection,
// *Exclusion, *RelationRef, *Arrow, *Nil.
type Expr interface{ isExpr() }

// Union is `a + b + ...`.
type Union struct{ Children []Expr }

// Intersection is `a & b & ...`.
type Intersection struct{ Children []Expr }

// Exclusion is `Base - Subtracted`.
type Exclusion struct{ Base, Subtracted Expr }

// RelationRef refers to a relation or permission on the same definition
// (a computed userset).
type RelationRef struct{ Name string }

// ArrowFunc says how an arrow combines the results across the tupleset's
// subjects: any (the default `->` and `.any()`) or all (`.all()`).
type ArrowFunc int

const (
	ArrowAny ArrowFunc = iota
	ArrowAll
)

// Arrow is `Tupleset->Computed`, `Tupleset.any(Computed)` or
// `Tupleset.all(Computed)`. Tupleset is a relation (never a permission) on the
// same definition; Computed is looked up on each subject's type.
type Arrow struct {
	Tupleset string
	Computed string
	Func     ArrowFunc
}

// Nil is `nil`: the empty set.
type Nil struct{}

func (*Union) isExpr()        {}
func (*Intersection) isExpr() {}
func (*Exclusion) isExpr()    {}
func (*RelationRef) isExpr()  {}
func (*Arrow) isExpr()        {}
func (*Nil) isExpr()          {}

// Relation returns the relation or permission typ#name, or nil.
func (s *Schema) Relation(typ, name string) *Relation {
	d := s.Definitions[typ]
	if d == nil {
		return nil
	}
	return d.Relations[name]
}

// PlainSubjectTypes returns, sorted, the types some relation allows as a
// plain subject (not a subject set), wildcards included: the types whose
// objects can hold a permission themselves.
func (s *Schema) PlainSubjectTypes() []string {
	seen := map[string]bool{}
	for _, d := range s.Definitions {
		for _, r := range d.Relations {
			for _, at := range r.AllowedTypes {
				if at.Relation == "" {
					seen[at.Type] = true
				}
			}
		}
	}
	out := make([]string, 0, len(seen))
	for t := range seen {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
