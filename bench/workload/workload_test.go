package workload_test

import (
	"bytes"
	"context"
	"hash/fnv"
	"testing"

	"github.com/ambit-authz/ambit/bench/memindex"
	"github.com/ambit-authz/ambit/bench/workload"
	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
	"github.com/ambit-authz/ambit/validation"
	"github.com/ambit-authz/ambit/validation/runner"
)

// digest hashes the text form of every relationship, in order.
func digest(w *workload.Workload) (uint64, int) {
	h := fnv.New64a()
	n := 0
	for r := range w.Relationships() {
		h.Write([]byte(r.String()))
		h.Write([]byte{'\n'})
		n++
	}
	return h.Sum64(), n
}

func checks(w *workload.Workload, seed uint64, n int) []string {
	q := w.Queries(seed)
	out := make([]string, n)
	for i := range out {
		c := q.Check()
		out[i] = c.String() + " " + c.Expect.String()
	}
	return out
}

func TestDeterministic(t *testing.T) {
	for _, name := range workload.Names() {
		t.Run(name, func(t *testing.T) {
			a, b := workload.MustNew(name, workload.Small, 7), workload.MustNew(name, workload.Small, 7)
			da, na := digest(a)
			db, nb := digest(b)
			if da != db || na != nb {
				t.Fatalf("same seed, different relationships: %x/%d vs %x/%d", da, na, db, nb)
			}
			if dc, _ := digest(workload.MustNew(name, workload.Small, 8)); name != "wide" && dc == da {
				t.Errorf("seeds 7 and 8 give the same relationships")
			}
			ca, cb := checks(a, 3, 200), checks(b, 3, 200)
			for i := range ca {
				if ca[i] != cb[i] {
					t.Fatalf("check %d: %s vs %s", i, ca[i], cb[i])
				}
			}
			if cc := checks(a, 4, 200); cc[0] == ca[0] && cc[1] == ca[1] && cc[2] == ca[2] {
				t.Errorf("query seeds 3 and 4 start the same")
			}
		})
	}
}

func TestSizes(t *testing.T) {
	cases := []struct {
		name     string
		size     workload.Size
		min, max int
	}{
		{"collab", workload.Small, 42_000, 52_000},
		{"deep", workload.Small, 10_000, 20_000},
		{"wide", workload.Small, 20_000, 20_200},
		{"caveats", workload.Small, 25_000, 35_000},
		{"collab", workload.Medium, 470_000, 580_000},
	}
	for _, c := range cases {
		if c.size > workload.Small && testing.Short() {
			continue
		}
		w := workload.MustNew(c.name, c.size, 1)
		if n := w.Len(); n < c.min || n > c.max {
			t.Errorf("%s: %d relationships, want %d to %d", w, n, c.min, c.max)
		} else {
			t.Logf("%s: %d relationships", w, n)
		}
	}
}

// Every relationship is valid under the workload's own schema and appears
// once.
func TestRelationshipsValidate(t *testing.T) {
	for _, name := range workload.Names() {
		t.Run(name, func(t *testing.T) {
			w := workload.MustNew(name, workload.Small, 1)
			s, err := schema.Compile(name+".zed", w.Schema())
			if err != nil {
				t.Fatal(err)
			}
			seen := map[tuple.Key]bool{}
			for r := range w.Relationships() {
				if err := engine.ValidateRelationship(s, r); err != nil {
					t.Fatal(err)
				}
				if seen[r.Key()] {
					t.Fatalf("%s appears twice", r.Key())
				}
				seen[r.Key()] = true
			}
			q := w.Queries(1)
			for range 50 {
				if err := engine.ValidateRelationship(s, q.Write()); err != nil {
					t.Fatalf("write: %v", err)
				}
			}
		})
	}
}

// Checks whose answer is known by construction get that answer from the
// engine, and the allowed fraction is near one half.
func TestByConstruction(t *testing.T) {
	ctx := context.Background()
	eng, err := engine.New(engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	for _, name := range workload.Names() {
		t.Run(name, func(t *testing.T) {
			w := workload.MustNew(name, workload.Small, 1)
			s := schema.MustCompile(name+".zed", w.Schema())
			x := memindex.Collect(w.Relationships())
			v := eng.View(s, x, x.Snapshot(1))
			q := w.Queries(99)
			const n = 400
			allowed, known := 0, 0
			for range n {
				c := q.Check()
				res, err := v.Check(ctx, engine.CheckRequest{Resource: c.Resource, Permission: c.Permission, Subject: c.Subject, Context: c.Context})
				if err != nil {
					t.Fatalf("%s: %v", c, err)
				}
				if res.Permissionship == engine.HasPermission {
					allowed++
				}
				want := map[workload.Expect]engine.Permissionship{workload.Allowed: engine.HasPermission,
					workload.Denied: engine.NoPermission, workload.Conditional: engine.ConditionalPermission}
				if c.Expect == workload.Unknown {
					continue
				}
				known++
				if res.Permissionship != want[c.Expect] {
					t.Errorf("%s with %v: got %s, want %s", c, c.Context, res.Permissionship, c.Expect)
				}
			}
			frac := float64(allowed) / n
			t.Logf("%s: %d/%d known by construction, %.0f%% allowed", w, known, n, 100*frac)
			if frac < 0.35 || frac > 0.6 {
				t.Errorf("allowed fraction %.2f, want about one half", frac)
			}
			// Lookups run and find something for most requests.
			found := 0
			for range 10 {
				lr := q.LookupResources()
				for _, err := range v.LookupResources(ctx, engine.LookupResourcesRequest{ResourceType: lr.ResourceType, Permission: lr.Permission, Subject: lr.Subject, Context: lr.Context, Limit: 5}) {
					if err != nil {
						t.Fatal(err)
					}
					found++
				}
			}
			if found == 0 {
				t.Errorf("ten LookupResources found nothing")
			}
		})
	}
}

// The validation file loads and its assertions hold, as `ambit validate` runs it.
func TestValidationFile(t *testing.T) {
	ctx := context.Background()
	eng, err := engine.New(engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	for _, name := range []string{"deep", "caveats"} {
		w := workload.MustNew(name, workload.Small, 3)
		var buf bytes.Buffer
		if err := w.WriteValidationFile(&buf, 10); err != nil {
			t.Fatal(err)
		}
		docs, err := validation.Parse(name+".yaml", buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if len(docs) != 1 || len(docs[0].Relationships) != w.Len() {
			t.Fatalf("%s: parsed %d documents", name, len(docs))
		}
		rep, err := runner.Run(ctx, eng, runner.Memory{}, docs[0], runner.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Assertions < 10 || len(rep.Failures) > 0 {
			t.Fatalf("%s: %d assertions, failures %v", name, rep.Assertions, rep.Failures)
		}
	}
}
