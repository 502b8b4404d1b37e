package schema

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// naiveWildcardReach is the walk per reference wildcardReach replaced, kept
// as the oracle.
func naiveWildcardReach(c *checker, typ, rel string) bool {
	seen := map[string]bool{}
	var walk func(typ, rel string) bool
	walk = func(typ, rel string) bool {
		key := typ + "#" + rel
		if seen[key] {
			return false
		}
		seen[key] = true
		r, ok := c.members[typ][rel].(*RelationDecl)
		if !ok {
			return false
		}
		for _, t := range r.Types {
			if t.Wildcard || t.Relation != "" && walk(t.Type, t.Relation) {
				return true
			}
		}
		return false
	}
	return walk(typ, rel)
}

// TestWildcardReachAgreesWithWalk: on random graphs of subject sets, with
// cycles and a few wildcards, the memoised answer agrees with a fresh walk
// from every relation, whatever order the relations are asked in.
func TestWildcardReachAgreesWithWalk(t *testing.T) {
	for seed := range 300 {
		rng := rand.New(rand.NewPCG(uint64(seed), 3))
		defs, rels := 2+rng.IntN(5), 1+rng.IntN(4)
		var b strings.Builder
		b.WriteString("definition user {}\n")
		for d := range defs {
			fmt.Fprintf(&b, "definition def%d {\n", d)
			for r := range rels {
				fmt.Fprintf(&b, "\trelation rel%d: user", r)
				if rng.IntN(8) == 0 {
					b.WriteString(" | user:*")
				}
				for range rng.IntN(3) {
					fmt.Fprintf(&b, " | def%d#rel%d", rng.IntN(defs), rng.IntN(rels))
				}
				b.WriteString("\n")
			}
			b.WriteString("}\n")
		}
		errs := &errorSink{src: b.String()}
		f := parseFile("w.zed", b.String(), errs)
		if err := errs.err(); err != nil {
			t.Fatal(err)
		}
		c := &checker{errs: errs, defs: map[string]*DefinitionDecl{}, members: map[string]map[string]Member{}, cavs: map[string]*CaveatDecl{}, out: &Schema{}}
		c.declare(f)
		order := rng.Perm(defs * rels)
		for _, k := range order {
			typ, rel := fmt.Sprintf("def%d", k/rels), fmt.Sprintf("rel%d", k%rels)
			wt, via := c.wildcardReach(typ, rel)
			if got, want := wt != "", naiveWildcardReach(c, typ, rel); got != want {
				t.Fatalf("seed %d: wildcardReach(%s#%s) = %q via %q, want a wildcard: %v\n%s", seed, typ, rel, wt, via, want, b.String())
			}
		}
	}
}
