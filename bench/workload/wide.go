package workload

import (
	"math/rand/v2"
	"strconv"

	"github.com/ambit-authz/ambit/tuple"
)

const wideSchema = `// wide: very large groups and folders with many children (ambit bench workload).
definition user {}

definition group {
	relation member: user | group#member
}

definition folder {
	relation parent: folder
	relation viewer: user | group#member
	permission view = viewer + parent->view
}

definition document {
	relation parent: folder
	relation viewer: user | group#member
	permission view = viewer + parent->view
}
`

// wide: groups g0..g<G-1> of M members each (user w<g*M+j>); folders
// f0..f<F-1>, each viewable by group f%G and two of its members, each with C
// documents; one document in a hundred also has a direct viewer. Users
// w<G*M> and above appear in no relationship: checks for them are denied by
// construction.
type wide struct {
	groups, members, folders, children int
}

func newWide(size Size, _ uint64) model {
	w := &wide{groups: 1, members: 10_000, folders: 1, children: 10_000}
	switch size {
	case Medium:
		w.members, w.folders = 100_000, 10
	case Large:
		w.groups, w.members, w.folders = 10, 100_000, 100
	}
	return w
}

func (w *wide) schema() string { return wideSchema }

func wideUser(u int) string           { return "w" + strconv.Itoa(u) }
func wideFolder(f int) string         { return "f" + strconv.Itoa(f) }
func wideDoc(f, j int) string         { return "f" + strconv.Itoa(f) + "d" + strconv.Itoa(j) }
func (w *wide) memberOf(g, j int) int { return g*w.members + j }

func (w *wide) emit(e *entropy, yield func(tuple.Relationship) bool) bool {
	for g := range w.groups {
		gr := obj("group", groupID(g))
		for j := range w.members {
			if !yield(rel(gr, "member", subj("user", wideUser(w.memberOf(g, j))))) {
				return false
			}
		}
	}
	for f := range w.folders {
		fo := obj("folder", wideFolder(f))
		g := f % w.groups
		if !yield(rel(fo, "viewer", subjSet("group", groupID(g), "member"))) {
			return false
		}
		r := e.at(kindFolder, f)
		for _, j := range pickDistinct(r, nil, 2, w.members) {
			if !yield(rel(fo, "viewer", subj("user", wideUser(w.memberOf(g, j))))) {
				return false
			}
		}
		for j := range w.children {
			doc := obj("document", wideDoc(f, j))
			if !yield(rel(doc, "parent", subj("folder", wideFolder(f)))) {
				return false
			}
			if j%100 == 0 && !yield(rel(doc, "viewer", subj("user", wideUser(w.memberOf(g, r.IntN(w.members)))))) {
				return false
			}
		}
	}
	return true
}

func (w *wide) check(_ *entropy, r *rand.Rand) Check {
	f := r.IntN(w.folders)
	ch := Check{Resource: obj("document", wideDoc(f, r.IntN(w.children))), Permission: "view"}
	if r.IntN(2) == 0 {
		ch.Subject = subj("user", wideUser(w.memberOf(f%w.groups, r.IntN(w.members))))
		ch.Expect = Allowed
		return ch
	}
	// An outsider.
	ch.Subject = subj("user", wideUser(w.groups*w.members+r.IntN(w.groups*w.members)))
	ch.Expect = Denied
	return ch
}

func (w *wide) lookupResources(_ *entropy, r *rand.Rand) LookupResources {
	return LookupResources{ResourceType: "document", Permission: "view", Subject: subj("user", wideUser(r.IntN(w.groups*w.members)))}
}

func (w *wide) lookupSubjects(_ *entropy, r *rand.Rand) LookupSubjects {
	f := r.IntN(w.folders)
	return LookupSubjects{Resource: obj("document", wideDoc(f, r.IntN(w.children))), Permission: "view", SubjectType: "user"}
}

func (w *wide) write(_ *entropy, r *rand.Rand) tuple.Relationship {
	g := r.IntN(w.groups)
	return rel(obj("group", groupID(g)), "member", subj("user", wideUser(w.memberOf(g, r.IntN(w.members)))))
}
