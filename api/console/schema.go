package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/ambit-authz/ambit/internal/v1pb"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
)

// Token is one highlighted run of schema text: bytes [Start, End) of the
// source and its class ("kw", "name", "comment" or "op").
type Token struct {
	Start int    `json:"start"`
	End   int    `json:"end"`
	Class string `json:"class"`
}

// Highlight splits schema source into classed tokens with the schema
// package's own scanner, so the page colours exactly what the compiler
// reads; bytes between tokens (space, and anything unscannable) are plain.
func Highlight(src string) []Token {
	var s schema.Scanner
	s.Init("schema", src, nil)
	out := []Token{}
	for n := 0; n < len(src)+1; n++ { // each Scan consumes at least a byte or ends
		pos, tok, lit := s.Scan()
		if tok == schema.EOF {
			break
		}
		class := ""
		switch {
		case tok.IsKeyword():
			class = "kw"
		case tok == schema.COMMENT:
			class = "comment"
		case tok == schema.IDENT:
			class = "name"
		case tok == schema.SEMICOLON || tok == schema.ILLEGAL:
			continue
		default:
			class = "op"
		}
		if end := pos.Offset + len(lit); lit != "" && end <= len(src) {
			out = append(out, Token{Start: pos.Offset, End: end, Class: class})
		}
	}
	return out
}

// Diagram is a schema as boxes and arrows: each definition with its
// relations and permissions, and an edge for each subject type a relation
// allows, each relation a permission uses, and each arrow.
type Diagram struct {
	Definitions []DiagramDef  `json:"definitions"`
	Edges       []DiagramEdge `json:"edges"`
}

// DiagramDef is one definition. Rank orders definitions left to right:
// 0 for one that refers to no other, else one more than the highest it
// refers to (cycles broken).
type DiagramDef struct {
	Name      string       `json:"name"`
	Rank      int          `json:"rank"`
	Relations []DiagramRel `json:"relations"`
}

// DiagramRel is a relation (its allowed types) or a permission (its
// expression).
type DiagramRel struct {
	Name       string `json:"name"`
	Permission bool   `json:"permission"`
	Text       string `json:"text"`
}

// DiagramEdge goes from a relation or permission ("doc#viewer") to what it
// refers to: a definition ("user"), a subject set ("group#member"), or a
// relation of the same or another definition. Kind is type, computed or
// arrow (Via names the tupleset relation of an arrow).
type DiagramEdge struct {
	From string `json:"from"`
	To   string `json:"to"`
	Kind string `json:"kind"`
	Via  string `json:"via,omitempty"`
}

// SchemaDiagram compiles src and draws it.
func SchemaDiagram(src string) (*Diagram, error) {
	if strings.TrimSpace(src) == "" {
		return &Diagram{Definitions: []DiagramDef{}, Edges: []DiagramEdge{}}, nil
	}
	s, err := schema.Compile("schema", src)
	if err != nil {
		return nil, err
	}
	return diagramOf(s), nil
}

func diagramOf(s *schema.Schema) *Diagram {
	d := &Diagram{Definitions: []DiagramDef{}, Edges: []DiagramEdge{}}
	names := make([]string, 0, len(s.Definitions))
	for n := range s.Definitions {
		names = append(names, n)
	}
	sort.Strings(names)
	refs := map[string]map[string]bool{} // definition -> definitions it refers to
	edge := func(e DiagramEdge) {
		d.Edges = append(d.Edges, e)
		from, _, _ := strings.Cut(e.From, "#")
		to, _, _ := strings.Cut(e.To, "#")
		if from != to {
			if refs[from] == nil {
				refs[from] = map[string]bool{}
			}
			refs[from][to] = true
		}
	}
	for _, n := range names {
		def := s.Definitions[n]
		dd := DiagramDef{Name: n, Relations: []DiagramRel{}}
		for _, rn := range def.Order {
			r := def.Relations[rn]
			from := n + "#" + rn
			if !r.IsPermission {
				var types []string
				for _, at := range r.AllowedTypes {
					types = append(types, at.String())
					to := at.Type
					if at.Relation != "" {
						to += "#" + at.Relation
					}
					edge(DiagramEdge{From: from, To: to, Kind: "type"})
				}
				dd.Relations = append(dd.Relations, DiagramRel{Name: rn, Text: strings.Join(types, " | ")})
				continue
			}
			dd.Relations = append(dd.Relations, DiagramRel{Name: rn, Permission: true, Text: exprText(r.Expr)})
			walkExpr(r.Expr, func(e schema.Expr) {
				switch e := e.(type) {
				case *schema.RelationRef:
					edge(DiagramEdge{From: from, To: n + "#" + e.Name, Kind: "computed"})
				case *schema.Arrow:
					ts := def.Relations[e.Tupleset]
					if ts == nil {
						return
					}
					seen := map[string]bool{}
					for _, at := range ts.AllowedTypes {
						target := s.Relation(at.Type, e.Computed)
						if target == nil || seen[at.Type] {
							continue
						}
						seen[at.Type] = true
						edge(DiagramEdge{From: from, To: at.Type + "#" + e.Computed, Kind: "arrow", Via: e.Tupleset})
					}
				}
			})
		}
		d.Definitions = append(d.Definitions, dd)
	}
	// Ranks: longest chain of references, a definition on a cycle counted once.
	rank := map[string]int{}
	var visit func(n string, onPath map[string]bool) int
	visit = func(n string, onPath map[string]bool) int {
		if r, ok := rank[n]; ok {
			return r
		}
		onPath[n] = true
		r := 0
		for to := range refs[n] {
			if onPath[to] {
				continue
			}
			r = max(r, visit(to, onPath)+1)
		}
		delete(onPath, n)
		rank[n] = r
		return r
	}
	for i := range d.Definitions {
		d.Definitions[i].Rank = visit(d.Definitions[i].Name, map[string]bool{})
	}
	return d
}

func walkExpr(e schema.Expr, fn func(schema.Expr)) {
	fn(e)
	switch e := e.(type) {
	case *schema.Union:
		for _, c := range e.Children {
			walkExpr(c, fn)
		}
	case *schema.Intersection:
		for _, c := range e.Children {
			walkExpr(c, fn)
		}
	case *schema.Exclusion:
		walkExpr(e.Base, fn)
		walkExpr(e.Subtracted, fn)
	}
}

// exprText prints a permission expression, parenthesising every nested
// operator.
func exprText(e schema.Expr) string {
	join := func(cs []schema.Expr, op string) string {
		parts := make([]string, len(cs))
		for i, c := range cs {
			parts[i] = nested(c)
		}
		return strings.Join(parts, op)
	}
	switch e := e.(type) {
	case *schema.Union:
		return join(e.Children, " + ")
	case *schema.Intersection:
		return join(e.Children, " & ")
	case *schema.Exclusion:
		return nested(e.Base) + " - " + nested(e.Subtracted)
	case *schema.RelationRef:
		return e.Name
	case *schema.Arrow:
		switch e.Func {
		case schema.ArrowAll:
			return e.Tupleset + ".all(" + e.Computed + ")"
		}
		return e.Tupleset + "->" + e.Computed
	case *schema.Nil:
		return "nil"
	}
	return "?"
}

func nested(e schema.Expr) string {
	switch e.(type) {
	case *schema.Union, *schema.Intersection, *schema.Exclusion:
		return "(" + exprText(e) + ")"
	}
	return exprText(e)
}

// Problem is an error or warning at a line and column of the schema text
// (Line 0: not tied to a place).
type Problem struct {
	Line    int    `json:"line"`
	Col     int    `json:"col"`
	Message string `json:"message"`
}

// compileProblems compiles src: the schema if it compiles, else the
// positioned errors; and the warnings.
func compileProblems(src string) (*schema.Schema, []Problem, []Problem) {
	s, err := schema.Compile("schema", src)
	if err != nil {
		return nil, problemsOf(err), nil
	}
	return s, nil, problemsOf(s.Warnings)
}

func problemsOf(err error) []Problem {
	var out []Problem
	var list schema.ErrorList
	var one *schema.Error
	switch {
	case errors.As(err, &list):
		for _, e := range list {
			out = append(out, Problem{Line: e.Pos.Line, Col: e.Pos.Col, Message: e.Msg})
		}
	case errors.As(err, &one):
		out = append(out, Problem{Line: one.Pos.Line, Col: one.Pos.Col, Message: one.Msg})
	case err != nil:
		out = append(out, Problem{Message: err.Error()})
	}
	return out
}

// orphanScan bounds how many relationships of a removed subject type the
// orphan check reads (each validated against the new schema).
const orphanScan = 1000

// orphaned finds what writing next (compiled from text) over prev would
// orphan, as the server's schema guard would refuse it, through the public
// API as the caller: a removed definition or relation, or one turned into a
// permission, that relationships still use; an allowed subject type removed
// while relationships still use it. Each problem is placed at the
// definition or relation in the new text (line 1 when it is gone).
func (h *Handler) orphaned(ctx context.Context, prevText, text string, next *schema.Schema) ([]Problem, error) {
	if strings.TrimSpace(prevText) == "" {
		return nil, nil
	}
	prev, err := schema.Declarations("schema", prevText)
	if err != nil {
		return nil, nil // the stored schema is the server's business
	}
	places := declPlaces(text)
	place := func(def, rel string) (int, int) {
		if p, ok := places[def+"#"+rel]; ok {
			return p.Line, p.Col
		}
		if p, ok := places[def]; ok {
			return p.Line, p.Col
		}
		return 1, 1
	}
	var out []Problem
	for _, rm := range schema.Removals(prev, next) {
		f := &v1.RelationshipFilter{ResourceType: rm.Definition, OptionalRelation: rm.Relation}
		line, col := place(rm.Definition, rm.Relation)
		if rm.Kind != schema.RemovedTypes {
			rels, err := h.read(ctx, f, 1)
			if err != nil {
				return nil, err
			}
			if len(rels) > 0 {
				out = append(out, Problem{Line: line, Col: col, Message: fmt.Sprintf("this change %s, but relationships still use it (e.g. %s); delete them first", rm.What(), rels[0])})
			}
			continue
		}
		for _, at := range rm.Types {
			sf := &v1.SubjectFilter{SubjectType: at.Type}
			if at.Wildcard {
				sf.OptionalSubjectId = tuple.Wildcard
			} else {
				sf.OptionalRelation = &v1.SubjectFilter_RelationFilter{Relation: at.Relation}
			}
			f.OptionalSubjectFilter = sf
			rels, err := h.read(ctx, f, orphanScan)
			if err != nil {
				return nil, err
			}
			for _, rel := range rels {
				if next.ValidateRelationship(rel) != nil {
					out = append(out, Problem{Line: line, Col: col, Message: fmt.Sprintf("this change no longer allows %s on %s#%s, but relationship %s uses it; delete or rewrite such relationships first", at, rm.Definition, rm.Relation, rel)})
					break
				}
			}
		}
	}
	return out, nil
}

// read returns up to limit relationships a filter matches, fully consistent.
func (h *Handler) read(ctx context.Context, f *v1.RelationshipFilter, limit int) ([]tuple.Relationship, error) {
	stream, err := h.permissions().ReadRelationships(ctx, &v1.ReadRelationshipsRequest{RelationshipFilter: f, OptionalLimit: uint32(limit),
		Consistency: &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}})
	if err != nil {
		return nil, err
	}
	var out []tuple.Relationship
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		r, err := v1pb.RelationshipFromV1(resp.GetRelationship(), "relationship")
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
}

// declPlaces maps "def" and "def#rel" to where they are declared in src.
func declPlaces(src string) map[string]schema.Pos {
	out := map[string]schema.Pos{}
	f, err := schema.Parse("schema", src)
	if err != nil || f == nil {
		return out // the compile errors say what is wrong
	}
	for _, d := range f.Decls {
		def, ok := d.(*schema.DefinitionDecl)
		if !ok {
			continue
		}
		out[def.Name] = def.NamePos
		for _, m := range def.Members {
			name, pos := m.MemberName()
			out[def.Name+"#"+name] = pos
		}
	}
	return out
}
