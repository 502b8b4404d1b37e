package tuple

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Limits on names, ids and caveat contexts, as SpiceDB enforces them.
const (
	MaxIDLength       = 1024
	MaxTypeNameLength = 128
	MaxRelationLength = 64
	// MaxCaveatContextSize is in bytes of JSON: ParseContext's limit and the
	// default of the API's configurable one (api.Limits.MaxCaveatContextLen).
	// The store's own bound, fixed by the log format, is
	// store.MaxCaveatContextBytes.
	MaxCaveatContextSize = 4096
)

// Errors returned by parsing and validation. They are wrapped with details; test
// with errors.Is.
var (
	ErrSyntax     = errors.New("malformed relationship")
	ErrInvalidID  = errors.New("invalid object id")
	ErrInvalidTyp = errors.New("invalid type name")
	ErrInvalidRel = errors.New("invalid relation name")
	ErrCaveat     = errors.New("invalid caveat")
	ErrExpiration = errors.New("invalid expiration")
)

// ValidateType checks a (possibly tenant-prefixed) type name such as `user` or
// `org/team/user`: at most MaxTypeNameLength characters in all, each
// '/'-separated segment matching [a-z][a-z0-9_]{1,62}[a-z0-9] (3 to 64
// characters).
func ValidateType(t string) error {
	if len(t) == 0 || len(t) > MaxTypeNameLength {
		return fmt.Errorf("%w %q: must be 1 to %d characters", ErrInvalidTyp, t, MaxTypeNameLength)
	}
	for seg := range strings.SplitSeq(t, "/") {
		if !validIdent(seg) {
			return fmt.Errorf("%w %q: each segment must match [a-z][a-z0-9_]{1,62}[a-z0-9]", ErrInvalidTyp, t)
		}
	}
	return nil
}

// ValidateRelation checks a relation or permission name.
func ValidateRelation(r string) error {
	if !validIdent(r) {
		return fmt.Errorf("%w %q: must match [a-z][a-z0-9_]{1,62}[a-z0-9]", ErrInvalidRel, r)
	}
	return nil
}

// ValidateID checks an object id: 1 to 1024 characters of [a-zA-Z0-9/_|\-=+].
// The wildcard `*` is not an object id; see ValidateSubjectID.
func ValidateID(id string) error {
	if len(id) == 0 || len(id) > MaxIDLength {
		return fmt.Errorf("%w %q: must be 1 to %d characters", ErrInvalidID, clip(id), MaxIDLength)
	}
	for i := 0; i < len(id); i++ {
		if !idByte(id[i]) {
			return fmt.Errorf("%w %q: character %q at %d is not allowed (allowed: a-z A-Z 0-9 / _ | - = +)", ErrInvalidID, clip(id), id[i], i)
		}
	}
	return nil
}

// ValidateSubjectID is ValidateID that also accepts the wildcard `*`.
func ValidateSubjectID(id string) error {
	if id == Wildcard {
		return nil
	}
	return ValidateID(id)
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func idByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '/' || c == '_' || c == '|' || c == '-' || c == '=' || c == '+'
}

// validIdent matches [a-z][a-z0-9_]{1,62}[a-z0-9].
func validIdent(s string) bool {
	if len(s) < 3 || len(s) > MaxRelationLength {
		return false
	}
	if s[0] < 'a' || s[0] > 'z' {
		return false
	}
	last := s[len(s)-1]
	if last == '_' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Validate checks every name and id in the relationship.
func (r Relationship) Validate() error {
	if err := ValidateType(r.Resource.Type); err != nil {
		return fmt.Errorf("resource type: %w", err)
	}
	if err := ValidateID(r.Resource.ID); err != nil {
		return fmt.Errorf("resource id: %w", err)
	}
	if err := ValidateRelation(r.Relation); err != nil {
		return fmt.Errorf("relation: %w", err)
	}
	if err := ValidateType(r.Subject.Type); err != nil {
		return fmt.Errorf("subject type: %w", err)
	}
	if err := ValidateSubjectID(r.Subject.ID); err != nil {
		return fmt.Errorf("subject id: %w", err)
	}
	if r.Subject.Relation != "" {
		if err := ValidateRelation(r.Subject.Relation); err != nil {
			return fmt.Errorf("subject relation: %w", err)
		}
		if r.Subject.ID == Wildcard {
			return fmt.Errorf("%w: a wildcard subject cannot have a relation", ErrSyntax)
		}
	}
	if r.Caveat != nil {
		if err := ValidateRelation(r.Caveat.Name); err != nil {
			return fmt.Errorf("%w: caveat name %q must match [a-z][a-z0-9_]{1,62}[a-z0-9]", ErrCaveat, r.Caveat.Name)
		}
	}
	return nil
}

// MustParse is Parse for tests and literals; it panics on error.
func MustParse(s string) Relationship {
	r, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return r
}

// Parse reads the text form of a relationship:
//
//	resource_type:resource_id#relation@subject_type:subject_id[#subject_relation][caveat[:{json}]][expiration:RFC3339]
//
// Surrounding white space is ignored; `#...` on the subject means no relation.
func Parse(s string) (Relationship, error) {
	var r Relationship
	s = strings.TrimSpace(s)
	orig := s
	// Split off the bracketed attributes first: they may contain any characters.
	main, attrs, err := splitAttrs(s)
	if err != nil {
		return r, err
	}
	res, subj, ok := strings.Cut(main, "@")
	if !ok {
		return r, fmt.Errorf("%w %q: expected resource#relation@subject", ErrSyntax, clip(orig))
	}
	resObj, rel, ok := strings.Cut(res, "#")
	if !ok {
		return r, fmt.Errorf("%w %q: expected '#relation' after the resource", ErrSyntax, clip(orig))
	}
	if r.Resource, err = parseObject(resObj); err != nil {
		return r, fmt.Errorf("resource: %w", err)
	}
	r.Relation = rel
	sObj, sRel, hasRel := strings.Cut(subj, "#")
	o, err := parseObject(sObj)
	if err != nil {
		return r, fmt.Errorf("subject: %w", err)
	}
	r.Subject = SubjectRef{Type: o.Type, ID: o.ID}
	if hasRel {
		if sRel == "" {
			return r, fmt.Errorf("%w %q: empty subject relation after '#'", ErrSyntax, clip(orig))
		}
		if sRel != Ellipsis {
			r.Subject.Relation = sRel
		}
	}
	for _, a := range attrs {
		if err := r.applyAttr(a); err != nil {
			return r, err
		}
	}
	if err := r.Validate(); err != nil {
		return r, err
	}
	return r, nil
}

func parseObject(s string) (ObjectRef, error) {
	t, id, ok := strings.Cut(s, ":")
	if !ok {
		return ObjectRef{}, fmt.Errorf("%w %q: expected type:id", ErrSyntax, clip(s))
	}
	return ObjectRef{Type: t, ID: id}, nil
}

// splitAttrs returns the part before the first '[' and the contents of each
// top-level bracketed attribute. Brackets inside JSON strings and nested
// arrays are skipped.
func splitAttrs(s string) (string, []string, error) {
	i := strings.IndexByte(s, '[')
	if i < 0 {
		if strings.IndexByte(s, ']') >= 0 {
			return "", nil, fmt.Errorf("%w %q: unexpected ']'", ErrSyntax, clip(s))
		}
		return s, nil, nil
	}
	main, rest := s[:i], s[i:]
	var attrs []string
	for len(rest) > 0 {
		if rest[0] != '[' {
			return "", nil, fmt.Errorf("%w %q: expected '[' at %q", ErrSyntax, clip(s), clip(rest))
		}
		depth, inStr, esc, end := 0, false, false, -1
	scan:
		for j := 0; j < len(rest); j++ {
			c := rest[j]
			switch {
			case inStr && esc:
				esc = false
			case inStr && c == '\\':
				esc = true
			case c == '"':
				inStr = !inStr
			case inStr:
			case c == '[' || c == '{':
				depth++
			case c == ']' || c == '}':
				depth--
				if depth == 0 {
					if c != ']' {
						return "", nil, fmt.Errorf("%w %q: unbalanced brackets", ErrSyntax, clip(s))
					}
					end = j
					break scan
				}
			}
		}
		if end < 0 {
			return "", nil, fmt.Errorf("%w %q: unterminated '['", ErrSyntax, clip(s))
		}
		attrs = append(attrs, rest[1:end])
		rest = strings.TrimLeft(rest[end+1:], " ")
	}
	return main, attrs, nil
}

func (r *Relationship) applyAttr(a string) error {
	name, val, hasVal := strings.Cut(a, ":")
	name = strings.TrimSpace(name)
	if name == "expiration" && hasVal {
		if !r.Expiration.IsZero() {
			return fmt.Errorf("%w: given twice", ErrExpiration)
		}
		t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(val))
		if err != nil {
			return fmt.Errorf("%w %q: want RFC 3339, e.g. 2030-01-02T15:04:05Z", ErrExpiration, val)
		}
		r.Expiration = t.UTC()
		return nil
	}
	if r.Caveat != nil {
		return fmt.Errorf("%w: a relationship has at most one caveat (found %q and %q)", ErrCaveat, r.Caveat.Name, name)
	}
	c := &Caveat{Name: name}
	if hasVal {
		ctx, err := ParseContext([]byte(val))
		if err != nil {
			return fmt.Errorf("%w %q: %v", ErrCaveat, name, err)
		}
		c.Context = ctx
	}
	r.Caveat = c
	return nil
}

// ParseContext decodes a caveat context: a JSON object, at most
// MaxCaveatContextSize bytes.
func ParseContext(b []byte) (map[string]any, error) {
	b = bytes.TrimSpace(b)
	if len(b) > MaxCaveatContextSize {
		return nil, fmt.Errorf("context is %d bytes, more than the limit of %d", len(b), MaxCaveatContextSize)
	}
	if len(b) == 0 || b[0] != '{' {
		return nil, errors.New("context must be a JSON object")
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("context is not valid JSON: %v", err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// ParseSubject reads `type:id` or `type:id#relation`.
func ParseSubject(s string) (SubjectRef, error) {
	s = strings.TrimSpace(s)
	obj, rel, hasRel := strings.Cut(s, "#")
	o, err := parseObject(obj)
	if err != nil {
		return SubjectRef{}, err
	}
	sub := SubjectRef{Type: o.Type, ID: o.ID}
	if hasRel && rel != Ellipsis {
		sub.Relation = rel
		if err := ValidateRelation(rel); err != nil {
			return sub, err
		}
	}
	if err := ValidateType(sub.Type); err != nil {
		return sub, err
	}
	if err := ValidateSubjectID(sub.ID); err != nil {
		return sub, err
	}
	if sub.Relation != "" && sub.ID == Wildcard {
		return sub, fmt.Errorf("%w: a wildcard subject cannot have a relation", ErrSyntax)
	}
	return sub, nil
}

// ParseObject reads `type:id`.
func ParseObject(s string) (ObjectRef, error) {
	o, err := parseObject(strings.TrimSpace(s))
	if err != nil {
		return o, err
	}
	if err := ValidateType(o.Type); err != nil {
		return o, err
	}
	if err := ValidateID(o.ID); err != nil {
		return o, err
	}
	return o, nil
}
