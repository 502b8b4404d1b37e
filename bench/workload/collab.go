package workload

import (
	"math/rand/v2"
	"strconv"

	"github.com/ambit-authz/ambit/tuple"
)

const collabSchema = `// collab: a cytometry/omics collaboration platform (ambit bench workload).
definition user {}

definition organization {
	relation member: user
	relation admin: user
	relation access_all_data: user
	relation deactivated: user
}

definition group {
	relation member: user | group#member
}

definition workflow {
	relation org: organization
	relation owner: user
	relation editor: user | group#member
	relation reader: user | group#member
	permission edit = (owner + editor + org->admin) - org->deactivated
	permission view = (owner + editor + reader + org->access_all_data) - org->deactivated
}

definition dataset {
	relation org: organization
	relation owner: user
	relation editor: user | group#member
	relation reader: user | group#member
	relation workflow: workflow
	permission edit = (owner + editor) - org->deactivated
	permission view = (owner + editor + reader + workflow->view + org->access_all_data) - org->deactivated
}
`

// collab parameters. Groups form trees of fan-out branch and depth levels
// below the root, laid out heap-style so that parents and children are
// computed, not stored.
type collab struct {
	users, groups, workflows, datasets int
	groupMembers                       int // mean direct user members of a group
	branch, depth                      int
	treeSize                           int
}

const orgID = "acme"

func newCollab(size Size, _ uint64) model {
	c := &collab{users: 2000, groups: 200, workflows: 5000, datasets: 5000, groupMembers: 25, branch: 2, depth: 4}
	switch size {
	case Medium:
		c.users, c.groups, c.workflows, c.datasets, c.groupMembers = 20_000, 2_000, 50_000, 50_000, 50
	case Large:
		c.users, c.groups, c.workflows, c.datasets, c.groupMembers = 200_000, 20_000, 500_000, 500_000, 50
	}
	for n, k := 1, 0; k <= c.depth; n, k = n*c.branch, k+1 {
		c.treeSize += n
	}
	return c
}

func (c *collab) schema() string { return collabSchema }

func userID(u int) string  { return "u" + strconv.Itoa(u) }
func groupID(g int) string { return "g" + strconv.Itoa(g) }

type userInfo struct{ deactivated, accessAll, admin bool }

func (c *collab) user(e *entropy, u int) userInfo {
	r := e.at(kindUser, u)
	return userInfo{deactivated: r.IntN(50) == 0, accessAll: r.IntN(100) == 0, admin: r.IntN(400) == 0}
}

// members appends group g's direct user members to dst.
func (c *collab) members(e *entropy, g int, dst []int) []int {
	r := e.at(kindGroup, g)
	n := 1 + r.IntN(2*c.groupMembers-1)
	return pickDistinct(r, dst, n, c.users)
}

// parent returns g's parent group, or -1 for a tree root.
func (c *collab) parent(g int) int {
	local := g % c.treeSize
	if local == 0 {
		return -1
	}
	return g - local + (local-1)/c.branch
}

// children appends g's existing child groups to dst.
func (c *collab) children(g int, dst []int) []int {
	base, local := g-g%c.treeSize, g%c.treeSize
	for k := 1; k <= c.branch; k++ {
		ch := local*c.branch + k
		if ch < c.treeSize && base+ch < c.groups {
			dst = append(dst, base+ch)
		}
	}
	return dst
}

type share struct {
	group  bool
	id     int
	editor bool
}

type item struct {
	owner     int
	shares    []share
	workflows []int // datasets only
}

func (c *collab) item(e *entropy, kind uint64, i int) item {
	r := e.at(kind, i)
	it := item{owner: r.IntN(c.users)}
	n := r.IntN(4) // workflows: 1.5 shares on average
	if kind == kindDataset {
		n = r.IntN(3)
		it.workflows = pickDistinct(r, nil, 1+r.IntN(2), c.workflows)
	}
	for len(it.shares) < n {
		s := share{group: r.IntN(5) < 2, editor: r.IntN(10) < 3}
		if s.group {
			s.id = r.IntN(c.groups)
		} else {
			s.id = r.IntN(c.users)
		}
		dup := false
		for _, o := range it.shares {
			dup = dup || (o.group == s.group && o.id == s.id)
		}
		if !dup {
			it.shares = append(it.shares, s)
		}
	}
	return it
}

func kindType(kind uint64) string {
	if kind == kindDataset {
		return "dataset"
	}
	return "workflow"
}

func itemID(kind uint64, i int) string {
	if kind == kindDataset {
		return "ds" + strconv.Itoa(i)
	}
	return "wf" + strconv.Itoa(i)
}

func (s share) subject() tuple.SubjectRef {
	if s.group {
		return subjSet("group", groupID(s.id), "member")
	}
	return subj("user", userID(s.id))
}

func (s share) relation() string {
	if s.editor {
		return "editor"
	}
	return "reader"
}

func (c *collab) emit(e *entropy, yield func(tuple.Relationship) bool) bool {
	org := obj("organization", orgID)
	for u := range c.users {
		info := c.user(e, u)
		s := subj("user", userID(u))
		if !yield(rel(org, "member", s)) {
			return false
		}
		for _, x := range []struct {
			on  bool
			rel string
		}{{info.admin, "admin"}, {info.accessAll, "access_all_data"}, {info.deactivated, "deactivated"}} {
			if x.on && !yield(rel(org, x.rel, s)) {
				return false
			}
		}
	}
	var buf []int
	for g := range c.groups {
		gr := obj("group", groupID(g))
		if p := c.parent(g); p >= 0 {
			if !yield(rel(obj("group", groupID(p)), "member", subjSet("group", groupID(g), "member"))) {
				return false
			}
		}
		buf = c.members(e, g, buf[:0])
		for _, u := range buf {
			if !yield(rel(gr, "member", subj("user", userID(u)))) {
				return false
			}
		}
	}
	orgSubj := subj("organization", orgID)
	for _, kind := range []uint64{kindWorkflow, kindDataset} {
		n, typ := c.workflows, kindType(kind)
		if kind == kindDataset {
			n = c.datasets
		}
		for i := range n {
			res := obj(typ, itemID(kind, i))
			it := c.item(e, kind, i)
			if !yield(rel(res, "org", orgSubj)) || !yield(rel(res, "owner", subj("user", userID(it.owner)))) {
				return false
			}
			for _, w := range it.workflows {
				if !yield(rel(res, "workflow", subj("workflow", itemID(kindWorkflow, w)))) {
					return false
				}
			}
			for _, s := range it.shares {
				if !yield(rel(res, s.relation(), s.subject())) {
					return false
				}
			}
		}
	}
	return true
}

// memberBelow returns a direct member of g or of one of its descendants.
func (c *collab) memberBelow(e *entropy, r *rand.Rand, g int) int {
	var kids []int
	for {
		kids = c.children(g, kids[:0])
		if len(kids) == 0 || r.IntN(10) < 4 {
			break
		}
		g = kids[r.IntN(len(kids))]
	}
	// members reuses the entity stream: draw the choice after it.
	m := c.members(e, g, nil)
	return m[r.IntN(len(m))]
}

// viewer returns a user who can view (or, with edit, edit) item i by
// construction, unless that user is deactivated.
func (c *collab) viewer(e *entropy, r *rand.Rand, kind uint64, i int) (u int, edit bool) {
	it := c.item(e, kind, i)
	p := r.IntN(20)
	var users, groups []share
	for _, s := range it.shares {
		if s.group {
			groups = append(groups, s)
		} else {
			users = append(users, s)
		}
	}
	switch {
	case p < 8 && len(users) > 0:
		s := users[r.IntN(len(users))]
		return s.id, s.editor && r.IntN(2) == 0
	case p < 14 && len(groups) > 0:
		s := groups[r.IntN(len(groups))]
		return c.memberBelow(e, r, s.id), s.editor && r.IntN(2) == 0
	case p < 19 && len(it.workflows) > 0:
		u, _ := c.viewer(e, r, kindWorkflow, it.workflows[r.IntN(len(it.workflows))])
		return u, false
	case p == 19:
		// An access_all_data holder: about one user in a hundred.
		start := r.IntN(c.users)
		for k := range c.users {
			if u := (start + k) % c.users; c.user(e, u).accessAll {
				return u, false
			}
		}
	}
	return it.owner, r.IntN(2) == 0
}

func (c *collab) randomItem(r *rand.Rand) (uint64, int) {
	if r.IntN(2) == 0 {
		return kindDataset, r.IntN(c.datasets)
	}
	return kindWorkflow, r.IntN(c.workflows)
}

func (c *collab) check(e *entropy, r *rand.Rand) Check {
	kind, i := c.randomItem(r)
	ch := Check{Resource: obj(kindType(kind), itemID(kind, i)), Permission: "view"}
	if r.IntN(2) == 0 {
		u := r.IntN(c.users)
		if r.IntN(4) == 0 {
			ch.Permission = "edit"
		}
		ch.Subject = subj("user", userID(u))
		return ch
	}
	u, edit := c.viewer(e, r, kind, i)
	if edit {
		ch.Permission = "edit"
	}
	ch.Subject = subj("user", userID(u))
	ch.Expect = Allowed
	if c.user(e, u).deactivated {
		ch.Expect = Denied
	}
	return ch
}

func (c *collab) lookupResources(e *entropy, r *rand.Rand) LookupResources {
	u := r.IntN(c.users)
	for k := 0; k < 10 && c.user(e, u).accessAll; k++ {
		u = r.IntN(c.users) // an access_all_data holder sees everything
	}
	typ := "workflow"
	if r.IntN(2) == 0 {
		typ = "dataset"
	}
	return LookupResources{ResourceType: typ, Permission: "view", Subject: subj("user", userID(u))}
}

func (c *collab) lookupSubjects(_ *entropy, r *rand.Rand) LookupSubjects {
	kind, i := c.randomItem(r)
	return LookupSubjects{Resource: obj(kindType(kind), itemID(kind, i)), Permission: "view", SubjectType: "user"}
}

func (c *collab) write(_ *entropy, r *rand.Rand) tuple.Relationship {
	kind, i := c.randomItem(r)
	return rel(obj(kindType(kind), itemID(kind, i)), "reader", subj("user", userID(r.IntN(c.users))))
}
