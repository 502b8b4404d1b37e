package caveats

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/cel-go/cel"
	celast "github.com/google/cel-go/common/ast"
)

// reservedWords cannot name a parameter: CEL's parser rejects them as
// identifiers, so a parameter so named could never be referenced.
var reservedWords = []string{
	"true", "false", "null", "in",
	"as", "break", "const", "continue", "else", "for", "function", "if",
	"import", "let", "loop", "package", "namespace", "return", "var", "void", "while",
}

// indexThreshold is the parameter count above which name lookups during
// evaluation use a map instead of a linear scan.
const indexThreshold = 8

// Compile type-checks expr as the body of caveat name with the given
// parameters and prepares it for evaluation. Parameter names must be unique
// identifiers and their types must parse with ParseType; the stored Params
// carry the canonical type spelling. The expression must have type bool.
//
// Every error is an *Error: for a parameter it names the parameter (Param
// set, no position); for the expression it carries the 1-based line and
// byte column, within expr, of the first problem CEL reports.
func Compile(name string, params []Param, expr string) (*Caveat, error) {
	if len(params) > MaxParams {
		return nil, &Error{Msg: fmt.Sprintf("caveat %q: %d parameters; the limit is %d", name, len(params), MaxParams)}
	}
	if len(expr) > MaxExpressionBytes {
		return nil, &Error{Msg: fmt.Sprintf("caveat %q: expression is %d bytes long; the limit is %d", name, len(expr), MaxExpressionBytes)}
	}
	if !utf8.ValidString(expr) {
		return nil, &Error{Msg: fmt.Sprintf("caveat %q: expression is not valid UTF-8", name)}
	}
	if strings.TrimSpace(expr) == "" {
		return nil, &Error{Msg: fmt.Sprintf("caveat %q: expression is empty", name)}
	}

	c := &Caveat{
		Name:    name,
		Params:  make([]Param, len(params)),
		Expr:    expr,
		types:   make([]*paramType, len(params)),
		unknown: make([]*cel.AttributePatternType, len(params)),
	}
	opts := []cel.EnvOption{
		cel.DefaultUTCTimeZone(true),
		cel.ParserExpressionSizeLimit(MaxExpressionBytes),
		ipAddressLibrary(),
	}
	for i, p := range params {
		if err := checkParamName(p.Name); err != nil {
			return nil, &Error{Param: p.Name, Msg: fmt.Sprintf("caveat %q: %v", name, err)}
		}
		for _, q := range params[:i] {
			if q.Name == p.Name {
				return nil, &Error{Param: p.Name, Msg: fmt.Sprintf("caveat %q: duplicate parameter %q", name, p.Name)}
			}
		}
		t, err := parseType(p.Type)
		if err != nil {
			return nil, &Error{Param: p.Name, Msg: fmt.Sprintf("caveat %q: parameter %q: %v", name, p.Name, err)}
		}
		c.Params[i] = Param{Name: p.Name, Type: t.String()}
		c.types[i] = t
		c.unknown[i] = cel.AttributePattern(p.Name)
		opts = append(opts, cel.Variable(p.Name, t.celType()))
	}
	if len(params) > indexThreshold {
		c.index = make(map[string]int, len(params))
		for i, p := range params {
			c.index[p.Name] = i
		}
	}

	env, err := cel.NewEnv(opts...)
	if err != nil {
		return nil, &Error{Msg: fmt.Sprintf("caveat %q: building the CEL environment: %v", name, err)}
	}
	parsed, iss := env.Parse(expr)
	if iss != nil && iss.Err() != nil {
		return nil, issueError(name, expr, iss)
	}
	// CEL's type checker takes time quadratic in the number of calls to
	// generic functions (== and in): a few thousand take seconds. Bound it
	// before checking.
	calls, nodes := countCalls(parsed)
	if calls > MaxExpressionCalls {
		line, col := firstNonSpace(expr)
		return nil, &Error{Line: line, Column: col, Msg: fmt.Sprintf("caveat %q: expression has %d operators and function calls; the limit is %d", name, calls, MaxExpressionCalls)}
	}
	if nodes > MaxExpressionNodes {
		line, col := firstNonSpace(expr)
		return nil, &Error{Line: line, Column: col, Msg: fmt.Sprintf("caveat %q: expression has %d nodes (literals, names, operators, list elements); the limit is %d", name, nodes, MaxExpressionNodes)}
	}
	ast, iss := env.Check(parsed)
	if iss != nil && iss.Err() != nil {
		return nil, issueError(name, expr, iss)
	}
	if out := ast.OutputType(); !out.IsExactType(cel.BoolType) {
		line, col := firstNonSpace(expr)
		return nil, &Error{Line: line, Column: col, Msg: fmt.Sprintf("caveat %q: expression must evaluate to bool, not %s", name, out)}
	}

	for _, r := range ast.NativeRep().ReferenceMap() {
		if i := c.lookup(r.Name); i >= 0 && !slices.Contains(c.refs, i) {
			c.refs = append(c.refs, i)
		}
	}
	slices.Sort(c.refs)

	// OptOptimize folds constants while planning, and a constant
	// sub-expression that fails (int('x')) fails the planning. SpiceDB
	// accepts such a caveat and reports the failure when it is evaluated, so
	// plan without folding then.
	limits := []cel.ProgramOption{cel.CostLimit(MaxEvalCost), cel.InterruptCheckFrequency(interruptEvery), cel.CustomDecoratorV2(constantCIDR)}
	if c.full, err = env.Program(ast, append(limits, cel.EvalOptions(cel.OptOptimize))...); err != nil {
		if c.full, err = env.Program(ast, limits...); err != nil {
			return nil, &Error{Msg: fmt.Sprintf("caveat %q: planning the program: %v", name, err)}
		}
	}
	if c.partial, err = env.Program(ast, append(limits, cel.EvalOptions(cel.OptPartialEval))...); err != nil {
		return nil, &Error{Msg: fmt.Sprintf("caveat %q: planning the program: %v", name, err)}
	}
	return c, nil
}

// countCalls returns the number of calls (operators, functions, macro
// expansions) in a parsed expression, and the number of its nodes.
func countCalls(a *cel.Ast) (calls, nodes int) {
	celast.PreOrderVisit(a.NativeRep().Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		nodes++
		if e.Kind() == celast.CallKind || e.Kind() == celast.ComprehensionKind {
			calls++
		}
	}))
	return calls, nodes
}

// checkParamName reports why name cannot name a parameter, if it cannot.
func checkParamName(name string) error {
	if name == "" {
		return fmt.Errorf("empty parameter name")
	}
	for i := 0; i < len(name); i++ {
		if !isIdentByte(name[i], i > 0) {
			return fmt.Errorf("parameter name %q is not an identifier (letters, digits and '_', not starting with a digit)", truncate(name))
		}
	}
	if slices.Contains(reservedWords, name) {
		return fmt.Errorf("parameter name %q is a reserved word in CEL", name)
	}
	return nil
}

// lookup returns the index of the parameter called name, or -1.
func (c *Caveat) lookup(name string) int {
	if c.index != nil {
		if i, ok := c.index[name]; ok {
			return i
		}
		return -1
	}
	for i := range c.Params {
		if c.Params[i].Name == name {
			return i
		}
	}
	return -1
}

// issueError converts the first (by position) of CEL's issues into an *Error.
func issueError(name, expr string, iss *cel.Issues) *Error {
	errs := iss.Errors()
	if len(errs) == 0 {
		return &Error{Msg: fmt.Sprintf("caveat %q: %v", name, iss.Err())}
	}
	first := slices.MinFunc(errs, func(a, b *cel.Error) int {
		if c := cmp.Compare(a.Location.Line(), b.Location.Line()); c != 0 {
			return c
		}
		return cmp.Compare(a.Location.Column(), b.Location.Column())
	})
	msg := strings.ReplaceAll(first.Message, " (in container '')", "")
	e := &Error{Msg: fmt.Sprintf("caveat %q: %s", name, msg)}
	if first.Location.Line() > 0 {
		e.Line, e.Column = byteColumn(expr, first.Location.Line(), first.Location.Column())
	}
	if n := len(errs) - 1; n > 0 {
		e.Msg += fmt.Sprintf(" (and %d more errors)", n)
	}
	return e
}

// byteColumn converts CEL's position (1-based line, 0-based column in code
// points) into a 1-based line and 1-based byte column within expr. A
// position past the end of its line is clamped to just after the line.
func byteColumn(expr string, line, runeCol int) (int, int) {
	start := 0
	for l := 1; l < line; l++ {
		nl := strings.IndexByte(expr[start:], '\n')
		if nl < 0 {
			break
		}
		start += nl + 1
	}
	text := expr[start:]
	if nl := strings.IndexByte(text, '\n'); nl >= 0 {
		text = text[:nl]
	}
	off := 0
	for n := 0; n < runeCol && off < len(text); n++ {
		_, size := utf8.DecodeRuneInString(text[off:])
		off += size
	}
	return line, off + 1
}

// firstNonSpace returns the 1-based line and byte column of the first
// non-space byte of s.
func firstNonSpace(s string) (int, int) {
	line, col := 1, 1
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\n':
			line, col = line+1, 1
		case ' ', '\t', '\r':
			col++
		default:
			return line, col
		}
	}
	return line, col
}
