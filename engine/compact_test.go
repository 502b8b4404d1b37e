package engine

import (
	"reflect"
	"testing"
	"time"
	"unsafe"

	"github.com/ambit-authz/ambit/tuple"
)

// compactSet keeps every relationship of a set as it was, in two
// allocations (the slice and one buffer for all strings), with no string
// left pointing at the bytes the store decoded into.
func TestCompactSet(t *testing.T) {
	exp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	cav := &tuple.Caveat{Name: "weekday", Context: map[string]any{"day": "monday"}}
	rel := func(subType, subID, subRel string) tuple.Relationship {
		return tuple.Relationship{Resource: tuple.ObjectRef{Type: "dataset", ID: "d1"}, Relation: "reader",
			Subject: tuple.SubjectRef{Type: subType, ID: subID, Relation: subRel}}
	}
	withCaveat := rel("user", "carl", "")
	withCaveat.Caveat, withCaveat.Expiration = cav, exp
	for _, tc := range []struct {
		name string
		rels []tuple.Relationship
	}{
		{"empty", nil},
		{"one", []tuple.Relationship{rel("user", "ana", "")}},
		{"users", []tuple.Relationship{rel("user", "ana", ""), rel("user", "bob", ""), rel("user", "*", "")}},
		{"mixed subjects", []tuple.Relationship{rel("group", "lab", "member"), rel("user", "ana", ""),
			rel("group", "curators", "member"), rel("group", "admins", "manager"), withCaveat}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Strings as the store hands them out: views into one shared
			// buffer that is overwritten after the copy.
			var scratch []byte
			view := func(s string) string {
				if s == "" {
					return ""
				}
				start := len(scratch)
				scratch = append(scratch, s...)
				return unsafe.String(&scratch[start], len(s))
			}
			scratch = make([]byte, 0, 4096)
			key := setKey{src: 7, rev: 3, typ: view("dataset"), id: view("d1"), rel: view("reader")}
			in := make([]tuple.Relationship, len(tc.rels), 2*len(tc.rels)+1)
			for i, r := range tc.rels {
				r.Resource.Type, r.Resource.ID, r.Relation = view(r.Resource.Type), view(r.Resource.ID), view(r.Relation)
				r.Subject.Type, r.Subject.ID, r.Subject.Relation = view(r.Subject.Type), view(r.Subject.ID), view(r.Subject.Relation)
				in[i] = r
			}
			var k setKey
			var out []tuple.Relationship
			allocs := testing.AllocsPerRun(10, func() { k, out = compactSet(key, in) })
			want := 2.0
			if len(tc.rels) == 0 {
				want = 1 // the buffer of the key's strings; no slice of nothing
			}
			if allocs > want {
				t.Errorf("compactSet made %v allocations, want at most %v", allocs, want)
			}
			if len(out) != cap(out) {
				t.Errorf("compacted slice has len %d cap %d, want no spare capacity", len(out), cap(out))
			}
			clear(scratch[:cap(scratch)]) // the store reuses its buffer
			if k.typ != "dataset" || k.id != "d1" || k.rel != "reader" || k.src != 7 || k.rev != 3 {
				t.Errorf("key = %+v", k)
			}
			if len(tc.rels) == 0 {
				if len(out) != 0 {
					t.Errorf("compacted %d relationships from none", len(out))
				}
				return
			}
			if !reflect.DeepEqual(out, tc.rels) {
				t.Errorf("compacted set\n%v\nwant\n%v", out, tc.rels)
			}
			// Equal after the source buffer was cleared: nothing points
			// into it.
			var total int
			for _, r := range out {
				total += len(r.Subject.ID)
			}
			if c := (relSet{rels: out}).cost(k); c < relSize*int64(len(out))+int64(total) {
				t.Errorf("cost %d is less than the relationships and their subject ids alone", c)
			}
		})
	}
}
