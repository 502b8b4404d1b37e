package scim

import (
	"fmt"
	"strings"
	"time"
)

// CoreSchemaPrefix starts the URNs of the core schemas, whose attributes
// live at the top of a resource; any other URN names an extension, whose
// attributes live under the URN's key (RFC 7643 §3.3).
const CoreSchemaPrefix = "urn:ietf:params:scim:schemas:core:"

// Resource is a SCIM resource as JSON decodes it: attribute names as the
// client or the server wrote them (matched case-insensitively), values of
// type nil, bool, float64, string, []any and map[string]any.
type Resource = map[string]any

// CaseExact reports whether an attribute's string values compare exactly
// (RFC 7643 §2.2); every other string compares without regard to case. The
// path's Sub is set when the attribute is a sub-attribute.
type CaseExact func(AttrPath) bool

// DefaultCaseExact is RFC 7643's choice for the core User and Group
// attributes: id, externalId and meta.version compare exactly, every other
// string does not.
func DefaultCaseExact(p AttrPath) bool {
	if p.Sub == "" {
		return strings.EqualFold(p.Name, "id") || strings.EqualFold(p.Name, "externalId")
	}
	return strings.EqualFold(p.Name, "meta") && strings.EqualFold(p.Sub, "version")
}

// Match reports whether r satisfies f. An operator that does not apply to
// the attribute's values (gt on a boolean, co on a number) is an error of
// kind ErrInvalidFilter, as RFC 7644 §3.4.2.2 asks.
func Match(f Filter, r Resource, exact CaseExact) (bool, error) {
	if exact == nil {
		exact = DefaultCaseExact
	}
	return match(f, r, exact, "")
}

// match evaluates f on r; parent is the attribute a value filter runs
// inside ("" at the top).
func match(f Filter, r Resource, exact CaseExact, parent string) (bool, error) {
	switch f := f.(type) {
	case And:
		ok, err := match(f.L, r, exact, parent)
		if err != nil || !ok {
			return false, err
		}
		return match(f.R, r, exact, parent)
	case Or:
		ok, err := match(f.L, r, exact, parent)
		if err != nil || ok {
			return ok, err
		}
		return match(f.R, r, exact, parent)
	case Not:
		ok, err := match(f.F, r, exact, parent)
		return !ok, err
	case ValuePath:
		for _, v := range values(r, f.Path) {
			m, ok := v.(map[string]any)
			if !ok {
				continue
			}
			hit, err := match(f.Filter, m, exact, f.Path.Name)
			if err != nil || hit {
				return hit, err
			}
		}
		return false, nil
	case Compare:
		path := f.Path
		if parent != "" { // a sub-attribute of the value path's attribute
			path = AttrPath{Name: parent, Sub: f.Path.Name}
		}
		vals := values(r, f.Path)
		if f.Op == OpPr {
			for _, v := range vals {
				if present(v) {
					return true, nil
				}
			}
			return false, nil
		}
		if f.Op == OpNe {
			eq, err := match(Compare{Path: f.Path, Op: OpEq, Value: f.Value}, r, exact, parent)
			return !eq, err
		}
		if path.Sub == "" { // a complex attribute compares by its "value" (RFC 7644 §3.4.2.2)
			for i, v := range vals {
				if m, ok := v.(map[string]any); ok {
					vals[i] = lookup(m, "value")
				}
			}
		}
		return anyCompare(vals, f.Op, f.Value, exact(path), path)
	}
	return false, fmt.Errorf("%w: unknown filter node %T", ErrInvalidFilter, f)
}

// values returns the values of p in r: the attribute's value, or each
// element of a multi-valued one, or, with a sub-attribute, the
// sub-attribute of each.
func values(r Resource, p AttrPath) []any {
	root := r
	if p.URI != "" && !strings.HasPrefix(strings.ToLower(p.URI), CoreSchemaPrefix) {
		ext, ok := lookup(r, p.URI).(map[string]any)
		if !ok {
			return nil
		}
		root = ext
	}
	v := lookup(root, p.Name)
	var out []any
	each := func(v any) {
		if p.Sub == "" {
			out = append(out, v)
			return
		}
		if m, ok := v.(map[string]any); ok {
			if s, ok := m[p.Sub]; ok {
				out = append(out, s)
			} else if s := lookup(m, p.Sub); s != nil {
				out = append(out, s)
			}
		}
	}
	if list, ok := v.([]any); ok {
		for _, e := range list {
			each(e)
		}
	} else if v != nil {
		each(v)
	}
	return out
}

// lookup finds key in m, exactly or else without regard to case.
func lookup(m map[string]any, key string) any {
	if v, ok := m[key]; ok {
		return v
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

// present: RFC 7644 "pr": a value that is not null and not empty.
func present(v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case string:
		return v != ""
	case []any:
		return len(v) > 0
	case map[string]any:
		return len(v) > 0
	}
	return true
}

func anyCompare(vals []any, op Op, want any, caseExact bool, path AttrPath) (bool, error) {
	for _, v := range vals {
		ok, err := compare(v, op, want, caseExact, path)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

func compare(have any, op Op, want any, caseExact bool, path AttrPath) (bool, error) {
	bad := func() (bool, error) {
		return false, fmt.Errorf("%w: %s %s %v does not apply to the value %v", ErrInvalidFilter, path, op, want, have)
	}
	switch w := want.(type) {
	case nil:
		if op != OpEq {
			return bad()
		}
		return have == nil, nil
	case bool:
		h, ok := have.(bool)
		if op != OpEq {
			if ok {
				return bad()
			}
			return false, nil
		}
		return ok && h == w, nil
	case float64:
		h, ok := have.(float64)
		if !ok {
			return false, nil
		}
		switch op {
		case OpEq:
			return h == w, nil
		case OpGt:
			return h > w, nil
		case OpGe:
			return h >= w, nil
		case OpLt:
			return h < w, nil
		case OpLe:
			return h <= w, nil
		}
		return bad()
	case string:
		h, ok := have.(string)
		if !ok {
			if _, isBool := have.(bool); isBool && op != OpEq {
				return bad()
			}
			return false, nil
		}
		if op >= OpGt && op <= OpLe {
			if ht, err := time.Parse(time.RFC3339Nano, h); err == nil {
				if wt, err := time.Parse(time.RFC3339Nano, w); err == nil {
					return order(ht.Compare(wt), op), nil
				}
			}
		}
		if !caseExact {
			h, w = strings.ToLower(h), strings.ToLower(w)
		}
		switch op {
		case OpEq:
			return h == w, nil
		case OpCo:
			return strings.Contains(h, w), nil
		case OpSw:
			return strings.HasPrefix(h, w), nil
		case OpEw:
			return strings.HasSuffix(h, w), nil
		}
		return order(strings.Compare(h, w), op), nil
	}
	return bad()
}

func order(c int, op Op) bool {
	switch op {
	case OpGt:
		return c > 0
	case OpGe:
		return c >= 0
	case OpLt:
		return c < 0
	case OpLe:
		return c <= 0
	}
	return false
}
