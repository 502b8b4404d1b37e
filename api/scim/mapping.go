package scim

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/ambit-authz/ambit/tuple"
)

// Mapping says which relationships SCIM users and groups become
// (`ambit serve --scim-mapping FILE`). Each entry is a relationship in the
// text form with placeholders: {org} the organization, {id} the SCIM id of
// the user or group, {member} the subject a group member becomes.
type Mapping struct {
	// Organization fills {org}.
	Organization string `yaml:"organization"`
	Users        struct {
		// Relationships exist while the user does (users are never
		// deleted, so always once created).
		Relationships []string `yaml:"relationships"`
		// Inactive exist while the user's active is false (and after a
		// DELETE, which deactivates).
		Inactive []string `yaml:"inactive"`
	} `yaml:"users"`
	Groups struct {
		// Relationships exist while the group does.
		Relationships []string `yaml:"relationships"`
		// Member is written for each member, {member} being UserMember or
		// GroupMember with {id} the member's id.
		Member      string `yaml:"member"`
		UserMember  string `yaml:"user_member"`
		GroupMember string `yaml:"group_member"`
	} `yaml:"groups"`
}

// DefaultMapping fits schema/examples/collab.zed: a user is an account of
// the organization and a member of its All users group, and
// organization#deactivated while inactive; a group belongs to the
// organization, its own admins manage it and it may be deleted, and its
// members are direct members (a member group's members through
// group#member).
func DefaultMapping(org string) Mapping {
	var m Mapping
	m.Organization = org
	m.Users.Relationships = []string{"organization:{org}#account@user:{id}", "group:all_users#direct_member@user:{id}"}
	m.Users.Inactive = []string{"organization:{org}#deactivated@user:{id}"}
	m.Groups.Relationships = []string{"group:{id}#org@organization:{org}", "group:{id}#self_managed@user:*", "group:{id}#deletable@user:*"}
	m.Groups.Member = "group:{id}#direct_member@{member}"
	m.Groups.UserMember = "user:{id}"
	m.Groups.GroupMember = "group:{id}#member"
	return m
}

// ParseMapping reads a mapping file strictly (an unknown key is an error)
// and checks that every template makes a valid relationship.
func ParseMapping(data []byte) (Mapping, error) {
	m, err := DecodeMapping(data)
	if err != nil {
		return Mapping{}, err
	}
	return m, m.Validate()
}

// DecodeMapping reads a mapping file strictly without validating it (the
// caller may fill in the organization first, then Validate).
func DecodeMapping(data []byte) (Mapping, error) {
	var m Mapping
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		return Mapping{}, fmt.Errorf("scim mapping: %w", err)
	}
	return m, nil
}

// Validate checks every template with sample ids.
func (m Mapping) Validate() error {
	if err := tuple.ValidateID(m.Organization); err != nil {
		return fmt.Errorf("scim mapping: organization: %w", err)
	}
	if m.Groups.Member == "" || m.Groups.UserMember == "" || m.Groups.GroupMember == "" {
		return fmt.Errorf("scim mapping: groups.member, groups.user_member and groups.group_member are required")
	}
	for _, list := range [][]string{m.Users.Relationships, m.Users.Inactive, m.Groups.Relationships} {
		for _, t := range list {
			if _, err := m.fill(t, "sample-id", ""); err != nil {
				return err
			}
		}
	}
	for _, mt := range []string{m.Groups.UserMember, m.Groups.GroupMember} {
		member := strings.NewReplacer("{id}", "sample-member", "{org}", m.Organization).Replace(mt)
		if _, err := tuple.ParseSubject(member); err != nil {
			return fmt.Errorf("scim mapping: member subject %q: %w", mt, err)
		}
		if _, err := m.fill(m.Groups.Member, "sample-id", member); err != nil {
			return err
		}
	}
	return nil
}

func (m Mapping) fill(template, id, member string) (tuple.Relationship, error) {
	s := fillTemplate(template, m.Organization, id, member)
	r, err := tuple.Parse(s)
	if err != nil {
		return tuple.Relationship{}, fmt.Errorf("scim mapping: %q makes %q: %w", template, s, err)
	}
	return r, nil
}

// fillTemplate replaces {org}, {id} and {member} in a template. The values
// are relationship ids and subjects, which hold no braces, so one pass each
// cannot make a new placeholder.
func fillTemplate(t, org, id, member string) string {
	if strings.Contains(t, "{member}") {
		t = strings.ReplaceAll(t, "{member}", member)
	}
	return strings.ReplaceAll(strings.ReplaceAll(t, "{org}", org), "{id}", id)
}

func (m Mapping) fillAll(templates []string, id string) ([]tuple.Relationship, error) {
	out := make([]tuple.Relationship, 0, len(templates))
	for _, t := range templates {
		r, err := m.fill(t, id, "")
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// User returns the relationships a user with SCIM id id implies: active
// false (or a deleted user) adds the inactive ones.
func (m Mapping) User(id string, active bool) ([]tuple.Relationship, error) {
	if err := tuple.ValidateID(id); err != nil {
		return nil, err
	}
	out, err := m.fillAll(m.Users.Relationships, id)
	if err != nil || active {
		return out, err
	}
	inactive, err := m.fillAll(m.Users.Inactive, id)
	return append(out, inactive...), err
}

// Member is a group member: a user's or a group's SCIM id.
type Member struct {
	ID    string
	Group bool
}

// Group returns the relationships a group with SCIM id id and these members
// implies.
func (m Mapping) Group(id string, members []Member) ([]tuple.Relationship, error) {
	if err := tuple.ValidateID(id); err != nil {
		return nil, err
	}
	out, err := m.fillAll(m.Groups.Relationships, id)
	if err != nil {
		return nil, err
	}
	for _, mem := range members {
		if err := tuple.ValidateID(mem.ID); err != nil {
			return nil, fmt.Errorf("member %q: %w", mem.ID, err)
		}
		t := m.Groups.UserMember
		if mem.Group {
			t = m.Groups.GroupMember
		}
		subject := fillTemplate(t, m.Organization, mem.ID, "")
		r, err := m.fill(m.Groups.Member, id, subject)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Diff returns what turns the relationships before into those after:
// touches for the new ones and deletes for the gone ones, each sorted by
// key, none for what both hold.
func Diff(before, after []tuple.Relationship) (touch, del []tuple.Relationship) {
	key := func(r tuple.Relationship) string { return r.Key().String() }
	had := map[string]bool{}
	for _, r := range before {
		had[key(r)] = true
	}
	has := map[string]bool{}
	for _, r := range after {
		k := key(r)
		if !has[k] && !had[k] {
			touch = append(touch, r)
		}
		has[k] = true
	}
	for _, r := range before {
		k := key(r)
		if !has[k] {
			del = append(del, r)
			has[k] = true // once
		}
	}
	byKey := func(a, b tuple.Relationship) int { return strings.Compare(key(a), key(b)) }
	slices.SortFunc(touch, byKey)
	slices.SortFunc(del, byKey)
	return touch, del
}
