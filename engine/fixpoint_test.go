package engine_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/tuple"
)

// fixpointSchema is monotone (no exclusion) and cyclic through arrows and
// subject sets, with an intersection: where the request memo reuses results
// computed under cut cycles.
const fixpointSchema = `definition user {}
definition aaa {
	relation to_a: aaa
	relation to_b: bbb
	relation viewer: user | bbb#view
	permission view = viewer + to_a->view + to_b->strict
	permission strict = view & to_b->view
}
definition bbb {
	relation to_a: aaa
	relation to_b: bbb
	relation viewer: user | aaa#strict
	permission view = viewer + to_a->strict + to_b->view
	permission strict = view & to_a->view
}`

// fixpoint computes every object's view and strict for subject user:u as the
// least fixed point, by iterating from "nothing holds" until nothing changes.
func fixpoint(rels []tuple.Relationship) map[string]bool {
	val := map[string]bool{} // "type:id#rel"
	get := func(o tuple.ObjectRef, rel string) bool { return val[o.String()+"#"+rel] }
	objs := map[tuple.ObjectRef]bool{}
	for _, r := range rels {
		objs[r.Resource] = true
		if r.Subject.Type != "user" {
			objs[r.Subject.Object()] = true
		}
	}
	for changed := true; changed; {
		changed = false
		for o := range objs {
			viewer, toView, toStrict, toOther := false, false, false, false
			other := map[string]string{"aaa": "to_b", "bbb": "to_a"}[o.Type]
			for _, r := range rels {
				if r.Resource != o {
					continue
				}
				switch r.Relation {
				case "viewer":
					if r.Subject.Type == "user" && r.Subject.ID == "u" || r.Subject.Type != "user" && get(r.Subject.Object(), r.Subject.Relation) {
						viewer = true
					}
				case "to_a", "to_b":
					same := r.Relation == map[string]string{"aaa": "to_a", "bbb": "to_b"}[o.Type]
					if same && get(r.Subject.Object(), "view") {
						toView = true
					}
					if !same && get(r.Subject.Object(), "strict") {
						toStrict = true
					}
					if r.Relation == other && get(r.Subject.Object(), "view") {
						toOther = true
					}
				}
			}
			view := viewer || toView || toStrict
			strict := view && toOther
			for rel, v := range map[string]bool{"viewer": viewer, "view": view, "strict": strict} {
				k := o.String() + "#" + rel
				if v && !val[k] {
					val[k] = true
					changed = true
				}
			}
		}
	}
	return val
}

// TestCheckIsTheLeastFixedPoint compares Check, with and without the shared
// result cache, against the least fixed point on random cyclic data.
func TestCheckIsTheLeastFixedPoint(t *testing.T) {
	ctx := context.Background()
	for seed := range 150 {
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		var lines []string
		obj := func() string { return fmt.Sprintf("%s:o%d", []string{"aaa", "bbb"}[rng.IntN(2)], rng.IntN(6)) }
		for range 8 + rng.IntN(20) {
			res := obj()
			switch rng.IntN(4) {
			case 0:
				lines = append(lines, res+"#viewer@user:"+[]string{"u", "w"}[rng.IntN(2)])
			case 1:
				subj := obj()
				other := map[string]string{"aaa": "bbb", "bbb": "aaa"}[res[:3]]
				rel := map[string]string{"aaa": "view", "bbb": "strict"}[res[:3]]
				lines = append(lines, res+"#viewer@"+other+subj[3:]+"#"+rel)
			default:
				subj := obj()
				lines = append(lines, res+"#to_"+subj[:1]+"@"+subj)
			}
		}
		var rels []tuple.Relationship
		for _, l := range lines {
			rels = append(rels, tuple.MustParse(l))
		}
		want := fixpoint(rels)
		for _, cache := range []int64{0, -1} {
			v := newView(t, fixpointSchema, strings.Join(lines, "\n"), engine.Config{CacheMaxCost: cache})
			for _, typ := range []string{"aaa", "bbb"} {
				for i := range 6 {
					for _, perm := range []string{"view", "strict"} {
						o := tuple.ObjectRef{Type: typ, ID: fmt.Sprintf("o%d", i)}
						r, err := v.Check(ctx, engine.CheckRequest{Resource: o, Permission: perm, Subject: tuple.SubjectRef{Type: "user", ID: "u"}})
						if err != nil {
							t.Fatal(err)
						}
						if got := r.Permissionship == engine.HasPermission; got != want[o.String()+"#"+perm] {
							t.Fatalf("seed %d, cache %d: %s#%s = %v, least fixed point %v; relationships:\n%s", seed, cache, o, perm, got, !got, strings.Join(lines, "\n"))
						}
					}
				}
			}
		}
	}
}
