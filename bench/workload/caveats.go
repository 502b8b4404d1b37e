package workload

import (
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/ambit-authz/ambit/tuple"
)

const caveatsSchema = `// caveats: grants conditional on request context (ambit bench workload).
caveat ip_allowlist(user_ip ipaddress, cidr string) {
	user_ip.in_cidr(cidr)
}

caveat business_hours(hour int, start_hour int, end_hour int) {
	hour >= start_hour && hour < end_hour
}

definition user {}

definition team {
	relation member: user | user with business_hours
}

definition document {
	relation viewer: user | user with ip_allowlist | team#member
	permission view = viewer
}
`

// caveats: document d has one viewer allowed from 10.<d%256>.0.0/16 only,
// one plain viewer and one team; a team has ten members, the odd ones only
// during business hours (9 to 17).
type caveats struct {
	docs, users, teams int
}

const teamSize = 10

func newCaveats(size Size, _ uint64) model {
	c := &caveats{docs: 10_000, users: 2_000, teams: 100}
	switch size {
	case Medium:
		c.docs, c.users, c.teams = 100_000, 20_000, 1_000
	case Large:
		c.docs, c.users, c.teams = 1_000_000, 200_000, 10_000
	}
	return c
}

func (c *caveats) schema() string { return caveatsSchema }

func docID(d int) string  { return "d" + strconv.Itoa(d) }
func teamID(t int) string { return "t" + strconv.Itoa(t) }

type cavDoc struct{ ipUser, plainUser, team int }

func (c *caveats) doc(e *entropy, d int) cavDoc {
	r := e.at(kindDocument, d)
	return cavDoc{ipUser: r.IntN(c.users), plainUser: r.IntN(c.users), team: r.IntN(c.teams)}
}

// team returns the members of team t; odd positions are business-hours only.
func (c *caveats) team(e *entropy, t int) []int {
	return pickDistinct(e.at(kindTeam, t), nil, teamSize, c.users)
}

func cidr(d int) string { return "10." + strconv.Itoa(d%256) + ".0.0/16" }

func ipIn(r *rand.Rand, d int) string {
	return "10." + strconv.Itoa(d%256) + "." + strconv.Itoa(r.IntN(256)) + "." + strconv.Itoa(1+r.IntN(254))
}

func ipOut(r *rand.Rand, d int) string {
	return "10." + strconv.Itoa((d+1+r.IntN(255))%256) + "." + strconv.Itoa(r.IntN(256)) + "." + strconv.Itoa(1+r.IntN(254))
}

func (c *caveats) emit(e *entropy, yield func(tuple.Relationship) bool) bool {
	hours := &tuple.Caveat{Name: "business_hours", Context: map[string]any{"start_hour": 9.0, "end_hour": 17.0}}
	for t := range c.teams {
		tm := obj("team", teamID(t))
		for i, u := range c.team(e, t) {
			r := rel(tm, "member", subj("user", userID(u)))
			if i%2 == 1 {
				r.Caveat = hours
			}
			if !yield(r) {
				return false
			}
		}
	}
	for d := range c.docs {
		doc := obj("document", docID(d))
		x := c.doc(e, d)
		ip := rel(doc, "viewer", subj("user", userID(x.ipUser)))
		ip.Caveat = &tuple.Caveat{Name: "ip_allowlist", Context: map[string]any{"cidr": cidr(d)}}
		if !yield(ip) {
			return false
		}
		if x.plainUser != x.ipUser && !yield(rel(doc, "viewer", subj("user", userID(x.plainUser)))) {
			return false
		}
		if !yield(rel(doc, "viewer", subjSet("team", teamID(x.team), "member"))) {
			return false
		}
	}
	return true
}

// otherPath reports whether u reaches document d other than through the ip
// grant (then an ip-only expectation does not hold), and whether the only
// other path is a business-hours membership.
func (c *caveats) otherPath(e *entropy, x cavDoc, u int) (any, hoursOnly bool) {
	if x.plainUser == u {
		return true, false
	}
	m := c.team(e, x.team)
	if i := slices.Index(m, u); i >= 0 {
		return true, i%2 == 1
	}
	return false, false
}

func (c *caveats) check(e *entropy, r *rand.Rand) Check {
	d := r.IntN(c.docs)
	x := c.doc(e, d)
	ch := Check{Resource: obj("document", docID(d)), Permission: "view"}
	hour := func(in bool) float64 {
		if in {
			return float64(9 + r.IntN(8))
		}
		return float64((17 + r.IntN(16)) % 24)
	}
	switch p := r.IntN(20); {
	case p < 6: // the ip grant, from inside the range
		ch.Subject = subj("user", userID(x.ipUser))
		ch.Context = map[string]any{"user_ip": ipIn(r, d), "hour": hour(r.IntN(2) == 0)}
		ch.Expect = Allowed
	case p < 8: // the ip grant, from outside the range, outside business hours
		ch.Subject = subj("user", userID(x.ipUser))
		ch.Context = map[string]any{"user_ip": ipOut(r, d), "hour": hour(false)}
		if other, hoursOnly := c.otherPath(e, x, x.ipUser); !other || hoursOnly {
			ch.Expect = Denied
		}
	case p < 10: // the ip grant without context
		ch.Subject = subj("user", userID(x.ipUser))
		if other, _ := c.otherPath(e, x, x.ipUser); !other {
			ch.Expect = Conditional
		}
	case p < 13: // a team member, inside business hours
		m := c.team(e, x.team)
		ch.Subject = subj("user", userID(m[r.IntN(len(m))]))
		ch.Context = map[string]any{"user_ip": ipOut(r, d), "hour": hour(true)}
		ch.Expect = Allowed
	default: // anyone, anywhere, any time
		ch.Subject = subj("user", userID(r.IntN(c.users)))
		ch.Context = map[string]any{"user_ip": ipIn(r, r.IntN(256)), "hour": float64(r.IntN(24))}
	}
	return ch
}

func (c *caveats) lookupResources(_ *entropy, r *rand.Rand) LookupResources {
	return LookupResources{ResourceType: "document", Permission: "view", Subject: subj("user", userID(r.IntN(c.users))),
		Context: map[string]any{"user_ip": ipIn(r, r.IntN(256)), "hour": float64(r.IntN(24))}}
}

func (c *caveats) lookupSubjects(_ *entropy, r *rand.Rand) LookupSubjects {
	d := r.IntN(c.docs)
	return LookupSubjects{Resource: obj("document", docID(d)), Permission: "view", SubjectType: "user",
		Context: map[string]any{"user_ip": ipIn(r, d), "hour": float64(r.IntN(24))}}
}

func (c *caveats) write(_ *entropy, r *rand.Rand) tuple.Relationship {
	return rel(obj("document", docID(r.IntN(c.docs))), "viewer", subj("user", userID(r.IntN(c.users))))
}
