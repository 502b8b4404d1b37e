package workload

import (
	"math/rand/v2"
	"strconv"

	"github.com/ambit-authz/ambit/tuple"
)

const deepSchema = `// deep: chains of nested groups, 4 to 32 levels (ambit bench workload).
definition user {}

definition group {
	relation member: user | group#member
}

definition document {
	relation viewer: user | group#member
	permission view = viewer
}
`

// deep: chain c is groups c<c>l0 ⊇ c<c>l1 ⊇ ... of depth 4 + c%29; each
// level has a few direct user members; a few documents per chain are viewable
// by the chain's top group.
type deep struct {
	chains, users, usersPerLevel, docsPerChain int
}

const (
	deepMinDepth = 4
	deepMaxDepth = 32
)

func newDeep(size Size, _ uint64) model {
	d := &deep{chains: 200, usersPerLevel: 3, docsPerChain: 5}
	switch size {
	case Medium:
		d.chains = 2000
	case Large:
		d.chains = 20_000
	}
	d.users = d.chains * 20
	return d
}

func (d *deep) schema() string { return deepSchema }

// ChainDepth is the number of nested group levels of chain c in the deep
// workload (4 to 32).
func ChainDepth(c int) int { return deepMinDepth + c%(deepMaxDepth-deepMinDepth+1) }

func chainGroup(c, level int) string { return "c" + strconv.Itoa(c) + "l" + strconv.Itoa(level) }
func chainDoc(c, j int) string       { return "c" + strconv.Itoa(c) + "d" + strconv.Itoa(j) }

// level appends the direct members of chain c's level k to dst.
func (d *deep) level(e *entropy, c, k int, dst []int) []int {
	r := e.at(kindChain, c*64+k)
	return pickDistinct(r, dst, d.usersPerLevel, d.users)
}

func (d *deep) emit(e *entropy, yield func(tuple.Relationship) bool) bool {
	var buf []int
	for c := range d.chains {
		depth := ChainDepth(c)
		for k := range depth {
			g := obj("group", chainGroup(c, k))
			if k+1 < depth && !yield(rel(g, "member", subjSet("group", chainGroup(c, k+1), "member"))) {
				return false
			}
			buf = d.level(e, c, k, buf[:0])
			for _, u := range buf {
				if !yield(rel(g, "member", subj("user", userID(u)))) {
					return false
				}
			}
		}
		for j := range d.docsPerChain {
			if !yield(rel(obj("document", chainDoc(c, j)), "viewer", subjSet("group", chainGroup(c, 0), "member"))) {
				return false
			}
		}
	}
	return true
}

func (d *deep) check(e *entropy, r *rand.Rand) Check {
	c := r.IntN(d.chains)
	ch := Check{Resource: obj("document", chainDoc(c, r.IntN(d.docsPerChain))), Permission: "view"}
	if r.IntN(2) == 0 {
		ch.Subject = subj("user", userID(r.IntN(d.users)))
		return ch
	}
	k := ChainDepth(c) - 1 // half the time the deepest level
	if r.IntN(2) == 0 {
		k = r.IntN(k + 1)
	}
	m := d.level(e, c, k, nil)
	ch.Subject = subj("user", userID(m[r.IntN(len(m))]))
	ch.Expect = Allowed
	return ch
}

func (d *deep) lookupResources(_ *entropy, r *rand.Rand) LookupResources {
	return LookupResources{ResourceType: "document", Permission: "view", Subject: subj("user", userID(r.IntN(d.users)))}
}

func (d *deep) lookupSubjects(_ *entropy, r *rand.Rand) LookupSubjects {
	c := r.IntN(d.chains)
	return LookupSubjects{Resource: obj("document", chainDoc(c, r.IntN(d.docsPerChain))), Permission: "view", SubjectType: "user"}
}

func (d *deep) write(_ *entropy, r *rand.Rand) tuple.Relationship {
	c := r.IntN(d.chains)
	return rel(obj("group", chainGroup(c, r.IntN(ChainDepth(c)))), "member", subj("user", userID(r.IntN(d.users))))
}
