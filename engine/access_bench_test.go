package engine_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/bench/cputime"
	"github.com/ambit-authz/ambit/bench/workload"
	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
)

// Effective-access benchmarks on the collab workload, medium (20k users,
// 2k groups, 50k workflows, 50k datasets), over the badger store with the
// default engine (caches warmed by a first pass):
//
//	go test -run '^$' -bench AccessCollabMedium -benchtime 200x ./engine
//
// Each reports p50-µs and p99-µs (wall time per operation) beside ns/op.

type accessFixture struct {
	s       *schema.Schema
	reader  engine.Reader
	at      engine.Snapshot
	dataset tuple.ObjectRef
	editors int                 // subjects holding edit on dataset
	holder  tuple.SubjectRef    // a user who edits dataset
	denied  engine.CheckRequest // a denied edit check on dataset
}

// loadAccessFixture loads collab medium and picks a dataset with about
// 100 subjects holding edit.
func loadAccessFixture(b *testing.B) accessFixture {
	var accessFix accessFixture
	accessErr := ""
	func() {
		w := workload.MustNew("collab", workload.Medium, 1)
		s, bes := loadBackends(b, w.Schema(), w.Slice())
		be := bes[len(bes)-1] // badger
		accessFix = accessFixture{s: s, reader: be.reader, at: be.at}
		eng, err := engine.New(engine.Config{})
		if err != nil {
			accessErr = err.Error()
			return
		}
		v := eng.View(s, be.reader, be.at)
		ctx := context.Background()
		for i := 0; i < 50_000; i++ {
			ds := tuple.ObjectRef{Type: "dataset", ID: "ds" + itoa(i)}
			var subs []tuple.SubjectRef
			for r, err := range v.LookupSubjects(ctx, engine.LookupSubjectsRequest{Resource: ds, Permission: "edit", SubjectType: "user"}) {
				if err != nil {
					accessErr = err.Error()
					return
				}
				subs = append(subs, tuple.SubjectRef{Type: "user", ID: r.ID})
			}
			if len(subs) < 90 || len(subs) > 130 {
				continue
			}
			accessFix.dataset, accessFix.editors, accessFix.holder = ds, len(subs), subs[len(subs)/2]
			for u := 0; u < 20_000; u++ {
				sub := tuple.SubjectRef{Type: "user", ID: "u" + itoa(u)}
				if slices.Contains(subs, sub) {
					continue
				}
				req := engine.CheckRequest{Resource: ds, Permission: "edit", Subject: sub}
				if r, err := v.Check(ctx, req); err == nil && r.Permissionship == engine.NoPermission {
					accessFix.denied = req
					return
				}
			}
		}
		accessErr = "no dataset with 90 to 130 editors"
	}()
	if accessErr != "" {
		b.Fatal(accessErr)
	}
	return accessFix
}

func itoa(i int) string {
	return string(appendInt(nil, i))
}

func appendInt(b []byte, i int) []byte {
	if i >= 10 {
		b = appendInt(b, i/10)
	}
	return append(b, byte('0'+i%10))
}

// timed runs op in b.Loop and reports the p50 and p99 of its wall time.
func timed(b *testing.B, op func() error) {
	b.Helper()
	if err := op(); err != nil { // warm the caches
		b.Fatal(err)
	}
	var ds []time.Duration
	for b.Loop() {
		start := time.Now()
		if err := op(); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(ds[len(ds)*99/100].Nanoseconds())/1e3, "p99-µs")
}

func BenchmarkAccessCollabMedium(b *testing.B) {
	f := loadAccessFixture(b)
	b.Logf("dataset %s: %d editors; %s edits it; %v is denied", f.dataset, f.editors, f.holder, f.denied.Subject)
	b.Run("ResourceAccess", func(b *testing.B) { benchResourceAccess(b, f) })
	b.Run("LookupSubjects", func(b *testing.B) { benchLookupSubjects(b, f) })
	for _, mode := range modes {
		b.Run("SubjectPermissions/"+mode, func(b *testing.B) { benchSubjectPermissions(b, f, mode) })
		b.Run("CheckOne/"+mode, func(b *testing.B) { benchCheckOne(b, f, mode) })
	}
	b.Run("ExplainDenial", func(b *testing.B) { benchExplainDenial(b, f) })
}

// benchResourceAccess lists the dataset's editors ([edit]) and then
// everyone who edits or views it ([edit, view]; org-wide access_all_data
// holders view every dataset, so that list is longer).
func benchResourceAccess(b *testing.B, f accessFixture) {
	for _, ranks := range [][]string{{"edit"}, {"edit", "view"}} {
		for _, mode := range modes {
			b.Run(ranksName(ranks)+"/"+mode, func(b *testing.B) {
				eng := newEngine(b, mode)
				ctx := context.Background()
				n := 0
				cpu, ops := cputime.Process(), 0
				timed(b, func() error {
					ops++
					v := eng.View(f.s, f.reader, f.at)
					n = 0
					for _, err := range v.ResourceAccess(ctx, engine.ResourceAccessRequest{Resource: f.dataset, Ranks: ranks, SubjectType: "user"}) {
						if err != nil {
							return err
						}
						n++
					}
					return nil
				})
				reportCPU(b, cpu, float64(ops))
				b.ReportMetric(float64(n), "subjects")
			})
		}
	}
}

// benchLookupSubjects lists the dataset's editors with LookupSubjects, the
// same candidate walk as ResourceAccess's first rank.
func benchLookupSubjects(b *testing.B, f accessFixture) {
	for _, mode := range modes {
		b.Run("edit/"+mode, func(b *testing.B) {
			eng := newEngine(b, mode)
			ctx := context.Background()
			n := 0
			cpu, ops := cputime.Process(), 0
			timed(b, func() error {
				v := eng.View(f.s, f.reader, f.at)
				n = 0
				for _, err := range v.LookupSubjects(ctx, engine.LookupSubjectsRequest{Resource: f.dataset, Permission: "edit", SubjectType: "user"}) {
					if err != nil {
						return err
					}
					n++
				}
				ops++
				return nil
			})
			reportCPU(b, cpu, float64(ops))
			b.ReportMetric(float64(n), "subjects")
		})
	}
}

func ranksName(r []string) string {
	out := ""
	for i, p := range r {
		if i > 0 {
			out += ","
		}
		out += p
	}
	return out
}

// benchSubjectPermissions checks one editor against every relation and
// permission of dataset (7); benchCheckOne is one check (view) of the same
// pair, for comparison; both in each engine mode (see bench_test.go).
func benchSubjectPermissions(b *testing.B, f accessFixture, mode string) {
	eng := newEngine(b, mode)
	ctx := context.Background()
	timed(b, func() error {
		_, err := eng.View(f.s, f.reader, f.at).SubjectPermissions(ctx, f.dataset, f.holder, nil, nil)
		return err
	})
}

func benchCheckOne(b *testing.B, f accessFixture, mode string) {
	eng := newEngine(b, mode)
	ctx := context.Background()
	timed(b, func() error {
		_, err := eng.View(f.s, f.reader, f.at).Check(ctx, engine.CheckRequest{Resource: f.dataset, Permission: "view", Subject: f.holder})
		return err
	})
}

// benchExplainDenial explains a denied edit on the dataset (every route
// evaluated, no result cache).
func benchExplainDenial(b *testing.B, f accessFixture) {
	eng, err := engine.New(engine.Config{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	timed(b, func() error {
		ex, err := eng.View(f.s, f.reader, f.at).Explain(ctx, f.denied, nil)
		if err == nil && ex.Result != engine.NoPermission {
			b.Fatalf("%v is not denied", f.denied)
		}
		return err
	})
}
