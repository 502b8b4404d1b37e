package schema

import (
	"strings"

	"github.com/ambit-authz/ambit/schema/caveats"
)

// compileCaveat hands a caveat's parameters and CEL expression to the caveats
// package, which type-checks the expression. It is the one place the
// compiler calls into schema/caveats.
func compileCaveat(name string, params []caveats.Param, expr string) (*caveats.Caveat, error) {
	return caveats.Compile(name, params, expr)
}

// referencedNames returns the identifiers a CEL expression refers to at top
// level: identifiers outside string literals and comments that are not field
// selections (`x.name` refers to x, not to name). SpiceDB rejects a caveat
// whose parameter the expression never references; this finds them without
// reaching into the compiled CEL.
func referencedNames(expr string) map[string]bool {
	refs := map[string]bool{}
	afterDot := false
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '/' && i+1 < len(expr) && expr[i+1] == '/':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'':
			raw := i > 0 && (expr[i-1] == 'r' || expr[i-1] == 'R')
			i = skipCELStringAt(expr, i, raw)
			afterDot = false
		case c >= '0' && c <= '9':
			for i < len(expr) && (isIdentByte(expr[i]) || expr[i] == '.') {
				i++
			}
			afterDot = false
		case isIdentByte(c):
			start := i
			for i < len(expr) && isIdentByte(expr[i]) {
				i++
			}
			word := expr[start:i]
			isPrefix := i < len(expr) && (expr[i] == '"' || expr[i] == '\'') && len(word) <= 2 && strings.Trim(strings.ToLower(word), "rb") == ""
			if !afterDot && !isPrefix {
				refs[word] = true
			}
			afterDot = false
		case c == '.':
			afterDot = true
			i++
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		default:
			afterDot = false
			i++
		}
	}
	return refs
}

// skipCELStringAt returns the offset just past the string literal at i (or
// len(expr) if it is not closed).
func skipCELStringAt(expr string, i int, raw bool) int {
	q := expr[i]
	triple := i+2 < len(expr) && expr[i+1] == q && expr[i+2] == q
	if triple {
		i += 3
	} else {
		i++
	}
	for i < len(expr) {
		switch {
		case expr[i] == '\\' && !raw:
			i += 2
			continue
		case expr[i] == q && !triple:
			return i + 1
		case expr[i] == q && i+2 < len(expr) && expr[i+1] == q && expr[i+2] == q:
			return i + 3
		}
		i++
	}
	return len(expr)
}
