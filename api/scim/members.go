package scim

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"strings"
)

// A group's members are records of their own (RecordStore), so that a
// change of a few members of a large group reads and writes those members
// and the group's record only. The handler works on a group resource that
// holds the members a request concerns: all of them for a GET that shows
// them (none for one whose attributes or excludedAttributes leave them
// out), a PUT, a DELETE or a PATCH of the whole list, only those named for
// a PATCH that adds members or removes some by value. What changed between
// the members read and those written is what a Commit writes.

// isMembers reports whether p names a group's members attribute.
func isMembers(p AttrPath) bool {
	return strings.EqualFold(p.Name, "members") && (p.URI == "" || strings.EqualFold(p.URI, GroupSchema))
}

// memberValues returns the "value" of each member a PATCH value or a
// resource's members list names; ok is false when one has none (it is then
// compared whole, against every member).
func memberValues(v any) (ids []string, ok bool) {
	list, isList := v.([]any)
	if !isList {
		list = []any{v}
	}
	for _, e := range list {
		m, _ := e.(map[string]any)
		s, _ := lookup(m, "value").(string)
		if s == "" {
			return ids, false
		}
		ids = append(ids, s)
	}
	return ids, true
}

// patchMembers returns the members a PATCH's operations name, or all when
// an operation may concern any member: it replaces or removes the whole
// list, names a sub-attribute of members, selects members by a filter
// (other than a remove's `value eq`), or gives members without a value.
func patchMembers(ops []PatchOp) (ids []string, all bool) {
	for _, op := range ops {
		kind := strings.ToLower(op.Op)
		if op.Path == "" {
			obj, _ := op.Value.(map[string]any)
			for k, v := range obj {
				p, err := ParsePath(k)
				if err != nil || !isMembers(p.Attr) {
					continue
				}
				got, ok := memberValues(v)
				if kind != "add" || !ok || p.Filter != nil || p.Attr.Sub != "" {
					return nil, true
				}
				ids = append(ids, got...)
			}
			continue
		}
		p, err := ParsePath(op.Path)
		if err != nil || !isMembers(p.Attr) {
			continue // not members (or refused by ApplyPatch)
		}
		switch {
		case p.Attr.Sub != "" || p.Sub != "":
			return nil, true
		case p.Filter == nil && kind == "add":
			got, ok := memberValues(op.Value)
			if !ok {
				return nil, true
			}
			ids = append(ids, got...)
		case p.Filter == nil && kind == "remove":
			list, isList := op.Value.([]any)
			got, ok := memberValues(list)
			if !isList || len(list) == 0 || !ok {
				return nil, true // remove them all
			}
			ids = append(ids, got...)
		case p.Filter != nil && kind == "remove":
			id, ok := valueEq(p.Filter)
			if !ok {
				return nil, true
			}
			ids = append(ids, id)
		default:
			return nil, true
		}
	}
	return ids, false
}

// valueEq returns X for the member filter `value eq "X"`.
func valueEq(f Filter) (string, bool) {
	c, ok := f.(Compare)
	s, isString := c.Value.(string)
	if !ok || !isString || c.Op != OpEq || c.Path.URI != "" || c.Path.Sub != "" || !strings.EqualFold(c.Path.Name, "value") {
		return "", false
	}
	return s, true
}

// memberValueEq returns X for the group filter `members[value eq "X"]` or
// `members.value eq "X"`.
func memberValueEq(f Filter) (string, bool) {
	switch f := f.(type) {
	case ValuePath:
		if isMembers(f.Path) && f.Path.Sub == "" {
			return valueEq(f.Filter)
		}
	case Compare:
		if isMembers(AttrPath{URI: f.Path.URI, Name: f.Path.Name}) && strings.EqualFold(f.Path.Sub, "value") {
			return valueEq(Compare{Path: AttrPath{Name: "value"}, Op: f.Op, Value: f.Value})
		}
	}
	return "", false
}

// usesMembers reports whether a filter looks at a group's members.
func usesMembers(f Filter) bool {
	switch f := f.(type) {
	case Compare:
		return isMembers(AttrPath{URI: f.Path.URI, Name: f.Path.Name})
	case ValuePath:
		return isMembers(AttrPath{URI: f.Path.URI, Name: f.Path.Name})
	case And:
		return usesMembers(f.L) || usesMembers(f.R)
	case Or:
		return usesMembers(f.L) || usesMembers(f.R)
	case Not:
		return usesMembers(f.F)
	}
	return false
}

// wantsMembers reports whether a response to q shows a group's members:
// not when attributes leaves them out or excludedAttributes names them (as
// IdPs ask, to keep answers about large groups small).
func wantsMembers(q Query) bool {
	if len(q.Attributes) > 0 {
		for _, p := range q.Attributes {
			if isMembers(p) {
				return true
			}
		}
		return false
	}
	for _, p := range q.ExcludedAttributes {
		if isMembers(p) && p.Sub == "" {
			return false
		}
	}
	return true
}

// checkMembers refuses a request that lists more members than MaxMembers:
// a POST's or PUT's members, or a PATCH's member values together.
func (h *Handler) checkMembers(r Resource, ops []PatchOp) error {
	n := 0
	if list, ok := r[keyOf(r, "members")].([]any); ok {
		n += len(list)
	}
	count := func(v any) {
		if list, ok := v.([]any); ok {
			n += len(list)
		} else if v != nil {
			n++
		}
	}
	for _, op := range ops {
		if op.Path == "" {
			obj, _ := op.Value.(map[string]any)
			for k, v := range obj {
				if p, err := ParsePath(k); err == nil && isMembers(p.Attr) {
					count(v)
				}
			}
		} else if p, err := ParsePath(op.Path); err == nil && isMembers(p.Attr) {
			count(op.Value)
		}
	}
	if n > h.maxMembers() {
		return errorf(http.StatusRequestEntityTooLarge, "", "the request lists %d members, more than the limit of %d (--scim-max-members); send them in several PATCH requests", n, h.maxMembers())
	}
	return nil
}

// loadMembers sets every member of the group into cur, read at version
// (ErrConflict when the group changed since).
func (h *Handler) loadMembers(ctx context.Context, id string, cur Resource, version uint64) error {
	ms, err := h.Store.Members(ctx, id, version)
	if err != nil {
		return err
	}
	if len(ms) > 0 {
		cur["members"] = ms
	}
	return nil
}

// loadPatchMembers sets into cur the members a PATCH's operations concern:
// those they name that the group has, or all of them.
func (h *Handler) loadPatchMembers(ctx context.Context, id string, cur Resource, version uint64, ops []PatchOp) error {
	ids, all := patchMembers(ops)
	if all {
		return h.loadMembers(ctx, id, cur, version)
	}
	if len(ids) == 0 {
		return nil
	}
	got, err := h.Store.MembersIn(ctx, id, ids)
	if err != nil {
		return err
	}
	var list []any
	seen := map[string]bool{}
	for _, m := range ids {
		if v, ok := got[m]; ok && !seen[m] {
			seen[m] = true
			list = append(list, v)
		}
	}
	if len(list) > 0 {
		cur["members"] = list
	}
	return nil
}

// withMembers returns a listed group (r, with its meta.version) with its
// members, reading the group again if it changed in between.
func (h *Handler) withMembers(ctx context.Context, r Resource) (Resource, error) {
	id, _ := r["id"].(string)
	version := versionOf(r)
	for attempt := 1; ; attempt++ {
		ms, err := h.Store.Members(ctx, id, version)
		if err == nil {
			out := make(Resource, len(r)+1)
			for k, v := range r {
				out[k] = v
			}
			if len(ms) > 0 {
				out["members"] = ms
			}
			return out, nil
		}
		if !errors.Is(err, ErrConflict) || attempt >= MaxConflictRetries {
			return nil, err
		}
		g, v, err := h.Store.Get(ctx, Groups, id)
		if errors.Is(err, ErrNotFound) {
			return r, nil // removed since it was listed: as listed
		}
		if err != nil {
			return nil, err
		}
		r, version = withVersion(g, v), v
	}
}

// versionOf reads the version withVersion set into r's meta.
func versionOf(r Resource) uint64 {
	meta, _ := r["meta"].(map[string]any)
	s, _ := meta["version"].(string)
	v, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(s, `W/"`), `"`), 10, 64)
	return v
}

// splitMembers returns what a Commit of after over before writes: for a
// group, after without its members (nil if after is), and the members
// written (new or changed) and removed; for a user, after.
func splitMembers(kind Kind, before, after Resource) (head Resource, set []map[string]any, remove []string) {
	if kind != Groups {
		return after, nil, nil
	}
	if after != nil {
		head = make(Resource, len(after))
		for k, v := range after {
			if !strings.EqualFold(k, "members") {
				head[k] = v
			}
		}
	}
	had := map[string]any{}
	was, _ := before[keyOf(before, "members")].([]any)
	for _, m := range was {
		mm, _ := m.(map[string]any)
		if v, ok := mm["value"].(string); ok {
			had[v] = mm
		}
	}
	is, _ := after[keyOf(after, "members")].([]any)
	has := map[string]bool{}
	for _, m := range is {
		mm, _ := m.(map[string]any)
		v, ok := mm["value"].(string)
		if !ok || has[v] {
			continue
		}
		has[v] = true
		if old, ok := had[v]; !ok || !reflect.DeepEqual(old, mm) {
			set = append(set, mm)
		}
	}
	for _, m := range was {
		mm, _ := m.(map[string]any)
		if v, ok := mm["value"].(string); ok && !has[v] {
			remove = append(remove, v)
			has[v] = true // once
		}
	}
	return head, set, remove
}
