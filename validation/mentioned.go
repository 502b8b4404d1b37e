package validation

import (
	"sort"

	"github.com/ambit-authz/ambit/tuple"
)

// Mentioned returns, sorted by their text form, every object the file's
// relationships and assertions name (resources, and subjects as objects) and
// every non-wildcard subject, each also without its relation: what a
// cross-API oracle checks the file on.
func (f *File) Mentioned() ([]tuple.ObjectRef, []tuple.SubjectRef) {
	resources := map[tuple.ObjectRef]bool{}
	subjects := map[tuple.SubjectRef]bool{}
	note := func(r tuple.Relationship) {
		resources[r.Resource] = true
		if s := r.Subject; s.ID != tuple.Wildcard {
			subjects[s] = true
			subjects[tuple.SubjectRef{Type: s.Type, ID: s.ID}] = true
			resources[s.Object()] = true
		}
	}
	for _, r := range f.Relationships {
		note(r.Relationship)
	}
	for _, list := range [][]Assertion{f.Assertions.True, f.Assertions.False, f.Assertions.Caveated} {
		for _, a := range list {
			note(a.Rel)
		}
	}
	return sortedByString(resources, tuple.ObjectRef.String), sortedByString(subjects, tuple.SubjectRef.String)
}

func sortedByString[K comparable](m map[K]bool, key func(K) string) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return key(out[i]) < key(out[j]) })
	return out
}
