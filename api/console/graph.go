package console

import (
	"slices"
	"strings"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/tuple"
)

// Graph is an explanation drawn as a graph: nodes are objects ("user:ana")
// and usersets ("group:lab#member", "document:d1#view"), edges are
// relationships (subject -> resource#relation) and the steps of the schema
// (a relation feeding a permission, an arrow). The page lays nodes out in
// columns by Col (the subject's side at the left, the asked
// resource#permission at the right) and rows by Row.
type Graph struct {
	Nodes []GraphNode `json:"nodes"`
	Edges []GraphEdge `json:"edges"`
}

// GraphNode is one object or userset. Role is "subject" for the subject
// asked about, "resource" for the asked resource#permission, else "".
// Result is HAS, NO or CONDITIONAL for a userset the evaluation reached,
// "" for a plain object.
type GraphNode struct {
	ID string `json:"id"`
	// Label is a short text for a note node (the whole note is its ID).
	Label  string `json:"label,omitempty"`
	Kind   string `json:"kind"` // object, userset or note
	Role   string `json:"role,omitempty"`
	Result string `json:"result,omitempty"`
	Col    int    `json:"col"`
	Row    int    `json:"row"`
}

// GraphEdge is one step. State says how it took part:
//
//	grant    it carries the access (both ends grant): the highlighted path
//	failed   it was evaluated and does not grant
//	missing  the relationship that would grant is not stored (a failed route)
//	expired  the relationship that would grant has expired
//	excluded an exclusion's subtracted side that matched: it removes access
//
// Kind is relationship, computed (a relation or permission feeding
// another), arrow (Label "tupleset->computed") or note. Proof marks the
// edges of the shortest proof.
type GraphEdge struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Kind  string `json:"kind"`
	Label string `json:"label,omitempty"`
	State string `json:"state"`
	Proof bool   `json:"proof,omitempty"`
	Note  string `json:"note,omitempty"`
}

// BuildGraph turns an explanation tree into a Graph. subject is the
// subject asked about; proof the relationships of the shortest proof. For a
// grant, unless all, only the granting edges are kept (as `ambit check
// --explain` folds the branches that do not grant); a denial keeps every
// route, since together they are why.
func BuildGraph(root *engine.Why, subject tuple.SubjectRef, proof []tuple.Relationship, all bool) *Graph {
	b := &graphBuilder{g: &Graph{Nodes: []GraphNode{}, Edges: []GraphEdge{}}, nodes: map[string]int{}, edges: map[[3]string]int{}, depth: map[string]int{},
		proof: map[tuple.Key]bool{}}
	for _, r := range proof {
		b.proof[r.Key()] = true
	}
	if root == nil {
		return b.g
	}
	rootID := b.walk(root, route{}, 0)
	// The subject asked about stands leftmost, where every path starts.
	deepest := 0
	for _, d := range b.depth {
		deepest = max(deepest, d)
	}
	b.node(subject.String(), subjectKind(subject), "", deepest)
	b.g.Nodes[b.nodes[subject.String()]].Role = "subject"
	if rootID != "" {
		b.g.Nodes[b.nodes[rootID]].Role = "resource"
	}
	if !all && root.Result != engine.NoPermission {
		b.keepGranting()
	}
	b.layout()
	return b.g
}

type graphBuilder struct {
	g     *Graph
	nodes map[string]int    // id -> index
	edges map[[3]string]int // from, to, label -> index
	depth map[string]int    // id -> deepest distance from the root
	proof map[tuple.Key]bool
	notes int
}

func subjectKind(s tuple.SubjectRef) string {
	if s.Relation != "" {
		return "userset"
	}
	return "object"
}

func (b *graphBuilder) node(id, kind, result string, depth int) {
	if i, ok := b.nodes[id]; ok {
		n := &b.g.Nodes[i]
		if n.Result == "" || result == "HAS" || result == "CONDITIONAL" && n.Result == "NO" {
			if result != "" {
				n.Result = result
			}
		}
	} else {
		b.nodes[id] = len(b.g.Nodes)
		b.g.Nodes = append(b.g.Nodes, GraphNode{ID: id, Kind: kind, Result: result})
	}
	b.depth[id] = max(b.depth[id], depth)
}

func (b *graphBuilder) edge(e GraphEdge) {
	k := [3]string{e.From, e.To, e.Label}
	if i, ok := b.edges[k]; ok {
		old := &b.g.Edges[i]
		if e.State == "grant" {
			old.State = "grant"
		}
		old.Proof = old.Proof || e.Proof
		return
	}
	b.edges[k] = len(b.g.Edges)
	b.g.Edges = append(b.g.Edges, e)
}

// route is where an explanation node's result flows: the userset node it
// feeds (target, "" at the root) and that node's result, the arrow it
// passes through (label), whether it is an exclusion's subtracted side, and
// the tupleset relationship of an arrow that leads to it (via).
type route struct {
	target, targetResult, label string
	subtracted                  bool
	via                         *tuple.Relationship
}

// state is how an edge into the route's target took part, given whether
// its source grants.
func (rt route) state(grants bool) string {
	switch {
	case rt.subtracted && grants:
		return "excluded"
	case grants && !rt.subtracted && rt.targetResult != "NO":
		return "grant"
	}
	return "failed"
}

// walk adds n along rt at depth (distance from the root). It returns n's
// node id for a check node.
func (b *graphBuilder) walk(n *engine.Why, rt route, depth int) string {
	result := resultWord(n.Result)
	grants := n.Result == engine.HasPermission || n.Result == engine.ConditionalPermission
	switch n.Kind {
	case engine.WhyCheck:
		id := n.Resource.String() + "#" + n.Relation
		b.node(id, "userset", result, depth)
		if rt.target != "" && rt.target != id {
			e := GraphEdge{From: id, To: rt.target, Kind: "computed", State: rt.state(grants), Note: n.Note}
			if rt.label != "" {
				e.Kind, e.Label = "arrow", rt.label
			}
			if rt.via != nil {
				e.Note, e.Proof = rt.via.String(), b.proof[rt.via.Key()]
			}
			b.edge(e)
		}
		for _, c := range n.Children {
			// What feeds an exclusion's subtracted side is part of it.
			b.walk(c, route{target: id, targetResult: result, subtracted: rt.subtracted}, depth+1)
		}
		return id
	case engine.WhyUnion, engine.WhyIntersection:
		for _, c := range n.Children {
			b.walk(c, rt, depth)
		}
	case engine.WhyExclusion:
		for i, c := range n.Children {
			sub := rt
			sub.subtracted = rt.subtracted || i > 0
			b.walk(c, sub, depth)
		}
	case engine.WhyArrow:
		for _, c := range n.Children {
			sub := rt
			sub.label = n.Relation
			b.walk(c, sub, depth)
		}
	case engine.WhyRelationship, engine.WhyMissing, engine.WhyExpired:
		r := n.Relationship
		if r == nil { // a route with nothing to name but a note
			b.noteNode(n, rt.target, depth)
			return ""
		}
		subj := r.Subject.String()
		e := GraphEdge{From: subj, To: rt.target, Kind: "relationship", Label: r.Relation, Note: n.Note, Proof: b.proof[r.Key()]}
		switch n.Kind {
		case engine.WhyMissing:
			e.State = "missing"
		case engine.WhyExpired:
			e.State = "expired"
		default:
			e.State = rt.state(grants)
		}
		if rt.label != "" && len(n.Children) > 0 && n.Kind == engine.WhyRelationship {
			// An arrow's tupleset relationship: what it leads to (the
			// computed relation on its subject) feeds the target.
			for _, c := range n.Children {
				sub := rt
				sub.via = r
				b.walk(c, sub, depth)
			}
			return ""
		}
		if rt.label != "" {
			e.Kind, e.Label, e.Note = "arrow", rt.label, strings.TrimSpace(r.String()+"  "+n.Note)
		}
		b.node(subj, subjectKind(r.Subject), "", depth+1)
		if rt.target != "" {
			b.edge(e)
		}
		// A subject set's own evaluation hangs below it.
		for _, c := range n.Children {
			b.walk(c, route{target: subj, targetResult: result, subtracted: rt.subtracted}, depth+1)
		}
	case engine.WhyNoParent:
		b.noteNode(n, rt.target, depth)
	}
	return ""
}

// noteNode draws a route that ends in words (an arrow with no parent, a
// missing subject set) as a note node failing into target.
func (b *graphBuilder) noteNode(n *engine.Why, target string, depth int) {
	b.notes++
	id := n.Kind.String() + ": " + n.Note
	b.node(id, "note", "", depth+1)
	label := "no subject set holds it"
	if n.Kind == engine.WhyNoParent {
		label = "no parent"
	}
	b.g.Nodes[b.nodes[id]].Label = label
	if target != "" {
		b.edge(GraphEdge{From: id, To: target, Kind: "note", State: "missing", Note: n.Note})
	}
}

// keepGranting drops every edge that does not grant and the nodes left
// without one (the subject and the resource stay).
func (b *graphBuilder) keepGranting() {
	keep := map[string]bool{}
	var edges []GraphEdge
	for _, e := range b.g.Edges {
		if e.State == "grant" {
			edges = append(edges, e)
			keep[e.From], keep[e.To] = true, true
		}
	}
	var nodes []GraphNode
	for _, n := range b.g.Nodes {
		if keep[n.ID] || n.Role != "" {
			nodes = append(nodes, n)
		}
	}
	b.g.Nodes, b.g.Edges = nodes, append([]GraphEdge{}, edges...)
	if b.g.Nodes == nil {
		b.g.Nodes = []GraphNode{}
	}
}

// layout puts each node in a column by its deepest distance from the root,
// mirrored so the root is rightmost (depths no node has left out), and
// orders each column's rows by the mean row of the nodes each node points
// to on its right (nodes pointing to none last; ties in order of first
// appearance).
func (b *graphBuilder) layout() {
	used := map[int]bool{}
	for _, n := range b.g.Nodes {
		used[b.depth[n.ID]] = true
	}
	depths := make([]int, 0, len(used))
	for d := range used {
		depths = append(depths, d)
	}
	slices.Sort(depths)
	col := map[int]int{}
	for i, d := range depths {
		col[d] = len(depths) - 1 - i
	}
	byCol := make([][]int, len(depths))
	for i := range b.g.Nodes {
		n := &b.g.Nodes[i]
		n.Col = col[b.depth[n.ID]]
		byCol[n.Col] = append(byCol[n.Col], i)
	}
	// Rows: the root's column first, then leftwards, each node placed at
	// the mean row of the nodes it points to on its right (barycentre), so
	// edges cross less; ties keep the order of first appearance.
	index := map[string]int{}
	for i, n := range b.g.Nodes {
		index[n.ID] = i
	}
	for c := len(byCol) - 1; c >= 0; c-- {
		key := map[int]float64{}
		for k, i := range byCol[c] {
			sum, cnt := 0.0, 0
			for _, e := range b.g.Edges {
				if e.From != b.g.Nodes[i].ID {
					continue
				}
				if j, ok := index[e.To]; ok && b.g.Nodes[j].Col > c {
					sum += float64(b.g.Nodes[j].Row)
					cnt++
				}
			}
			key[i] = float64(len(b.g.Nodes) + k) // no neighbour: last, in order
			if cnt > 0 {
				key[i] = sum / float64(cnt)
			}
		}
		slices.SortStableFunc(byCol[c], func(x, y int) int { return cmpFloat(key[x], key[y]) })
		for r, i := range byCol[c] {
			b.g.Nodes[i].Row = r
		}
	}
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
