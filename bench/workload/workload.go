// Package workload generates benchmark data sets for ambit: a schema in the
// SpiceDB language, its relationships, and streams of queries (checks,
// lookups, writes) whose answers are partly known by construction.
//
// Every generator is a pure function of (workload, size, seed): the same
// three always give the same schema, the same relationships in the same
// order, and the same query stream for the same query seed. Relationships are
// produced entity by entity from a PCG seeded with the entity's index, so the
// query generators can rebuild any entity's relationships on demand and know,
// without holding the data set in memory, which checks must be allowed.
//
// Workloads:
//
//	collab   a cytometry/omics collaboration platform: one organization,
//	         users, nested groups, workflows and datasets shared with users
//	         or groups; dataset view through workflows (arrow), org-wide
//	         access_all_data, deactivated users excluded (exclusion).
//	deep     chains of nested groups 4 to 32 levels deep.
//	wide     very large groups and folders with 10k children.
//	caveats  grants conditional on an ip allowlist and business hours.
package workload

import (
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/ambit-authz/ambit/tuple"
)

// ErrUnknown is returned by New for an unknown workload name or size.
var ErrUnknown = errors.New("unknown workload")

// Size scales a workload.
type Size int

const (
	Small Size = iota
	Medium
	Large
)

var sizeNames = [...]string{"small", "medium", "large"}

func (s Size) String() string {
	if s < 0 || int(s) >= len(sizeNames) {
		return fmt.Sprintf("Size(%d)", int(s))
	}
	return sizeNames[s]
}

// ParseSize parses "small", "medium" or "large".
func ParseSize(s string) (Size, error) {
	if i := slices.Index(sizeNames[:], s); i >= 0 {
		return Size(i), nil
	}
	return 0, fmt.Errorf("%w: size %q (want small, medium or large)", ErrUnknown, s)
}

// Expect says what the answer to a generated check is known to be.
type Expect int

const (
	// Unknown: a random check; usually denied, not guaranteed.
	Unknown Expect = iota
	// Allowed: the relationships grant it by construction.
	Allowed
	// Denied: by construction nothing grants it (or an exclusion removes it).
	Denied
	// Conditional: granted only through a caveat whose context is missing.
	Conditional
)

func (e Expect) String() string {
	return [...]string{"unknown", "allowed", "denied", "conditional"}[e]
}

// Check is one generated permission check.
type Check struct {
	Resource   tuple.ObjectRef
	Permission string
	Subject    tuple.SubjectRef
	// Context is caveat context sent with the check (JSON values), or nil.
	Context map[string]any
	Expect  Expect
}

func (c Check) String() string {
	return c.Resource.String() + "#" + c.Permission + "@" + c.Subject.String()
}

// LookupResources is one generated LookupResources request.
type LookupResources struct {
	ResourceType string
	Permission   string
	Subject      tuple.SubjectRef
	Context      map[string]any
}

// LookupSubjects is one generated LookupSubjects request.
type LookupSubjects struct {
	Resource    tuple.ObjectRef
	Permission  string
	SubjectType string
	Context     map[string]any
}

// model is what each workload implements. Every method must be a pure
// function of the model's parameters and the rand it is given.
type model interface {
	schema() string
	// emit yields every relationship once, in a fixed order, until yield
	// returns false; it reports whether it ran to the end.
	emit(e *entropy, yield func(tuple.Relationship) bool) bool
	check(e *entropy, r *rand.Rand) Check
	lookupResources(e *entropy, r *rand.Rand) LookupResources
	lookupSubjects(e *entropy, r *rand.Rand) LookupSubjects
	// write returns a relationship to TOUCH.
	write(e *entropy, r *rand.Rand) tuple.Relationship
}

// Workload is one generated data set. Safe for concurrent use.
type Workload struct {
	Name string
	Size Size
	Seed uint64

	m model

	countOnce sync.Once
	count     int
}

var constructors = map[string]func(Size, uint64) model{
	"collab":  newCollab,
	"deep":    newDeep,
	"wide":    newWide,
	"caveats": newCaveats,
}

// Names lists the workloads, sorted.
func Names() []string {
	out := make([]string, 0, len(constructors))
	for n := range constructors {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// New returns the named workload at a size and seed.
func New(name string, size Size, seed uint64) (*Workload, error) {
	c := constructors[name]
	if c == nil {
		return nil, fmt.Errorf("%w: %q (want one of %v)", ErrUnknown, name, Names())
	}
	if size < Small || size > Large {
		return nil, fmt.Errorf("%w: size %d", ErrUnknown, int(size))
	}
	return &Workload{Name: name, Size: size, Seed: seed, m: c(size, seed)}, nil
}

// MustNew is New for known names; it panics on error.
func MustNew(name string, size Size, seed uint64) *Workload {
	w, err := New(name, size, seed)
	if err != nil {
		panic(err)
	}
	return w
}

func (w *Workload) String() string { return fmt.Sprintf("%s/%s/seed=%d", w.Name, w.Size, w.Seed) }

// Schema returns the schema text (SpiceDB schema language).
func (w *Workload) Schema() string { return w.m.schema() }

// Relationships yields every relationship of the data set, each once, in the
// same order on every call.
func (w *Workload) Relationships() iter.Seq[tuple.Relationship] {
	return func(yield func(tuple.Relationship) bool) {
		w.m.emit(newEntropy(w.Seed), yield)
	}
}

// Slice returns the relationships as a slice (fine for small and medium;
// large has from about 1.5 million (deep) to about five million (collab)).
func (w *Workload) Slice() []tuple.Relationship {
	out := make([]tuple.Relationship, 0, w.Len())
	for r := range w.Relationships() {
		out = append(out, r)
	}
	return out
}

// Len is the number of relationships (computed by generating them once).
func (w *Workload) Len() int {
	w.countOnce.Do(func() {
		for range w.Relationships() {
			w.count++
		}
	})
	return w.count
}

// Queries returns a query generator. Generators with the same seed yield the
// same queries; give each concurrent worker its own seed.
func (w *Workload) Queries(seed uint64) *Queries {
	return &Queries{m: w.m, e: newEntropy(w.Seed), r: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))}
}

// Queries generates requests against a workload. Not safe for concurrent use.
type Queries struct {
	m model
	e *entropy
	r *rand.Rand
}

// Rand is the generator's own random source (for callers choosing among
// operations, so one seed fixes the whole stream).
func (q *Queries) Rand() *rand.Rand { return q.r }

// Check returns the next check.
func (q *Queries) Check() Check { return q.m.check(q.e, q.r) }

// LookupResources returns the next LookupResources request.
func (q *Queries) LookupResources() LookupResources { return q.m.lookupResources(q.e, q.r) }

// LookupSubjects returns the next LookupSubjects request.
func (q *Queries) LookupSubjects() LookupSubjects { return q.m.lookupSubjects(q.e, q.r) }

// Write returns the next relationship to TOUCH.
func (q *Queries) Write() tuple.Relationship { return q.m.write(q.e, q.r) }

// entropy gives each entity (a kind and an index) its own reproducible
// random stream: the PCG is re-seeded from the workload seed, the kind and
// the index, so any entity can be regenerated in any order.
type entropy struct {
	seed uint64
	pcg  rand.PCG
	r    *rand.Rand
}

func newEntropy(seed uint64) *entropy {
	e := &entropy{seed: seed}
	e.r = rand.New(&e.pcg)
	return e
}

// Entity kinds for entropy.at.
const (
	kindUser uint64 = iota + 1
	kindGroup
	kindWorkflow
	kindDataset
	kindChain
	kindFolder
	kindDocument
	kindTeam
)

// at returns the random stream of entity i of a kind. The returned rand is
// shared: the caller must finish with it before calling at again.
func (e *entropy) at(kind uint64, i int) *rand.Rand {
	e.pcg.Seed(mix(e.seed^kind<<56), mix(uint64(i)^kind))
	return e.r
}

// mix is splitmix64's finaliser: nearby inputs give unrelated outputs.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// Helpers for building relationships.

func obj(typ, id string) tuple.ObjectRef { return tuple.ObjectRef{Type: typ, ID: id} }

func subj(typ, id string) tuple.SubjectRef { return tuple.SubjectRef{Type: typ, ID: id} }

func subjSet(typ, id, rel string) tuple.SubjectRef {
	return tuple.SubjectRef{Type: typ, ID: id, Relation: rel}
}

func rel(res tuple.ObjectRef, relation string, s tuple.SubjectRef) tuple.Relationship {
	return tuple.Relationship{Resource: res, Relation: relation, Subject: s}
}

// pickDistinct appends n distinct values in [0, max) to dst (n is capped at max).
func pickDistinct(r *rand.Rand, dst []int, n, max int) []int {
	n = min(n, max)
	start := len(dst)
	for len(dst)-start < n {
		v := r.IntN(max)
		if !slices.Contains(dst[start:], v) {
			dst = append(dst, v)
		}
	}
	return dst
}
