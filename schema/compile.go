package schema

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ambit-authz/ambit/schema/caveats"
	"github.com/ambit-authz/ambit/tuple"
)

// Compile parses src, checks it as SpiceDB does and returns the compiled,
// immutable schema. On any error it returns a nil *Schema and an ErrorList:
// never a partial schema.
func Compile(filename, src string) (*Schema, error) {
	errs := &errorSink{src: src}
	f := parseFile(filename, src, errs)
	if err := errs.err(); err != nil {
		return nil, err
	}
	s := check(f, errs)
	if err := errs.err(); err != nil {
		return nil, err
	}
	return s, nil
}

// Declarations parses src and returns only what its declarations say: every
// definition with its relations (allowed subject types resolved against the
// declared definitions and caveats) and its permissions by name, and every
// caveat by name. It checks no permission expression, no caveat expression,
// no wildcard reach and no cycle, so it runs in one linear pass: the raft
// state machine uses it to check a schema change against the stored
// relationships without compiling, the full Compile having run before the
// change was proposed. The result is not a schema to evaluate with (its
// permissions have no expressions, its caveats no programs).
func Declarations(filename, src string) (*Schema, error) {
	errs := &errorSink{src: src}
	f := parseFile(filename, src, errs)
	if err := errs.err(); err != nil {
		return nil, err
	}
	s := checkWith(f, errs, true)
	if err := errs.err(); err != nil {
		return nil, err
	}
	return s, nil
}

// MustCompile is Compile for tests and fixed schemas: it panics on error.
func MustCompile(filename, src string) *Schema {
	s, err := Compile(filename, src)
	if err != nil {
		panic(err)
	}
	return s
}

// String returns the canonical source of the schema.
func (s *Schema) String() string { return s.Source }

// checker holds the symbol tables of one compilation.
type checker struct {
	errs    *errorSink
	uses    bool
	defs    map[string]*DefinitionDecl
	members map[string]map[string]Member // definition -> name -> member
	cavs    map[string]*CaveatDecl
	out     *Schema
	// wild and wildStack hold wildcardReach's memo and walk.
	wild      map[string]*wildState
	wildStack []*wildState
	// declarationsOnly: see Declarations.
	declarationsOnly bool
}

func check(f *File, errs *errorSink) *Schema { return checkWith(f, errs, false) }

func checkWith(f *File, errs *errorSink, declarationsOnly bool) *Schema {
	c := &checker{
		declarationsOnly: declarationsOnly,
		errs:             errs,
		uses:             len(f.Uses) > 0,
		defs:             map[string]*DefinitionDecl{},
		members:          map[string]map[string]Member{},
		cavs:             map[string]*CaveatDecl{},
		out: &Schema{
			Definitions:    map[string]*Definition{},
			Caveats:        map[string]*caveats.Caveat{},
			UsesExpiration: len(f.Uses) > 0,
		},
	}
	c.declare(f)
	for _, d := range f.Decls {
		if cv, ok := d.(*CaveatDecl); ok && c.cavs[cv.Name] == cv {
			if declarationsOnly {
				c.out.Caveats[cv.Name] = &caveats.Caveat{Name: cv.Name}
				continue
			}
			c.checkCaveat(cv)
		}
	}
	for _, d := range f.Decls {
		if def, ok := d.(*DefinitionDecl); ok && c.defs[def.Name] == def {
			c.checkDefinition(def)
		}
	}
	if declarationsOnly {
		if len(errs.list) > 0 {
			return nil
		}
		return c.out
	}
	for _, d := range f.Decls {
		if def, ok := d.(*DefinitionDecl); ok && c.defs[def.Name] == def {
			c.checkCycles(def)
		}
	}
	if len(errs.list) > 0 {
		return nil
	}
	c.out.Warnings = c.out.Warnings.sortAndDedup()
	c.out.Source = Print(f)
	c.out.Hash = DigestOf(c.out.Source).String()
	return c.out
}

func (c *checker) errorf(pos Pos, format string, args ...any) {
	c.errs.add(pos, fmt.Sprintf(format, args...))
}

// nameError rewords a tuple validation error without its sentinel prefix.
func nameError(err error) string {
	msg := err.Error()
	for _, sentinel := range []error{tuple.ErrInvalidTyp, tuple.ErrInvalidRel} {
		if errors.Is(err, sentinel) {
			msg = strings.TrimPrefix(msg, sentinel.Error()+" ")
		}
	}
	return msg
}

// declare builds the symbol tables and reports duplicate and invalid names.
func (c *checker) declare(f *File) {
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *DefinitionDecl:
			if err := tuple.ValidateType(d.Name); err != nil {
				c.errorf(d.NamePos, "invalid definition name %s", nameError(err))
			}
			if prev, ok := c.defs[d.Name]; ok {
				c.errorf(d.NamePos, "definition %q is already declared at line %d", d.Name, prev.NamePos.Line)
				continue
			}
			if prev, ok := c.cavs[d.Name]; ok {
				c.errorf(d.NamePos, "%q is already the name of the caveat at line %d: definitions and caveats share one namespace", d.Name, prev.NamePos.Line)
				continue
			}
			c.defs[d.Name] = d
			ms := map[string]Member{}
			c.members[d.Name] = ms
			for _, m := range d.Members {
				name, pos := m.MemberName()
				if err := tuple.ValidateRelation(name); err != nil {
					c.errorf(pos, "invalid %s name %s", memberKind(m), nameError(err))
				}
				if prev, ok := ms[name]; ok {
					_, ppos := prev.MemberName()
					c.errorf(pos, "%q is already declared as a %s of definition %q at line %d", name, memberKind(prev), d.Name, ppos.Line)
					continue
				}
				ms[name] = m
			}
		case *CaveatDecl:
			if err := tuple.ValidateType(d.Name); err != nil {
				c.errorf(d.NamePos, "invalid caveat name %s", strings.Replace(nameError(err), "type name", "caveat name", 1))
			}
			if prev, ok := c.cavs[d.Name]; ok {
				c.errorf(d.NamePos, "caveat %q is already declared at line %d", d.Name, prev.NamePos.Line)
				continue
			}
			if prev, ok := c.defs[d.Name]; ok {
				c.errorf(d.NamePos, "%q is already the name of the definition at line %d: definitions and caveats share one namespace", d.Name, prev.NamePos.Line)
				continue
			}
			c.cavs[d.Name] = d
		}
	}
}

// caveatTypeArity lists the caveat parameter types and how many type
// arguments each takes.
var caveatTypeArity = map[string]int{
	"any": 0, "int": 0, "uint": 0, "bool": 0, "string": 0, "double": 0,
	"bytes": 0, "duration": 0, "timestamp": 0, "ipaddress": 0,
	"list": 1, "map": 1,
}

// checkCaveatType validates t and returns its normalised spelling.
func (c *checker) checkCaveatType(t *CaveatType) (string, bool) {
	n, ok := caveatTypeArity[t.Name]
	if !ok {
		c.errorf(t.Pos, "unknown caveat parameter type %q (known: any, int, uint, bool, string, double, bytes, duration, timestamp, ipaddress, list<T>, map<T>)", t.Name)
		return "", false
	}
	if len(t.Args) != n {
		if n == 0 {
			c.errorf(t.Pos, "caveat parameter type %q takes no type arguments", t.Name)
		} else {
			c.errorf(t.Pos, "caveat parameter type %q takes exactly %d type argument, found %d", t.Name, n, len(t.Args))
		}
		return "", false
	}
	if n == 0 {
		return t.Name, true
	}
	args := make([]string, len(t.Args))
	for i, a := range t.Args {
		s, ok := c.checkCaveatType(a)
		if !ok {
			return "", false
		}
		args[i] = s
	}
	return t.Name + "<" + strings.Join(args, ", ") + ">", true
}

func validCELIdent(s string) bool {
	if s == "" || !(s[0] == '_' || s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isIdentByte(s[i]) {
			return false
		}
	}
	return true
}

func (c *checker) checkCaveat(cv *CaveatDecl) {
	params := make([]caveats.Param, 0, len(cv.Params))
	seen := map[string]bool{}
	ok := true
	for _, prm := range cv.Params {
		if !validCELIdent(prm.Name) {
			c.errorf(prm.Pos, "invalid caveat parameter name %q: must match [a-zA-Z_][a-zA-Z0-9_]*", prm.Name)
			ok = false
			continue
		}
		if seen[prm.Name] {
			c.errorf(prm.Pos, "caveat parameter %q is declared more than once", prm.Name)
			ok = false
			continue
		}
		seen[prm.Name] = true
		typ, tok := c.checkCaveatType(prm.Type)
		if !tok {
			ok = false
			continue
		}
		params = append(params, caveats.Param{Name: prm.Name, Type: typ})
	}
	if !ok {
		return
	}
	compiled, err := compileCaveat(cv.Name, params, cv.Body)
	if err != nil {
		var ce *caveats.Error
		switch {
		case errors.As(err, &ce) && ce.Param != "":
			pos := cv.NamePos
			for _, prm := range cv.Params {
				if prm.Name == ce.Param {
					pos = prm.Pos
				}
			}
			c.errs.add(pos, ce.Msg)
		case errors.As(err, &ce):
			c.errs.add(bodyPos(cv, ce.Line, ce.Column), ce.Msg)
		default:
			c.errorf(cv.BodyPos, "caveat %q: %v", cv.Name, err)
		}
		return
	}
	refs := referencedNames(cv.Body)
	for _, prm := range cv.Params {
		if !refs[prm.Name] {
			c.errorf(prm.Pos, "caveat parameter %q is never used in the expression of caveat %q", prm.Name, cv.Name)
			return
		}
	}
	c.out.Caveats[cv.Name] = compiled
}

// bodyPos maps a 1-based line and column inside a caveat expression to a
// position in the file. Unknown (0) values map to the start of the body.
func bodyPos(cv *CaveatDecl, line, col int) Pos {
	pos := cv.BodyPos
	if line <= 0 {
		return pos
	}
	off := 0 // offset in Body of the start of line
	for l := 1; l < line; l++ {
		i := strings.IndexByte(cv.Body[off:], '\n')
		if i < 0 {
			return pos
		}
		off += i + 1
	}
	lineLen := strings.IndexByte(cv.Body[off:], '\n')
	if lineLen < 0 {
		lineLen = len(cv.Body) - off
	}
	col = max(1, min(col, lineLen+1))
	if line == 1 {
		pos.Col += col - 1
	} else {
		pos.Line += line - 1
		pos.Col = col
	}
	pos.Offset += off + col - 1
	return pos
}

func (c *checker) checkDefinition(d *DefinitionDecl) {
	out := &Definition{Name: d.Name, Relations: map[string]*Relation{}}
	for _, m := range d.Members {
		name, _ := m.MemberName()
		if c.members[d.Name][name] != m {
			continue
		}
		var r *Relation
		switch m := m.(type) {
		case *RelationDecl:
			r = c.checkRelation(d, m)
		case *PermissionDecl:
			if c.declarationsOnly {
				r = &Relation{Name: m.Name, Definition: d.Name, IsPermission: true}
			} else if e := c.checkExpr(d, m, m.Expr); e != nil {
				r = &Relation{Name: m.Name, Definition: d.Name, IsPermission: true, Expr: e}
			}
		}
		if r != nil {
			out.Relations[name] = r
			out.Order = append(out.Order, name)
		}
	}
	c.out.Definitions[d.Name] = out
}

func (c *checker) checkRelation(d *DefinitionDecl, r *RelationDecl) *Relation {
	out := &Relation{Name: r.Name, Definition: d.Name}
	seen := map[AllowedType]bool{}
	for _, t := range r.Types {
		at := AllowedType{Type: t.Type, Relation: t.Relation, Wildcard: t.Wildcard, Caveat: t.Caveat, Expiration: t.Expiration}
		// Without `use expiration`, SpiceDB reads `with expiration` as a
		// caveat named "expiration"; honour that when such a caveat exists.
		if !c.uses && t.Expiration && t.Caveat == "" && c.cavs["expiration"] != nil {
			at.Caveat, at.Expiration = "expiration", false
		}
		target, ok := c.defs[t.Type]
		if !ok {
			c.errorf(t.Pos, "relation %q allows subject type %q, which is not defined", r.Name, t.Type)
			continue
		}
		if t.Relation != "" {
			if _, ok := c.members[target.Name][t.Relation]; !ok {
				c.errorf(t.RelationPos, "relation %q allows %s#%s, but %q has no relation or permission %q", r.Name, t.Type, t.Relation, t.Type, t.Relation)
				continue
			}
			// As in SpiceDB, a subject set on the definition itself is exempt
			// (Declarations does not look: see there).
			if wt, via := c.wildcardReachUnlessDeclarations(t.Type, t.Relation); wt != "" && t.Type != d.Name {
				c.errorf(t.RelationPos, "relation %q allows %s#%s, which includes the wildcard %s:* through %s: wildcards cannot be included transitively", r.Name, t.Type, t.Relation, wt, via)
				continue
			}
		}
		if at.Caveat != "" {
			if _, ok := c.cavs[at.Caveat]; !ok {
				c.errorf(t.CaveatPos, "caveat %q is not defined", at.Caveat)
				continue
			}
		}
		if at.Expiration && !c.uses {
			c.errorf(t.ExpPos, "`with expiration` requires `use expiration` at the top of the schema")
			continue
		}
		if seen[at] {
			c.errorf(t.Pos, "relation %q lists subject type %s more than once", r.Name, formatTypeRef(t))
			continue
		}
		seen[at] = true
		out.AllowedTypes = append(out.AllowedTypes, at)
	}
	return out
}

func (c *checker) wildcardReachUnlessDeclarations(typ, rel string) (wildType, via string) {
	if c.declarationsOnly {
		return "", ""
	}
	return c.wildcardReach(typ, rel)
}

// wildcardReach reports whether relation typ#rel can hold a wildcard, directly
// or through subject relations that are themselves relations (not
// permissions), as SpiceDB's type system does. It returns the wildcard's type
// and the relation that allows it.
//
// Answers are memoised for every relation the walk passes, so a compilation
// walks each subject-relation edge once however many references ask (the
// walk per reference was quadratic: 500 definitions of 30 subject sets took
// minutes). Relations on a cycle of subject sets share one answer, found by
// Tarjan's strongly connected components algorithm; elsewhere the answer is
// the first wildcard in declaration order, depth first, as before.
func (c *checker) wildcardReach(typ, rel string) (wildType, via string) {
	if c.wild == nil {
		c.wild = map[string]*wildState{}
	}
	w := c.wildVisit(typ, rel)
	return w.typ, w.via
}

// wildState is one relation's place in wildcardReach's walk and, once
// done, its answer.
type wildState struct {
	index, low int
	onStack    bool
	typ, via   string
}

func (c *checker) wildVisit(typ, rel string) *wildState {
	key := typ + "#" + rel
	if st, ok := c.wild[key]; ok {
		return st
	}
	st := &wildState{index: len(c.wild), low: len(c.wild), onStack: true}
	c.wild[key] = st
	c.wildStack = append(c.wildStack, st)
	if r, ok := c.members[typ][rel].(*RelationDecl); ok {
		for _, t := range r.Types {
			if st.typ != "" {
				break
			}
			switch {
			case t.Wildcard:
				st.typ, st.via = t.Type, key
			case t.Relation != "":
				child := c.wildVisit(t.Type, t.Relation)
				if child.onStack {
					st.low = min(st.low, child.low)
				} else if child.typ != "" {
					st.typ, st.via = child.typ, child.via
				}
			}
		}
	}
	if st.low != st.index {
		return st // part of a cycle whose first relation is still open
	}
	// st closes a component: everything above it on the stack. One wildcard
	// reachable from any of them is reachable from all.
	i := len(c.wildStack) - 1
	for c.wildStack[i] != st {
		i--
	}
	comp := c.wildStack[i:]
	w := st
	for _, m := range comp {
		if w.typ == "" && m.typ != "" {
			w = m
		}
	}
	for _, m := range comp {
		m.onStack = false
		m.typ, m.via = w.typ, w.via
	}
	c.wildStack = c.wildStack[:i]
	return st
}

// checkExpr resolves a permission expression, reporting every problem.
func (c *checker) checkExpr(d *DefinitionDecl, perm *PermissionDecl, e ExprNode) Expr {
	switch e := e.(type) {
	case *NilExpr:
		return &Nil{}
	case *IdentExpr:
		if _, ok := c.members[d.Name][e.Name]; !ok {
			c.errorf(e.Pos, "permission %q refers to %q, which is not a relation or permission of definition %q", perm.Name, e.Name, d.Name)
			return nil
		}
		return &RelationRef{Name: e.Name}
	case *ArrowExpr:
		return c.checkArrow(d, perm, e)
	case *BinaryExpr:
		x := c.checkExpr(d, perm, e.X)
		y := c.checkExpr(d, perm, e.Y)
		if x == nil || y == nil {
			return nil
		}
		switch e.Op {
		case PLUS:
			return &Union{Children: appendFlat(nil, x, y, func(x Expr) []Expr {
				if u, ok := x.(*Union); ok {
					return u.Children
				}
				return nil
			})}
		case AMP:
			return &Intersection{Children: appendFlat(nil, x, y, func(x Expr) []Expr {
				if u, ok := x.(*Intersection); ok {
					return u.Children
				}
				return nil
			})}
		default:
			return &Exclusion{Base: x, Subtracted: y}
		}
	}
	return nil
}

// appendFlat appends x and y, splicing in the children of either when it is
// of the same associative operator.
func appendFlat(out []Expr, x, y Expr, children func(Expr) []Expr) []Expr {
	for _, e := range []Expr{x, y} {
		if ch := children(e); ch != nil {
			out = append(out, ch...)
		} else {
			out = append(out, e)
		}
	}
	return out
}

func (c *checker) checkArrow(d *DefinitionDecl, perm *PermissionDecl, a *ArrowExpr) Expr {
	left, ok := a.Left.(*IdentExpr)
	if !ok {
		c.errorf(a.ArrowPos, "permission %q chains arrows: nested arrows are not supported; introduce a permission for the inner arrow", perm.Name)
		return nil
	}
	m, ok := c.members[d.Name][left.Name]
	if !ok {
		c.errorf(left.Pos, "permission %q: arrow starts at %q, which is not a relation of definition %q", perm.Name, left.Name, d.Name)
		return nil
	}
	rel, ok := m.(*RelationDecl)
	if !ok {
		c.errorf(left.Pos, "permission %q: arrow starts at permission %q; only relations can be on the left of an arrow", perm.Name, left.Name)
		return nil
	}
	if wt, via := c.wildcardReach(d.Name, rel.Name); wt != "" {
		c.errorf(left.Pos, "permission %q: arrow starts at relation %q, which includes the wildcard %s:* through %s: wildcards cannot be on the left of an arrow", perm.Name, rel.Name, wt, via)
		return nil
	}
	found := false
	for _, t := range rel.Types {
		if _, ok := c.members[t.Type][a.Right.Name]; ok {
			found = true
			break
		}
	}
	if !found {
		// SpiceDB accepts this with a warning; the arrow is always empty.
		c.out.Warnings = append(c.out.Warnings, &Error{
			Pos:    a.Right.Pos,
			Msg:    fmt.Sprintf("permission %q: arrow %s->%s: %q is not a relation or permission of any subject type of relation %q, so the arrow is always empty", perm.Name, rel.Name, a.Right.Name, a.Right.Name, rel.Name),
			Source: lineAt(c.errs.src, a.Right.Pos),
		})
	}
	fn := ArrowAny
	if a.Func == "all" {
		fn = ArrowAll
	}
	return &Arrow{Tupleset: rel.Name, Computed: a.Right.Name, Func: fn}
}

// checkCycles reports permissions that depend on themselves without going
// through an arrow (an arrow moves to other objects; a plain reference does
// not, so such a cycle could never be evaluated).
func (c *checker) checkCycles(d *DefinitionDecl) {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var visit func(p *PermissionDecl)
	visit = func(p *PermissionDecl) {
		color[p.Name] = grey
		stack = append(stack, p.Name)
		reported := false
		walkRefs(p.Expr, func(id *IdentExpr) {
			if reported {
				return
			}
			q, ok := c.members[d.Name][id.Name].(*PermissionDecl)
			if !ok {
				return
			}
			switch color[q.Name] {
			case grey:
				i := len(stack) - 1
				for stack[i] != q.Name {
					i--
				}
				path := append(append([]string{}, stack[i:]...), q.Name)
				c.errorf(id.Pos, "permission %q depends on itself without an arrow: %s", q.Name, strings.Join(path, " -> "))
				reported = true
			case white:
				visit(q)
			}
		})
		stack = stack[:len(stack)-1]
		color[p.Name] = black
	}
	for _, m := range d.Members {
		if p, ok := m.(*PermissionDecl); ok && color[p.Name] == white && c.members[d.Name][p.Name] == m {
			visit(p)
		}
	}
}

// walkRefs calls fn for every plain reference (not arrow sides) in e.
func walkRefs(e ExprNode, fn func(*IdentExpr)) {
	switch e := e.(type) {
	case *IdentExpr:
		fn(e)
	case *BinaryExpr:
		walkRefs(e.X, fn)
		walkRefs(e.Y, fn)
	}
}
