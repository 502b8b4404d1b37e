package scim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
)

// Error is a SCIM error response (RFC 7644 §3.12): the HTTP status, the
// scimType where one applies (a 400's; also a 409's, and tooMany on the 413
// of a PATCH with too many operations) and a detail naming what is wrong.
type Error struct {
	Status   int
	ScimType string
	Detail   string
	// RetryAfter, when positive, is the Retry-After header's seconds (a
	// 503 of an overloaded server).
	RetryAfter int
}

func (e *Error) Error() string {
	if e.ScimType != "" {
		return fmt.Sprintf("%d %s: %s", e.Status, e.ScimType, e.Detail)
	}
	return fmt.Sprintf("%d: %s", e.Status, e.Detail)
}

func errorf(status int, scimType, format string, args ...any) *Error {
	return &Error{Status: status, ScimType: scimType, Detail: fmt.Sprintf(format, args...)}
}

// AsError turns a parse error of this package into the SCIM error a client
// gets: invalidFilter and invalidPath are 400s of their type.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var se *SyntaxError
	if errors.As(err, &se) {
		return errorf(http.StatusBadRequest, se.Kind.Error(), "%s", err.Error())
	}
	if errors.Is(err, ErrInvalidFilter) {
		return errorf(http.StatusBadRequest, "invalidFilter", "%s", err.Error())
	}
	return errorf(http.StatusInternalServerError, "", "%s", err.Error())
}

// PatchOp is one operation of a PATCH request (RFC 7644 §3.5.2).
type PatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path,omitempty"`
	Value any    `json:"value,omitempty"`
}

// PatchRequest is a PATCH request body.
type PatchRequest struct {
	Schemas    []string  `json:"schemas"`
	Operations []PatchOp `json:"Operations"`
}

// MaxPatchOperations bounds the operations of one PATCH request.
const MaxPatchOperations = 1000

// ApplyPatch applies ops, in order, to a copy of r, a resource of schema core
// with the given extensions, and returns the copy. All or nothing: on any
// error r is returned unchanged with the SCIM error. It takes what real
// identity providers send: op names in any case ("Replace"), booleans as
// "True"/"False" strings, attribute paths as the keys of a path-less value
// ({"name.givenName": "x"}), and members removed by a value list.
func ApplyPatch(r Resource, core string, extensions []string, ops []PatchOp) (Resource, error) {
	if len(ops) == 0 {
		return r, errorf(http.StatusBadRequest, "invalidValue", "a PATCH request needs at least one operation")
	}
	if len(ops) > MaxPatchOperations {
		return r, errorf(http.StatusRequestEntityTooLarge, "tooMany", "%d operations, more than the limit of %d", len(ops), MaxPatchOperations)
	}
	out, err := deepCopy(r)
	if err != nil {
		return r, err
	}
	p := patcher{core: core, extensions: extensions}
	for i, op := range ops {
		if err := p.apply(out, op); err != nil {
			e := AsError(err)
			e.Detail = fmt.Sprintf("Operations[%d] (%s %s): %s", i, op.Op, op.Path, e.Detail)
			return r, e
		}
	}
	return out, nil
}

func deepCopy(r Resource) (Resource, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "invalidValue", "resource does not encode: %v", err)
	}
	var out Resource
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = Resource{}
	}
	return out, nil
}

type patcher struct {
	core       string
	extensions []string
}

func (p patcher) apply(r Resource, op PatchOp) error {
	kind := strings.ToLower(op.Op)
	switch kind {
	case "add", "replace", "remove":
	default:
		return errorf(http.StatusBadRequest, "invalidSyntax", "op %q is not add, remove or replace", op.Op)
	}
	if op.Path == "" {
		if kind == "remove" {
			return errorf(http.StatusBadRequest, "noTarget", "remove needs a path")
		}
		obj, ok := op.Value.(map[string]any)
		if !ok {
			return errorf(http.StatusBadRequest, "invalidValue", "%s without a path needs an object of attributes as its value", kind)
		}
		for k, v := range obj {
			if strings.EqualFold(k, "schemas") {
				continue
			}
			if ext := p.extension(k); ext != "" {
				m, ok := v.(map[string]any)
				if !ok {
					return errorf(http.StatusBadRequest, "invalidValue", "%s: an extension's value is an object", k)
				}
				for ek, ev := range m {
					path, err := ParsePath(ext + ":" + ek)
					if err != nil {
						return err
					}
					if err := p.at(r, kind, path, ev); err != nil {
						return err
					}
				}
				continue
			}
			if a, _, ok := Resolve(p.core, p.extensions, AttrPath{Name: k}); ok && a.Mutability == ReadOnly {
				continue // the server's (id, meta, groups): ignored, as on PUT (Okta repeats the id)
			}
			path, err := ParsePath(k)
			if err != nil {
				return err
			}
			if err := p.at(r, kind, path, v); err != nil {
				return err
			}
		}
		return nil
	}
	path, err := ParsePath(op.Path)
	if err != nil {
		return err
	}
	return p.at(r, kind, path, op.Value)
}

// extension returns the extension URN k names, or "".
func (p patcher) extension(k string) string {
	for _, e := range p.extensions {
		if strings.EqualFold(k, e) {
			return e
		}
	}
	return ""
}

// container returns the map holding path's attribute (the resource, or an
// extension's object, created when create is set), and the key it uses: the
// key already there in any case, else the schema's name for it.
func (p patcher) container(r Resource, path Path, name string, create bool) (map[string]any, string) {
	m := r
	if path.Attr.URI != "" && !strings.EqualFold(path.Attr.URI, p.core) {
		key := keyOf(r, path.Attr.URI)
		ext, ok := r[key].(map[string]any)
		if !ok {
			if !create {
				return nil, ""
			}
			ext = map[string]any{}
			r[key] = ext
			addSchema(r, path.Attr.URI)
		}
		m = ext
	}
	return m, keyOf(m, name)
}

// keyOf returns the key of m that equals name without regard to case, or
// name itself.
func keyOf(m map[string]any, name string) string {
	if _, ok := m[name]; ok {
		return name
	}
	for k := range m {
		if strings.EqualFold(k, name) {
			return k
		}
	}
	return name
}

func addSchema(r Resource, urn string) {
	list, _ := r["schemas"].([]any)
	for _, s := range list {
		if s == urn {
			return
		}
	}
	r["schemas"] = append(list, urn)
}

func (p patcher) at(r Resource, kind string, path Path, value any) error {
	a, sub, ok := Resolve(p.core, p.extensions, path.Attr)
	if !ok {
		return errorf(http.StatusBadRequest, "invalidPath", "%s is not an attribute of %s", path.Attr, p.core)
	}
	if path.Sub != "" {
		if sub != nil || !a.MultiValued {
			return errorf(http.StatusBadRequest, "invalidPath", "%s: a sub-attribute after a value filter needs a multi-valued attribute", path)
		}
		if sub = find(a.Sub, path.Sub); sub == nil {
			return errorf(http.StatusBadRequest, "invalidPath", "%s has no sub-attribute %q", a.Name, path.Sub)
		}
	}
	if a.Mutability == ReadOnly || (sub != nil && sub.Mutability == ReadOnly) {
		return errorf(http.StatusBadRequest, "mutability", "%s is read-only", path.Attr)
	}
	m, key := p.container(r, path, a.Name, kind != "remove")
	if m == nil { // removing from an extension the resource does not have
		return errorf(http.StatusBadRequest, "noTarget", "%s has no value", path.Attr)
	}
	if path.Filter != nil {
		return p.selected(m, key, kind, path, a, sub, value)
	}
	if sub != nil { // name.givenName: a sub-attribute of a single complex attribute
		if a.MultiValued {
			return errorf(http.StatusBadRequest, "invalidPath", "%s: select the values of %s with a filter, e.g. %s[type eq \"work\"].%s", path.Attr, a.Name, a.Name, sub.Name)
		}
		parent, _ := m[key].(map[string]any)
		if kind == "remove" {
			if parent == nil {
				return nil
			}
			delete(parent, keyOf(parent, sub.Name))
			return nil
		}
		v, err := coerce(*sub, value, path.Attr.String())
		if err != nil {
			return err
		}
		if parent == nil {
			parent = map[string]any{}
			m[key] = parent
		}
		parent[keyOf(parent, sub.Name)] = v
		return nil
	}
	switch kind {
	case "remove":
		if list, ok := value.([]any); ok && a.MultiValued && len(list) > 0 { // Entra: remove these members
			return removeListed(m, key, list, a.Name)
		}
		delete(m, key)
		return nil
	case "replace":
		v, err := coerceWhole(*a, value, path.Attr.String())
		if err != nil {
			return err
		}
		m[key] = v
		return nil
	}
	// add
	v, err := coerceWhole(*a, value, path.Attr.String())
	if err != nil {
		return err
	}
	switch {
	case a.MultiValued:
		have, _ := m[key].([]any)
		for _, nv := range v.([]any) {
			if !containsValue(have, nv, identifiedByValue(*a)) {
				have = append(have, nv)
			}
		}
		m[key] = have
	case a.Type == Complex:
		have, _ := m[key].(map[string]any)
		if have == nil {
			have = map[string]any{}
		}
		for k, sv := range v.(map[string]any) {
			have[keyOf(have, k)] = sv
		}
		m[key] = have
	default:
		m[key] = v
	}
	return nil
}

// selected applies an operation to the values of a multi-valued attribute
// that a value filter selects.
func (p patcher) selected(m map[string]any, key, kind string, path Path, a, sub *Attribute, value any) error {
	if !a.MultiValued || a.Type != Complex {
		return errorf(http.StatusBadRequest, "invalidPath", "%s: a value filter needs a multi-valued complex attribute", path.Attr)
	}
	list, _ := m[key].([]any)
	var keep []any
	hits := 0
	for _, e := range list {
		em, ok := e.(map[string]any)
		if !ok {
			keep = append(keep, e)
			continue
		}
		hit, err := match(path.Filter, em, DefaultCaseExact, a.Name)
		if err != nil {
			return err
		}
		if !hit {
			keep = append(keep, e)
			continue
		}
		hits++
		switch {
		case kind == "remove" && path.Sub == "":
			continue // drop the value
		case kind == "remove":
			delete(em, keyOf(em, path.Sub))
		case path.Sub != "":
			v, err := coerce(*sub, value, path.Attr.String()+"."+path.Sub)
			if err != nil {
				return err
			}
			em[keyOf(em, path.Sub)] = v
		case kind == "replace":
			v, err := coerce(Attribute{Name: a.Name, Type: Complex, Sub: a.Sub}, value, path.Attr.String())
			if err != nil {
				return err
			}
			em = v.(map[string]any)
		default: // add: merge into the value
			v, err := coerce(Attribute{Name: a.Name, Type: Complex, Sub: a.Sub}, value, path.Attr.String())
			if err != nil {
				return err
			}
			for k, sv := range v.(map[string]any) {
				em[keyOf(em, k)] = sv
			}
		}
		keep = append(keep, em)
	}
	if hits == 0 {
		return errorf(http.StatusBadRequest, "noTarget", "no value of %s matches the filter", a.Name)
	}
	if len(keep) == 0 {
		delete(m, key)
	} else {
		m[key] = keep
	}
	return nil
}

// removeListed removes from a multi-valued attribute the values listed (by
// their "value" sub-attribute, or whole).
func removeListed(m map[string]any, key string, listed []any, name string) error {
	have, _ := m[key].([]any)
	var keep []any
	removed := 0
	for _, h := range have {
		drop := false
		for _, l := range listed {
			if sameValue(h, l) {
				drop = true
				break
			}
		}
		if drop {
			removed++
		} else {
			keep = append(keep, h)
		}
	}
	if removed < len(listed) {
		return errorf(http.StatusBadRequest, "noTarget", "some values to remove are not in %s", name)
	}
	if len(keep) == 0 {
		delete(m, key)
	} else {
		m[key] = keep
	}
	return nil
}

func sameValue(a, b any) bool {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		if bv := lookup(bm, "value"); bv != nil {
			av := lookup(am, "value")
			if as, ok := av.(string); ok { // the common case, without reflection
				bs, ok := bv.(string)
				return ok && as == bs
			}
			return reflect.DeepEqual(av, bv)
		}
	}
	return reflect.DeepEqual(a, b)
}

// containsValue reports whether list holds v: the same "value"
// sub-attribute if byValue, else the same whole value.
func containsValue(list []any, v any, byValue bool) bool {
	for _, e := range list {
		if byValue && sameValue(e, v) || !byValue && reflect.DeepEqual(e, v) {
			return true
		}
	}
	return false
}

// identifiedByValue reports whether a multi-valued attribute's values are
// identified by their immutable "value" (a group's members: a member added
// again is the same member, whatever its display or $ref).
func identifiedByValue(a Attribute) bool {
	v := find(a.Sub, "value")
	return a.MultiValued && v != nil && v.Mutability == Immutable
}

// coerceWhole converts a value for a whole attribute: a list for a
// multi-valued one (a single value is wrapped), else one value.
func coerceWhole(a Attribute, v any, name string) (any, error) {
	if !a.MultiValued {
		return coerce(a, v, name)
	}
	list, ok := v.([]any)
	if !ok {
		list = []any{v}
	}
	out := make([]any, 0, len(list))
	for _, e := range list {
		c, err := coerce(Attribute{Name: a.Name, Type: a.Type, Sub: a.Sub}, e, name)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// coerce checks v against a's type, taking "True"/"False" for booleans.
func coerce(a Attribute, v any, name string) (any, error) {
	bad := func() (any, error) {
		return nil, errorf(http.StatusBadRequest, "invalidValue", "%s: %v is not a %s", name, v, a.Type)
	}
	if v == nil {
		return nil, nil
	}
	switch a.Type {
	case Boolean:
		switch b := v.(type) {
		case bool:
			return b, nil
		case string:
			switch strings.ToLower(b) {
			case "true":
				return true, nil
			case "false":
				return false, nil
			}
		}
		return bad()
	case Integer:
		if f, ok := v.(float64); ok && f == float64(int64(f)) {
			return f, nil
		}
		return bad()
	case String, Reference, DateTime, Binary:
		if _, ok := v.(string); ok {
			return v, nil
		}
		return bad()
	case Complex:
		m, ok := v.(map[string]any)
		if s, isString := v.(string); isString && !a.MultiValued && find(a.Sub, "value") != nil {
			// Entra ID sends the manager as its bare id: its "value".
			m, ok = map[string]any{"value": s}, true
		}
		if !ok {
			return bad()
		}
		out := make(map[string]any, len(m))
		for k, sv := range m {
			sa := find(a.Sub, k)
			if sa == nil {
				return nil, errorf(http.StatusBadRequest, "invalidValue", "%s has no sub-attribute %q", name, k)
			}
			c, err := coerce(*sa, sv, name+"."+sa.Name)
			if err != nil {
				return nil, err
			}
			out[sa.Name] = c
		}
		return out, nil
	}
	return bad()
}
