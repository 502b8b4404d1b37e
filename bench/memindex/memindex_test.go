package memindex_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ambit-authz/ambit/bench/memindex"
	"github.com/ambit-authz/ambit/bench/workload"
	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/engine/enginetest"
	"github.com/ambit-authz/ambit/tuple"
)

var _ engine.Reader = (*memindex.Index)(nil)

func keys(t *testing.T, r engine.Reader, f tuple.Filter) []string {
	t.Helper()
	var out []string
	for rel, err := range r.Query(context.Background(), f) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rel.String())
	}
	slices.Sort(out)
	return out
}

// The index answers every filter shape exactly as the scanning reader does.
func TestAgreesWithScan(t *testing.T) {
	rels := workload.MustNew("caveats", workload.Small, 1).Slice()[:3000]
	idx, scan := memindex.New(rels), enginetest.NewMemory(rels...)
	if idx.Len() != len(rels) {
		t.Fatalf("Len = %d, want %d", idx.Len(), len(rels))
	}
	r := rand.New(rand.NewPCG(1, 2))
	pick := func() tuple.Relationship { return rels[r.IntN(len(rels))] }
	empty := ""
	for i := range 300 {
		a, b := pick(), pick()
		var f tuple.Filter
		switch i % 6 {
		case 0:
			f = tuple.Filter{ResourceType: a.Resource.Type, ResourceIDs: []string{a.Resource.ID, b.Resource.ID, a.Resource.ID}}
		case 1:
			f = tuple.Filter{ResourceType: a.Resource.Type, ResourceIDs: []string{a.Resource.ID}, Relation: a.Relation,
				Subject: &tuple.SubjectFilter{Type: a.Subject.Type, IDs: []string{a.Subject.ID}, Relation: &empty}}
		case 2:
			f = tuple.Filter{Subject: &tuple.SubjectFilter{Type: a.Subject.Type, IDs: []string{a.Subject.ID, b.Subject.ID}}}
		case 3:
			f = tuple.Filter{ResourceType: b.Resource.Type, Subject: &tuple.SubjectFilter{Type: a.Subject.Type, IDs: []string{a.Subject.ID}}}
		case 4:
			f = tuple.Filter{ResourceType: a.Resource.Type, Relation: a.Relation}
		case 5:
			f = tuple.Filter{ResourceType: a.Resource.Type, ResourceIDPrefix: a.Resource.ID[:1]}
		}
		got, want := keys(t, idx, f), keys(t, scan, f)
		if !slices.Equal(got, want) {
			t.Fatalf("filter %+v: index gives %d relationships, scan %d", f, len(got), len(want))
		}
	}
}
