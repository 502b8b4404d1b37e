package validation

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/ambit-authz/ambit/tuple"
)

// The keys of a document and of its assertions block.
const (
	keySchema        = "schema"
	keySchemaFile    = "schemaFile"
	keyRelationships = "relationships"
	keyAssertions    = "assertions"
	keyValidation    = "validation"

	keyAssertTrue     = "assertTrue"
	keyAssertFalse    = "assertFalse"
	keyAssertCaveated = "assertCaveated"
)

// Parse decodes the validation file filename, whose contents are data. Each
// YAML document (documents are separated by `---`) becomes one File; empty
// documents are skipped. A `schemaFile` key is read relative to filename's
// directory and must stay inside it.
//
// On bad input Parse returns nil and an ErrorList naming every problem found
// by file:line.
func Parse(filename string, data []byte) ([]*File, error) {
	return parse(filename, data, dirReader(filename))
}

// ParseFile reads the validation file at path and parses it with Parse.
func ParseFile(path string) ([]*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// ParseUploaded is Parse for a file that came over the network (the web
// console's import): it reads no other file, so a `schemaFile` key is an
// error asking for the schema inline.
func ParseUploaded(filename string, data []byte) ([]*File, error) {
	return parse(filename, data, func(name string) ([]byte, error) {
		return nil, fmt.Errorf("an uploaded file cannot refer to another file (schemaFile %q); put the schema inline under `schema`", name)
	})
}

// ExtractSchema returns the schema of the first document of a validation
// file, for `ambit schema check FILE.yaml`. Only the schema keys are decoded:
// mistakes in relationships, assertions or validation are not reported here.
func ExtractSchema(filename string, data []byte) (string, error) {
	f, err := ExtractSchemaFile(filename, data)
	if err != nil {
		return "", err
	}
	return f.Schema, nil
}

// ExtractSchemaFile is ExtractSchema returning the first document with only
// its schema decoded, so that File.SchemaPos can place a compile error in
// the YAML file.
func ExtractSchemaFile(filename string, data []byte) (*File, error) {
	return extractSchema(filename, data, dirReader(filename))
}

func extractSchema(filename string, data []byte, read readFunc) (*File, error) {
	p := newParser(filename, data, read)
	docs := p.decode(data)
	for _, d := range docs {
		f := p.document(d, true)
		if f == nil {
			continue
		}
		if err := p.errs.normalize().Err(); err != nil {
			return nil, err
		}
		if f.Schema == "" {
			return nil, &Error{File: filename, Line: d.doc.Line, Kind: ErrFormat,
				Msg: "the first document has no schema (want a `schema` or `schemaFile` key)"}
		}
		return f, nil
	}
	if err := p.errs.normalize().Err(); err != nil {
		return nil, err
	}
	return nil, &Error{File: filename, Kind: ErrFormat, Msg: "the file holds no YAML document"}
}

// readFunc reads the file a schemaFile key names (a local, relative path).
type readFunc func(name string) ([]byte, error)

func dirReader(filename string) readFunc {
	dir := filepath.Dir(filename)
	return func(name string) ([]byte, error) {
		return os.ReadFile(filepath.Join(dir, name))
	}
}

func parse(filename string, data []byte, read readFunc) ([]*File, error) {
	p := newParser(filename, data, read)
	docs := p.decode(data)
	var files []*File
	for _, d := range docs {
		if f := p.document(d, false); f != nil {
			files = append(files, f)
		}
	}
	if err := p.errs.normalize().Err(); err != nil {
		return nil, err
	}
	return files, nil
}

type parser struct {
	name string
	src  []string // the source, split into lines
	read readFunc
	errs ErrorList
}

func newParser(filename string, data []byte, read readFunc) *parser {
	return &parser{name: filename, src: splitLines(data), read: read}
}

// splitLines splits the source at YAML's line breaks: \r\n, \r or \n.
func splitLines(data []byte) []string {
	s := strings.ReplaceAll(string(data), "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return strings.Split(s, "\n")
}

func (p *parser) errorf(line, col int, kind, cause error, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.name, Line: line, Col: col, Kind: kind, Msg: fmt.Sprintf(format, args...), Err: cause})
}

// yamlDoc is one decoded YAML document and the last source line it may span.
type yamlDoc struct {
	doc *yaml.Node
	num int
	end int
}

// yamlLine finds the line number in a yaml.v3 error message.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// decode splits the stream into documents. On malformed YAML it records the
// error and returns the documents read before it.
func (p *parser) decode(data []byte) []yamlDoc {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []yamlDoc
	for n := 1; ; n++ {
		node, err := decodeOne(dec)
		if err == io.EOF {
			break
		}
		if err != nil {
			line, msg := 0, err.Error()
			if m := yamlLine.FindStringSubmatch(msg); m != nil {
				line, _ = strconv.Atoi(m[1])
				msg = m[2]
			} else {
				msg = strings.TrimPrefix(msg, "yaml: ")
			}
			p.errorf(line, 0, ErrYAML, nil, "%s", msg)
			break
		}
		if len(docs) > 0 {
			docs[len(docs)-1].end = node.Line - 1
		}
		docs = append(docs, yamlDoc{doc: node, num: n, end: len(p.src)})
	}
	return docs
}

// decodeOne decodes the next document. yaml.v3 is not known to panic on the
// input we give it, but a validation file comes from users, so a panic in the
// decoder becomes an error rather than a crash.
func decodeOne(dec *yaml.Decoder) (node *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			node, err = nil, fmt.Errorf("yaml: the decoder failed: %v", r)
		}
	}()
	node = new(yaml.Node)
	if err := dec.Decode(node); err != nil {
		return nil, err
	}
	return node, nil
}

// resolve follows an alias to its anchored node.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a scalar"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	return "nothing"
}

// text returns a scalar's value; null is "". Anything else is an error.
func (p *parser) text(key string, n *yaml.Node) (string, bool) {
	if isNull(n) {
		return "", true
	}
	if n.Kind != yaml.ScalarNode {
		p.errorf(n.Line, n.Column, ErrFormat, nil, "`%s` must be text, found %s", key, kindName(n))
		return "", false
	}
	return n.Value, true
}

// pair is one key and value of a mapping, with the last line the value may
// span (the line before the next key).
type pair struct {
	key  string
	k, v *yaml.Node
	end  int
}

// pairs lists a mapping's entries, reporting non-text and repeated keys.
func (p *parser) pairs(m *yaml.Node, end int, what string) []pair {
	var out []pair
	seen := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := resolve(m.Content[i]), resolve(m.Content[i+1])
		if k == nil || v == nil {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			p.errorf(k.Line, k.Column, ErrFormat, nil, "a key of %s must be text, found %s", what, kindName(k))
			continue
		}
		if first, ok := seen[k.Value]; ok {
			p.errorf(k.Line, k.Column, ErrFormat, nil, "%s: key %q repeated (first at line %d)", what, k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		if n := len(out); n > 0 && k.Line > out[n-1].k.Line {
			out[n-1].end = k.Line - 1
		}
		out = append(out, pair{key: k.Value, k: k, v: v, end: end})
	}
	return out
}

// document decodes one document; nil means the document is empty. With
// schemaOnly, keys other than schema and schemaFile are skipped.
func (p *parser) document(d yamlDoc, schemaOnly bool) *File {
	if len(d.doc.Content) == 0 {
		return nil
	}
	root := resolve(d.doc.Content[0])
	if isNull(root) {
		return nil
	}
	f := &File{Name: p.name, Doc: d.num}
	if root.Kind != yaml.MappingNode {
		p.errorf(root.Line, root.Column, ErrFormat, nil,
			"document %d must be a mapping with keys schema, relationships, assertions and validation; found %s", d.num, kindName(root))
		return f
	}
	var schemaNode, fileNode *yaml.Node
	var schemaEnd int
	for _, kv := range p.pairs(root, d.end, "document") {
		switch kv.key {
		case keySchema:
			schemaNode, schemaEnd = kv.v, kv.end
		case keySchemaFile:
			fileNode = kv.v
		case keyRelationships:
			if !schemaOnly {
				f.Relationships = p.relationships(kv)
			}
		case keyAssertions:
			if !schemaOnly {
				f.Assertions = p.assertions(kv)
			}
		case keyValidation:
			if !schemaOnly {
				f.Validation = p.validation(kv)
			}
		default:
			if !schemaOnly {
				p.errorf(kv.k.Line, kv.k.Column, ErrFormat, nil,
					"unknown key %q (want schema, schemaFile, relationships, assertions or validation)", kv.key)
			}
		}
	}
	p.schema(f, schemaNode, schemaEnd, fileNode)
	return f
}

// schema fills in the schema from the `schema` or the `schemaFile` key.
func (p *parser) schema(f *File, n *yaml.Node, end int, fileNode *yaml.Node) {
	if n != nil {
		text, ok := p.text(keySchema, n)
		if ok && text != "" {
			f.Schema = text
			f.schemaLines = lineMap(p.src, n, text, end)
			f.schemaCols = columnOffsets(p.src, n, text, f.schemaLines)
			f.SchemaLine = n.Line
			if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
				f.SchemaLine = n.Line + 1
			}
			for _, l := range f.schemaLines {
				if l > 0 {
					f.SchemaLine = l
					break
				}
			}
		}
	}
	if fileNode == nil {
		return
	}
	name, ok := p.text(keySchemaFile, fileNode)
	if !ok || name == "" {
		return
	}
	line, col := fileNode.Line, fileNode.Column
	if f.Schema != "" {
		p.errorf(line, col, ErrSchemaFile, nil, "give either `schema` or `schemaFile`, not both")
		return
	}
	if !filepath.IsLocal(name) {
		p.errorf(line, col, ErrSchemaFile, nil, "%q must be a relative path inside the directory of %s", name, p.name)
		return
	}
	data, err := p.read(name)
	if err != nil {
		p.errorf(line, col, ErrSchemaFile, err, "cannot read %q", name)
		return
	}
	f.Schema = string(data)
	f.SchemaFile = filepath.Join(filepath.Dir(p.name), name)
	f.SchemaLine = 1
}

// relationships decodes the newline-separated relationship block. Blank lines
// and lines starting with `//` are skipped; a relationship given twice (same
// resource, relation and subject) is an error, as in SpiceDB.
func (p *parser) relationships(kv pair) []Rel {
	text, ok := p.text(keyRelationships, kv.v)
	if !ok || text == "" {
		return nil
	}
	lines := lineMap(p.src, kv.v, text, kv.end)
	var rels []Rel
	seen := map[tuple.Key]int{}
	for i, raw := range strings.Split(text, "\n") {
		s := strings.TrimSpace(raw)
		if s == "" || strings.HasPrefix(s, "//") {
			continue
		}
		line, col := lines[i], kv.v.Column
		if line != kv.v.Line {
			col = column(p.src, line, s)
		}
		r, err := tuple.Parse(s)
		if err != nil {
			p.errorf(line, col, ErrRelationship, err, "%q", clip(s))
			continue
		}
		if first, ok := seen[r.Key()]; ok {
			p.errorf(line, col, ErrRelationship, nil, "%s is repeated (first at line %d)", r.Key(), first)
			continue
		}
		seen[r.Key()] = line
		rels = append(rels, Rel{Relationship: r, Line: line})
	}
	return rels
}

// assertions decodes the assertions block: a mapping of up to three lists,
// each of which may be null or empty. A null or empty block is no assertions.
func (p *parser) assertions(kv pair) Assertions {
	var a Assertions
	n := kv.v
	if isNull(n) || n.Kind == yaml.ScalarNode && n.Value == "" {
		return a
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n.Line, n.Column, ErrFormat, nil, "`assertions` must be a mapping with keys assertTrue, assertFalse and assertCaveated; found %s", kindName(n))
		return a
	}
	for _, e := range p.pairs(n, kv.end, "assertions") {
		var list *[]Assertion
		switch e.key {
		case keyAssertTrue:
			list = &a.True
		case keyAssertFalse:
			list = &a.False
		case keyAssertCaveated:
			list = &a.Caveated
		default:
			p.errorf(e.k.Line, e.k.Column, ErrFormat, nil, "unknown key %q in assertions (want assertTrue, assertFalse or assertCaveated)", e.key)
			continue
		}
		for _, item := range p.list(e) {
			if as, ok := p.assertion(item); ok {
				*list = append(*list, as)
			}
		}
	}
	return a
}

// list returns the text items of a list value (null is an empty list).
func (p *parser) list(e pair) []*yaml.Node {
	if isNull(e.v) {
		return nil
	}
	if e.v.Kind != yaml.SequenceNode {
		p.errorf(e.v.Line, e.v.Column, ErrFormat, nil, "%q must be a list of strings, found %s", e.key, kindName(e.v))
		return nil
	}
	var out []*yaml.Node
	for _, item := range e.v.Content {
		item = resolve(item)
		if item == nil {
			continue
		}
		if item.Kind != yaml.ScalarNode || isNull(item) {
			p.errorf(item.Line, item.Column, ErrFormat, nil, "an entry of %q must be a string, found %s", e.key, kindName(item))
			continue
		}
		out = append(out, item)
	}
	return out
}

// withSep separates an assertion's relationship from its caveat context.
var withSep = regexp.MustCompile(`\s+with\s+`)

// assertion decodes `res:id#perm@subj:id[#rel]` optionally followed by
// ` with {json}`.
func (p *parser) assertion(n *yaml.Node) (Assertion, bool) {
	a := Assertion{Line: n.Line, Text: n.Value}
	s := strings.TrimSpace(n.Value)
	relText, ctxText := s, ""
	if loc := withSep.FindStringIndex(s); loc != nil {
		relText, ctxText = s[:loc[0]], s[loc[1]:]
		if strings.TrimSpace(ctxText) == "" {
			p.errorf(n.Line, n.Column, ErrAssertion, nil, "%q: expected a JSON object after `with`", clip(s))
			return a, false
		}
	} else if strings.HasSuffix(s, " with") {
		p.errorf(n.Line, n.Column, ErrAssertion, nil, "%q: expected a JSON object after `with`", clip(s))
		return a, false
	}
	r, err := tuple.Parse(relText)
	if err != nil {
		p.errorf(n.Line, n.Column, ErrAssertion, err, "%q", clip(s))
		return a, false
	}
	if r.Caveat != nil {
		p.errorf(n.Line, n.Column, ErrAssertion, nil,
			"%q: an assertion cannot name a caveat; give the context after `with`, e.g. `... with {\"key\": 1}`", clip(s))
		return a, false
	}
	if !r.Expiration.IsZero() {
		p.errorf(n.Line, n.Column, ErrAssertion, nil, "%q: an assertion cannot carry an expiration", clip(s))
		return a, false
	}
	if ctxText != "" {
		ctx, err := tuple.ParseContext([]byte(ctxText))
		if err != nil {
			p.errorf(n.Line, n.Column, ErrAssertion, err, "%q: caveat context", clip(s))
			return a, false
		}
		a.Context = ctx
	}
	a.Rel = r
	return a, true
}

// validation decodes the expected-relations map.
func (p *parser) validation(kv pair) []Expected {
	n := kv.v
	if isNull(n) || n.Kind == yaml.ScalarNode && n.Value == "" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n.Line, n.Column, ErrFormat, nil, "`validation` must be a mapping from `type:id#permission` to a list of expected subjects; found %s", kindName(n))
		return nil
	}
	var out []Expected
	for _, e := range p.pairs(n, kv.end, "validation") {
		obj, perm, err := parseONR(e.key)
		if err != nil {
			p.errorf(e.k.Line, e.k.Column, ErrExpected, err, "key %q: want type:id#permission", clip(e.key))
			continue
		}
		exp := Expected{Resource: obj, Permission: perm, Line: e.k.Line}
		for _, item := range p.list(e) {
			es, err := parseExpectedSubject(item.Value)
			if err != nil {
				p.errorf(item.Line, item.Column, ErrExpected, err, "%q", clip(item.Value))
				continue
			}
			es.Line = item.Line
			exp.Subjects = append(exp.Subjects, es)
		}
		out = append(out, exp)
	}
	return out
}

// parseONR reads `type:id#relation`.
func parseONR(s string) (tuple.ObjectRef, string, error) {
	objText, rel, ok := strings.Cut(strings.TrimSpace(s), "#")
	if !ok {
		return tuple.ObjectRef{}, "", errors.New("missing '#relation'")
	}
	obj, err := tuple.ParseObject(objText)
	if err != nil {
		return obj, "", err
	}
	if err := tuple.ValidateRelation(rel); err != nil {
		return obj, "", err
	}
	return obj, rel, nil
}

// clip shortens s for a message, on a character boundary.
func clip(s string) string {
	const max = 120
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}
