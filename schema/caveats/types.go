package caveats

import (
	"fmt"
	"strings"

	"github.com/google/cel-go/cel"
)

// kind enumerates the parameter types a caveat may declare.
type kind uint8

const (
	kindAny kind = iota
	kindBool
	kindInt
	kindUint
	kindDouble
	kindString
	kindBytes
	kindDuration
	kindTimestamp
	kindIPAddress
	kindList
	kindMap
)

// kindNames holds each kind's keyword. Keywords are case-sensitive, as in
// SpiceDB.
var kindNames = [...]string{
	kindAny:       "any",
	kindBool:      "bool",
	kindInt:       "int",
	kindUint:      "uint",
	kindDouble:    "double",
	kindString:    "string",
	kindBytes:     "bytes",
	kindDuration:  "duration",
	kindTimestamp: "timestamp",
	kindIPAddress: "ipaddress",
	kindList:      "list",
	kindMap:       "map",
}

// lookupKind returns the kind named by keyword.
func lookupKind(keyword string) (kind, bool) {
	for k, name := range kindNames {
		if name == keyword {
			return kind(k), true
		}
	}
	return 0, false
}

func (k kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// paramType is a parsed parameter type. elem is set for list and map (the
// element or value type; map keys are always strings).
type paramType struct {
	kind kind
	elem *paramType
}

// String returns the canonical spelling, e.g. "list<map<int>>".
func (t *paramType) String() string {
	var b strings.Builder
	t.write(&b)
	return b.String()
}

func (t *paramType) write(b *strings.Builder) {
	b.WriteString(t.kind.String())
	if t.elem != nil {
		b.WriteByte('<')
		t.elem.write(b)
		b.WriteByte('>')
	}
}

// generic reports whether the type takes one type argument.
func (k kind) generic() bool { return k == kindList || k == kindMap }

// celType returns the CEL type a parameter of this type is declared with.
// As in SpiceDB, uint is declared as CEL int (the value is checked to be
// non-negative on conversion), so `x == 15` and `x + 1` type-check.
func (t *paramType) celType() *cel.Type {
	switch t.kind {
	case kindBool:
		return cel.BoolType
	case kindInt, kindUint:
		return cel.IntType
	case kindDouble:
		return cel.DoubleType
	case kindString:
		return cel.StringType
	case kindBytes:
		return cel.BytesType
	case kindDuration:
		return cel.DurationType
	case kindTimestamp:
		return cel.TimestampType
	case kindIPAddress:
		return ipAddressType
	case kindList:
		return cel.ListType(t.elem.celType())
	case kindMap:
		return cel.MapType(cel.StringType, t.elem.celType())
	default:
		return cel.DynType
	}
}

// ParseType parses a parameter type such as "int", "list<string>" or
// "map< list<int> >" and returns its canonical spelling without spaces
// ("map<list<int>>"). Unknown keywords, wrong type-argument counts and nesting
// deeper than MaxTypeDepth are errors.
func ParseType(s string) (string, error) {
	t, err := parseType(s)
	if err != nil {
		return "", err
	}
	return t.String(), nil
}

func parseType(s string) (*paramType, error) {
	if len(s) > MaxTypeBytes {
		return nil, fmt.Errorf("type is %d bytes long; the limit is %d", len(s), MaxTypeBytes)
	}
	p := typeParser{src: s}
	t, err := p.parse(1)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos < len(p.src) {
		return nil, fmt.Errorf("unexpected %q after type %s", p.src[p.pos:], t)
	}
	return t, nil
}

// typeParser is a recursive-descent parser over the grammar
//
//	type = ident [ "<" type { "," type } ">" ]
//
// with spaces allowed between tokens. Extra type arguments are parsed so that
// the error can say how many were given.
type typeParser struct {
	src string
	pos int
}

func (p *typeParser) skipSpace() {
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *typeParser) parse(depth int) (*paramType, error) {
	if depth > MaxTypeDepth {
		return nil, fmt.Errorf("type nesting is deeper than %d levels", MaxTypeDepth)
	}
	p.skipSpace()
	start := p.pos
	for p.pos < len(p.src) && isIdentByte(p.src[p.pos], p.pos > start) {
		p.pos++
	}
	name := p.src[start:p.pos]
	if name == "" {
		if p.pos >= len(p.src) {
			return nil, fmt.Errorf("missing type name")
		}
		return nil, fmt.Errorf("expected a type name, found %q", p.src[p.pos:])
	}
	k, ok := lookupKind(name)
	if !ok {
		return nil, fmt.Errorf("unknown type %q", name)
	}
	t := &paramType{kind: k}

	p.skipSpace()
	var args []*paramType
	if p.pos < len(p.src) && p.src[p.pos] == '<' {
		p.pos++
		for {
			arg, err := p.parse(depth + 1)
			if err != nil {
				return nil, err
			}
			args = append(args, arg)
			p.skipSpace()
			if p.pos >= len(p.src) {
				return nil, fmt.Errorf("missing '>' to close type arguments of %q", name)
			}
			if p.src[p.pos] == ',' {
				p.pos++
				continue
			}
			if p.src[p.pos] != '>' {
				return nil, fmt.Errorf("expected ',' or '>' in type arguments of %q, found %q", name, p.src[p.pos:])
			}
			p.pos++
			break
		}
	}
	switch {
	case k.generic() && len(args) != 1:
		return nil, fmt.Errorf("type %q requires 1 type argument, found %d", name, len(args))
	case !k.generic() && len(args) != 0:
		return nil, fmt.Errorf("type %q takes no type arguments, found %d", name, len(args))
	}
	if len(args) == 1 {
		t.elem = args[0]
	}
	return t, nil
}

// isIdentByte reports whether c may appear in an identifier; digits only
// after the first byte.
func isIdentByte(c byte, notFirst bool) bool {
	return c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || (notFirst && '0' <= c && c <= '9')
}
