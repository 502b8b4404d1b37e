package tuple

import (
	"encoding/json"
	"fmt"
	"maps"
	"time"
)

// Wildcard is the subject id that stands for every subject of a type (`user:*`).
const Wildcard = "*"

// Ellipsis is SpiceDB's spelling of "no relation" on a subject (`user:ana#...`).
// Inside ambit the empty string means the same; Ellipsis is accepted when parsing.
const Ellipsis = "..."

// Revision is a point in the store's history: the raft log index of a write
// batch, which the store also uses as the batch's commit timestamp. Revision 0
// is "before anything".
type Revision uint64

// ObjectRef names one object: `document:readme`.
type ObjectRef struct {
	Type string
	ID   string
}

func (o ObjectRef) String() string { return o.Type + ":" + o.ID }

// SubjectRef names a subject: an object (`user:ana`), a subject set
// (`group:lab#member`) or a wildcard (`user:*`). Relation is empty for a plain
// object.
type SubjectRef struct {
	Type     string
	ID       string
	Relation string
}

// Object returns the object part of the subject.
func (s SubjectRef) Object() ObjectRef { return ObjectRef{Type: s.Type, ID: s.ID} }

// IsWildcard reports whether the subject is `type:*`.
func (s SubjectRef) IsWildcard() bool { return s.ID == Wildcard }

func (s SubjectRef) String() string {
	if s.Relation == "" {
		return s.Type + ":" + s.ID
	}
	return s.Type + ":" + s.ID + "#" + s.Relation
}

// Caveat is a named caveat attached to a relationship, with the part of its
// context that was fixed when the relationship was written. Context holds JSON
// values (as decoded by encoding/json with UseNumber off: float64, string,
// bool, nil, []any, map[string]any).
type Caveat struct {
	Name    string
	Context map[string]any
}

// Equal reports whether two caveats have the same name and the same context.
func (c *Caveat) Equal(o *Caveat) bool {
	if c == nil || o == nil {
		return c == o
	}
	if c.Name != o.Name || len(c.Context) != len(o.Context) {
		return false
	}
	a, err1 := json.Marshal(c.Context)
	b, err2 := json.Marshal(o.Context)
	return err1 == nil && err2 == nil && string(a) == string(b)
}

// Clone returns a deep-enough copy (the context map is copied at its top level).
func (c *Caveat) Clone() *Caveat {
	if c == nil {
		return nil
	}
	return &Caveat{Name: c.Name, Context: maps.Clone(c.Context)}
}

// Relationship is one tuple: resource#relation@subject, optionally caveated and
// optionally expiring. A zero Expiration means "never expires".
type Relationship struct {
	Resource   ObjectRef
	Relation   string
	Subject    SubjectRef
	Caveat     *Caveat
	Expiration time.Time
}

// Key is the identity of a relationship: two relationships with the same Key
// are the same tuple (caveat and expiration are attributes of it).
type Key struct {
	Resource ObjectRef
	Relation string
	Subject  SubjectRef
}

// Key returns the relationship's identity.
func (r Relationship) Key() Key {
	return Key{Resource: r.Resource, Relation: r.Relation, Subject: r.Subject}
}

func (k Key) String() string {
	return k.Resource.String() + "#" + k.Relation + "@" + k.Subject.String()
}

// ExpiredAt reports whether the relationship is expired at time now.
func (r Relationship) ExpiredAt(now time.Time) bool {
	return !r.Expiration.IsZero() && !now.Before(r.Expiration)
}

// Equal reports whether two relationships are identical, attributes included.
func (r Relationship) Equal(o Relationship) bool {
	return r.Key() == o.Key() && r.Caveat.Equal(o.Caveat) && r.Expiration.Equal(o.Expiration)
}

// String prints the canonical text form, e.g.
// `document:d1#viewer@user:ana[only_on_mondays:{"day":1}][expiration:2030-01-01T00:00:00Z]`.
func (r Relationship) String() string {
	s := r.Key().String()
	if r.Caveat != nil {
		s += "[" + r.Caveat.Name
		if len(r.Caveat.Context) > 0 {
			b, err := json.Marshal(r.Caveat.Context)
			if err != nil {
				b = []byte(fmt.Sprintf("%q", err.Error()))
			}
			s += ":" + string(b)
		}
		s += "]"
	}
	if !r.Expiration.IsZero() {
		s += "[expiration:" + r.Expiration.UTC().Format(time.RFC3339Nano) + "]"
	}
	return s
}

// Filter selects relationships. Empty fields match anything; ResourceIDs and
// ResourceIDPrefix may not both be set.
type Filter struct {
	ResourceType     string
	ResourceIDs      []string
	ResourceIDPrefix string
	Relation         string
	Subject          *SubjectFilter
}

// SubjectFilter narrows a Filter by subject.
type SubjectFilter struct {
	Type string
	IDs  []string
	// Relation: nil matches any relation; a pointer to "" matches only subjects
	// without a relation.
	Relation *string
}

// Matches reports whether r satisfies the filter.
func (f Filter) Matches(r Relationship) bool {
	if f.ResourceType != "" && r.Resource.Type != f.ResourceType {
		return false
	}
	if len(f.ResourceIDs) > 0 && !contains(f.ResourceIDs, r.Resource.ID) {
		return false
	}
	if f.ResourceIDPrefix != "" && (len(r.Resource.ID) < len(f.ResourceIDPrefix) || r.Resource.ID[:len(f.ResourceIDPrefix)] != f.ResourceIDPrefix) {
		return false
	}
	if f.Relation != "" && r.Relation != f.Relation {
		return false
	}
	if sf := f.Subject; sf != nil {
		if sf.Type != "" && r.Subject.Type != sf.Type {
			return false
		}
		if len(sf.IDs) > 0 && !contains(sf.IDs, r.Subject.ID) {
			return false
		}
		if sf.Relation != nil && r.Subject.Relation != *sf.Relation {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
