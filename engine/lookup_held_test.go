package engine

import (
	"context"
	"fmt"
	"iter"
	"runtime"
	"slices"
	"testing"

	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
)

const publicSchema = `definition user {}
definition document {
	relation viewer: user | user:*
	permission view = viewer
}
`

// publicView is n documents everyone may view (document:d-<i>#viewer@user:*).
func publicView(tb testing.TB, n int) *View {
	tb.Helper()
	s, err := schema.Compile("public.zed", publicSchema)
	if err != nil {
		tb.Fatal(err)
	}
	rels := make([]tuple.Relationship, n)
	for i := range rels {
		rels[i] = tuple.MustParse(fmt.Sprintf("document:d-%07d#viewer@user:*", i))
	}
	eng, err := New(Config{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(eng.Close)
	return eng.View(s, sliceReader(rels), Snapshot{Revision: 1})
}

// sliceReader is a Reader over relationships in key order (enginetest's
// reader imports this package, so an internal test cannot use it).
type sliceReader []tuple.Relationship

func (r sliceReader) Query(ctx context.Context, f tuple.Filter) iter.Seq2[tuple.Relationship, error] {
	return func(yield func(tuple.Relationship, error) bool) {
		for _, rel := range r {
			if f.Matches(rel) && !yield(rel, nil) {
				return
			}
		}
	}
}

// TestLookupHoldsOnlyWhatItMaySend: what a lookup keeps between results is
// its candidate list, ids after the cursor only, and with a limit no more
// than it can send.
func TestLookupHoldsOnlyWhatItMaySend(t *testing.T) {
	v := publicView(t, 1000)
	ana := tuple.SubjectRef{Type: "user", ID: "ana"}
	for _, tc := range []struct {
		after    string
		limit    int
		wantLen  int
		wantHead string
	}{
		{"", 0, 1000, "d-0000000"},
		{"", 10, 10, "d-0000000"},
		{"d-0000499", 0, 500, "d-0000500"},
		{"d-0000499", 3, 3, "d-0000500"},
		{"d-0000999", 5, 0, ""},
	} {
		c, err := v.reverseWalk(context.Background(), ana, nil, "document", "view", tc.after, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(c) != tc.wantLen || cap(c) != tc.wantLen {
			t.Errorf("after %q limit %d: %d candidates (capacity %d), want %d", tc.after, tc.limit, len(c), cap(c), tc.wantLen)
		}
		if len(c) > 0 && (c[0].id != tc.wantHead || !c[0].proven) {
			t.Errorf("after %q limit %d: first candidate %+v, want %s proven", tc.after, tc.limit, c[0], tc.wantHead)
		}
	}
}

// BenchmarkLookupHeld reports the heap a lookup of 200,000 public documents
// keeps while its consumer holds it after the first result (a client that
// stops reading), with and without a limit.
func BenchmarkLookupHeld(b *testing.B) {
	v := publicView(b, 200_000)
	for _, limit := range []int{0, 10} {
		b.Run(fmt.Sprintf("limit=%d", limit), func(b *testing.B) {
			var held int64
			for b.Loop() {
				var ms runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&ms)
				base := int64(ms.HeapAlloc)
				next, stop := iter.Pull2(v.LookupResources(context.Background(), LookupResourcesRequest{ResourceType: "document", Permission: "view",
					Subject: tuple.SubjectRef{Type: "user", ID: "ana"}, Limit: limit}))
				if _, err, ok := next(); !ok || err != nil {
					b.Fatal(err)
				}
				runtime.GC()
				runtime.ReadMemStats(&ms)
				held = int64(ms.HeapAlloc) - base
				stop()
			}
			b.ReportMetric(float64(max(held, 0)), "held-B")
		})
	}
}

// countingReader counts the relationships its reader yields.
type countingReader struct {
	r    Reader
	read *int
}

func (c countingReader) Query(ctx context.Context, f tuple.Filter) iter.Seq2[tuple.Relationship, error] {
	return func(yield func(tuple.Relationship, error) bool) {
		for rel, err := range c.r.Query(ctx, f) {
			*c.read++
			if !yield(rel, err) {
				return
			}
		}
	}
}

// TestLookupStreamsBeforeTheWalkEnds (issue 16 item 3): a lookup with a
// large answer sends its first result after reading a few relationships
// (past LookupStreamAfter), not after reading every relationship its answer
// needs; stopping after k results reads about k more; the whole answer, in
// pages or not, is the same.
func TestLookupStreamsBeforeTheWalkEnds(t *testing.T) {
	const n = 3000
	s, err := schema.Compile("public.zed", publicSchema)
	if err != nil {
		t.Fatal(err)
	}
	rels := make([]tuple.Relationship, n)
	for i := range rels {
		rels[i] = tuple.MustParse(fmt.Sprintf("document:d-%07d#viewer@user:*", i))
	}
	rels = append(rels, tuple.MustParse("document:d-0000005#viewer@user:ana"), tuple.MustParse("document:e#viewer@user:ana"))
	const streamAfter = 100
	eng, err := New(Config{LookupStreamAfter: streamAfter})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	read := 0
	v := eng.View(s, countingReader{sliceReader(rels), &read}, Snapshot{Revision: 1})
	ana := tuple.SubjectRef{Type: "user", ID: "ana"}
	lookup := func(after string, limit int) []string {
		var ids []string
		for r, err := range v.LookupResources(context.Background(), LookupResourcesRequest{ResourceType: "document", Permission: "view", Subject: ana, After: after, Limit: limit}) {
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, r.ID)
		}
		return ids
	}
	for _, k := range []int{1, 10, 100} {
		read = 0
		if got := lookup("", k); len(got) != k {
			t.Fatalf("limit %d: %d results", k, len(got))
		}
		if read > streamAfter+2*k+10 {
			t.Errorf("limit %d: the lookup read %d relationships of %d for its first %d results", k, read, len(rels), k)
		}
	}
	all := lookup("", 0)
	if len(all) != n+1 || all[0] != "d-0000000" || all[5] != "d-0000005" || all[n] != "e" {
		t.Fatalf("whole answer: %d results, want %d in id order, each once", len(all), n+1)
	}
	var paged []string
	for after := ""; ; {
		page := lookup(after, 7)
		paged = append(paged, page...)
		if len(page) < 7 {
			break
		}
		after = page[len(page)-1]
	}
	if !slices.Equal(paged, all) {
		t.Fatalf("pages of 7: %d results, want the %d of one call", len(paged), len(all))
	}
}
