// Package scim is ambit's SCIM 2.0 service provider (RFC 7643, RFC 7644):
// the filter language, PATCH paths and their evaluation over a resource's
// JSON, the schemas, list queries, PATCH and bulk requests, the mapping of
// users and groups to relationships, the HTTP Handler over a Store, and
// RecordStore, the Store over the replicated store's records.
package scim

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits on what a client may send as a filter or a path, enforced while
// parsing, before anything is evaluated.
const (
	// MaxFilterBytes bounds a filter or PATCH path.
	MaxFilterBytes = 4096
	// MaxFilterDepth bounds the nesting of parentheses, "not" and brackets.
	MaxFilterDepth = 32
)

// ErrInvalidFilter and ErrInvalidPath are the parse failures, matching the
// SCIM error types invalidFilter and invalidPath (RFC 7644 §3.12); the
// wrapping *SyntaxError says where and why.
var (
	ErrInvalidFilter = errors.New("invalidFilter")
	ErrInvalidPath   = errors.New("invalidPath")
)

// SyntaxError is a filter or path that does not parse.
type SyntaxError struct {
	Kind error  // ErrInvalidFilter or ErrInvalidPath
	Pos  int    // byte offset in the input
	Msg  string // what is wrong
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%v at offset %d: %s", e.Kind, e.Pos, e.Msg)
}

func (e *SyntaxError) Unwrap() error { return e.Kind }

// AttrPath is [URI ":"] Name ["." Sub]: an attribute, optionally qualified
// by its schema URI, optionally a sub-attribute of a complex attribute.
type AttrPath struct {
	URI  string // e.g. "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"; "" for the core schema
	Name string
	Sub  string
}

func (p AttrPath) String() string {
	s := p.Name
	if p.Sub != "" {
		s += "." + p.Sub
	}
	if p.URI != "" {
		s = p.URI + ":" + s
	}
	return s
}

// Op is an attribute operator.
type Op uint8

// The attribute operators of RFC 7644 §3.4.2.2.
const (
	OpEq Op = iota + 1
	OpNe
	OpCo
	OpSw
	OpEw
	OpGt
	OpGe
	OpLt
	OpLe
	OpPr
)

var opNames = map[string]Op{"eq": OpEq, "ne": OpNe, "co": OpCo, "sw": OpSw, "ew": OpEw, "gt": OpGt, "ge": OpGe, "lt": OpLt, "le": OpLe, "pr": OpPr}

func (o Op) String() string {
	for n, v := range opNames {
		if v == o {
			return n
		}
	}
	return "?"
}

// Filter is a parsed filter expression.
type Filter interface{ filter() }

// Compare is `path op value`, or `path pr` (Value nil). Value is nil (JSON
// null), a bool, a float64 or a string.
type Compare struct {
	Path  AttrPath
	Op    Op
	Value any
}

// And, Or and Not are the logical operators.
type (
	And struct{ L, R Filter }
	Or  struct{ L, R Filter }
	Not struct{ F Filter }
)

// ValuePath is `path[filter]`: some value of the multi-valued complex
// attribute path satisfies Filter, whose paths name its sub-attributes.
type ValuePath struct {
	Path   AttrPath
	Filter Filter
}

func (Compare) filter()   {}
func (And) filter()       {}
func (Or) filter()        {}
func (Not) filter()       {}
func (ValuePath) filter() {}

// ParseFilter parses a filter (the `filter` query parameter or a search
// request's "filter").
func ParseFilter(s string) (Filter, error) {
	p, err := newParser(s, ErrInvalidFilter)
	if err != nil {
		return nil, err
	}
	f := p.or(false)
	if p.err == nil && p.tok.kind != tEOF {
		p.fail(p.tok.pos, "unexpected %s after the filter", p.tok)
	}
	if p.err != nil {
		return nil, p.err
	}
	return f, nil
}

// Path is a PATCH operation's path (RFC 7644 §3.5.2): an attribute path, or
// a value path optionally followed by a sub-attribute
// (`emails[type eq "work"].value`).
type Path struct {
	Attr   AttrPath
	Filter Filter // nil unless the path selects values with [filter]
	Sub    string // the sub-attribute after a value path
}

func (p Path) String() string { return p.Attr.String() }

// ParsePath parses a PATCH path.
func ParsePath(s string) (Path, error) {
	p, err := newParser(s, ErrInvalidPath)
	if err != nil {
		return Path{}, err
	}
	var out Path
	if p.tok.kind != tWord {
		p.fail(p.tok.pos, "want an attribute path, got %s", p.tok)
		return Path{}, p.err
	}
	out.Attr = p.attrPath(p.tok)
	p.next()
	if p.err == nil && p.tok.kind == tLBrack {
		p.next()
		p.depth++
		out.Filter = p.or(true)
		p.depth--
		p.expect(tRBrack)
		if p.err == nil && p.tok.kind == tWord && strings.HasPrefix(p.tok.text, ".") {
			out.Sub = p.tok.text[1:]
			if !validName(out.Sub) {
				p.fail(p.tok.pos, "%q is not a sub-attribute name", out.Sub)
			}
			p.next()
		}
	}
	if p.err == nil && p.tok.kind != tEOF {
		p.fail(p.tok.pos, "unexpected %s after the path", p.tok)
	}
	if p.err != nil {
		return Path{}, p.err
	}
	return out, nil
}

// The scanner: a pull scanner over the filter text.

type tokKind uint8

const (
	tEOF tokKind = iota
	tWord
	tString
	tNumber
	tLParen
	tRParen
	tLBrack
	tRBrack
)

type token struct {
	kind tokKind
	pos  int
	text string // tWord: the word; tString: the decoded string; tNumber: the literal
}

func (t token) String() string {
	switch t.kind {
	case tEOF:
		return "end of input"
	case tString:
		return strconv.Quote(t.text)
	case tLParen:
		return `"("`
	case tRParen:
		return `")"`
	case tLBrack:
		return `"["`
	case tRBrack:
		return `"]"`
	}
	return strconv.Quote(t.text)
}

type parser struct {
	src   string
	off   int
	tok   token
	kind  error
	err   *SyntaxError
	depth int
}

func newParser(s string, kind error) (*parser, error) {
	if len(s) > MaxFilterBytes {
		return nil, &SyntaxError{Kind: kind, Pos: MaxFilterBytes, Msg: fmt.Sprintf("longer than %d bytes", MaxFilterBytes)}
	}
	if !utf8.ValidString(s) {
		return nil, &SyntaxError{Kind: kind, Msg: "not valid UTF-8"}
	}
	p := &parser{src: s, kind: kind}
	p.next()
	if p.err != nil {
		return nil, p.err
	}
	return p, nil
}

func (p *parser) fail(pos int, format string, args ...any) {
	if p.err == nil {
		p.err = &SyntaxError{Kind: p.kind, Pos: pos, Msg: fmt.Sprintf(format, args...)}
	}
	p.tok = token{kind: tEOF, pos: len(p.src)}
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':' || c == '$' || c == '+'
}

// next scans the next token into p.tok.
func (p *parser) next() {
	if p.err != nil {
		return
	}
	for p.off < len(p.src) && (p.src[p.off] == ' ' || p.src[p.off] == '\t' || p.src[p.off] == '\n' || p.src[p.off] == '\r') {
		p.off++
	}
	start := p.off
	if p.off >= len(p.src) {
		p.tok = token{kind: tEOF, pos: start}
		return
	}
	switch c := p.src[p.off]; {
	case c == '(':
		p.off++
		p.tok = token{kind: tLParen, pos: start}
	case c == ')':
		p.off++
		p.tok = token{kind: tRParen, pos: start}
	case c == '[':
		p.off++
		p.tok = token{kind: tLBrack, pos: start}
	case c == ']':
		p.off++
		p.tok = token{kind: tRBrack, pos: start}
	case c == '"':
		p.scanString()
	case isWordByte(c):
		for p.off < len(p.src) && isWordByte(p.src[p.off]) {
			p.off++
		}
		p.tok = token{kind: tWord, pos: start, text: p.src[start:p.off]}
		if c == '-' || c >= '0' && c <= '9' {
			if _, err := strconv.ParseFloat(p.tok.text, 64); err == nil {
				p.tok.kind = tNumber
			}
		}
	default:
		r, _ := utf8.DecodeRuneInString(p.src[p.off:])
		p.fail(start, "unexpected character %q", r)
	}
}

// scanString scans a JSON string literal.
func (p *parser) scanString() {
	start := p.off
	p.off++
	for p.off < len(p.src) {
		switch p.src[p.off] {
		case '\\':
			p.off += 2
			continue
		case '"':
			p.off++
			s, err := strconv.Unquote(jsonToGoQuote(p.src[start:p.off]))
			if err != nil {
				p.fail(start, "bad string literal %s", p.src[start:p.off])
				return
			}
			p.tok = token{kind: tString, pos: start, text: s}
			return
		}
		p.off++
	}
	p.fail(start, "unterminated string")
}

// jsonToGoQuote turns a JSON string literal into one strconv.Unquote
// accepts: the escapes differ in "\/" and in Go's extra escapes, which
// JSON lacks and which are refused here, and in surrogate pairs: a
// character beyond U+FFFF escaped as JSON does ("\ud83d\ude00") passes
// through and Unquote, which takes no surrogate halves, refuses it.
func jsonToGoQuote(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case '/':
				b.WriteByte('/')
				i++
				continue
			case '"', '\\', 'b', 'f', 'n', 'r', 't', 'u':
			default:
				return "\x00" // not a JSON escape: fails Unquote
			}
			b.WriteByte(s[i])
			b.WriteByte(s[i+1])
			i++
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func (p *parser) expect(k tokKind) {
	if p.err != nil {
		return
	}
	if p.tok.kind != k {
		want := token{kind: k}
		p.fail(p.tok.pos, "want %s, got %s", want, p.tok)
		return
	}
	p.next()
}

func (p *parser) keyword(w string) bool {
	return p.tok.kind == tWord && strings.EqualFold(p.tok.text, w)
}

// or parses `and ("or" and)*`; in a value filter (inValue) a nested value
// path is refused.
func (p *parser) or(inValue bool) Filter {
	f := p.and(inValue)
	for p.err == nil && p.keyword("or") {
		p.next()
		f = Or{f, p.and(inValue)}
	}
	return f
}

func (p *parser) and(inValue bool) Filter {
	f := p.unary(inValue)
	for p.err == nil && p.keyword("and") {
		p.next()
		f = And{f, p.unary(inValue)}
	}
	return f
}

func (p *parser) unary(inValue bool) Filter {
	if p.err != nil {
		return nil
	}
	if p.depth >= MaxFilterDepth {
		p.fail(p.tok.pos, "nested deeper than %d", MaxFilterDepth)
		return nil
	}
	switch {
	case p.keyword("not"):
		p.next()
		if p.tok.kind != tLParen {
			p.fail(p.tok.pos, `"not" must be followed by "(", got %s`, p.tok)
			return nil
		}
		p.next()
		p.depth++
		f := p.or(inValue)
		p.depth--
		p.expect(tRParen)
		return Not{f}
	case p.tok.kind == tLParen:
		p.next()
		p.depth++
		f := p.or(inValue)
		p.depth--
		p.expect(tRParen)
		return f
	case p.tok.kind == tWord:
		return p.attrExpr(inValue)
	}
	p.fail(p.tok.pos, "want an attribute path, \"not\" or \"(\", got %s", p.tok)
	return nil
}

func (p *parser) attrExpr(inValue bool) Filter {
	pathTok := p.tok
	path := p.attrPath(pathTok)
	p.next()
	if p.err != nil {
		return nil
	}
	if p.tok.kind == tLBrack {
		if inValue {
			p.fail(p.tok.pos, "a value filter cannot hold another value path")
			return nil
		}
		if path.Sub != "" {
			p.fail(pathTok.pos, "a value path selects values of an attribute, not of a sub-attribute (%s)", path)
			return nil
		}
		p.next()
		p.depth++
		f := p.or(true)
		p.depth--
		p.expect(tRBrack)
		return ValuePath{path, f}
	}
	if p.tok.kind != tWord {
		p.fail(p.tok.pos, "want an operator after %s, got %s", path, p.tok)
		return nil
	}
	op, ok := opNames[strings.ToLower(p.tok.text)]
	if !ok {
		p.fail(p.tok.pos, "%q is not an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)", p.tok.text)
		return nil
	}
	p.next()
	if op == OpPr {
		return Compare{Path: path, Op: OpPr}
	}
	var v any
	switch t := p.tok; {
	case t.kind == tString:
		v = t.text
	case t.kind == tNumber:
		f, _ := strconv.ParseFloat(t.text, 64)
		v = f
	case p.keyword("true"):
		v = true
	case p.keyword("false"):
		v = false
	case p.keyword("null"):
		v = nil
	default:
		p.fail(t.pos, "want a value (a string, number, true, false or null) after %s %s, got %s", path, op, t)
		return nil
	}
	p.next()
	return Compare{Path: path, Op: op, Value: v}
}

// attrPath splits a word into [URI ":"] name ["." sub].
func (p *parser) attrPath(t token) AttrPath {
	w := t.text
	var out AttrPath
	if i := strings.LastIndexByte(w, ':'); i >= 0 {
		out.URI, w = w[:i], w[i+1:]
		if !strings.HasPrefix(strings.ToLower(out.URI), "urn:") {
			p.fail(t.pos, "%q: a qualified attribute starts with a schema URN", t.text)
			return out
		}
	}
	out.Name, out.Sub, _ = strings.Cut(w, ".")
	if !validName(out.Name) || (strings.Contains(w, ".") && !validName(out.Sub)) {
		p.fail(t.pos, "%q is not an attribute path", t.text)
	}
	return out
}

// validName: ATTRNAME = ALPHA *(nameChar), nameChar = "-" / "_" / DIGIT /
// ALPHA; "$ref" is the one name starting with "$".
func validName(s string) bool {
	if s == "$ref" {
		return true
	}
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
