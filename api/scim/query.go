package scim

import (
	"cmp"
	"net/http"
	"slices"
	"strings"
)

// Query is a list request's parameters (RFC 7644 §3.4.2), from the query
// string or a POST .search body.
type Query struct {
	Filter             Filter
	SortBy             *AttrPath
	Descending         bool
	StartIndex, Count  int // 1-based; Count < 0 means "the default"
	Attributes         []AttrPath
	ExcludedAttributes []AttrPath
}

// DefaultCount and MaxCount bound a page (ServiceProviderConfig's
// filter.maxResults).
const (
	DefaultCount = 100
	MaxCount     = 1000
)

// ParseQuery reads a list request's parameters; a bad parameter is a 400
// naming it.
func ParseQuery(get func(string) string) (Query, error) {
	q := Query{StartIndex: 1, Count: -1}
	if s := get("filter"); s != "" {
		f, err := ParseFilter(s)
		if err != nil {
			return q, err
		}
		q.Filter = f
	}
	if s := get("sortBy"); s != "" {
		p, err := ParsePath(s)
		if err != nil || p.Filter != nil {
			return q, errorf(http.StatusBadRequest, "invalidValue", "sortBy %q is not an attribute path", s)
		}
		q.SortBy = &p.Attr
	}
	switch o := get("sortOrder"); o {
	case "", "ascending":
	case "descending":
		q.Descending = true
	default:
		return q, errorf(http.StatusBadRequest, "invalidValue", "sortOrder %q is not ascending or descending", o)
	}
	var err error
	if q.StartIndex, err = intParam(get, "startIndex", 1); err != nil {
		return q, err
	}
	if q.StartIndex < 1 { // RFC 7644 §3.4.2.4: less than 1 is 1
		q.StartIndex = 1
	}
	if q.Count, err = intParam(get, "count", -1); err != nil {
		return q, err
	}
	for _, p := range []struct {
		name string
		into *[]AttrPath
	}{{"attributes", &q.Attributes}, {"excludedAttributes", &q.ExcludedAttributes}} {
		for _, s := range splitList(get(p.name)) {
			path, err := ParsePath(s)
			if err != nil || path.Filter != nil {
				return q, errorf(http.StatusBadRequest, "invalidValue", "%s: %q is not an attribute path", p.name, s)
			}
			*p.into = append(*p.into, path.Attr)
		}
	}
	if len(q.Attributes) > 0 && len(q.ExcludedAttributes) > 0 {
		return q, errorf(http.StatusBadRequest, "invalidValue", "attributes and excludedAttributes cannot be given together")
	}
	return q, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func intParam(get func(string) string, name string, def int) (int, error) {
	s := get(name)
	if s == "" {
		return def, nil
	}
	n := 0
	neg := strings.HasPrefix(s, "-")
	digits := strings.TrimPrefix(s, "-")
	if digits == "" || len(digits) > 9 {
		return 0, errorf(http.StatusBadRequest, "invalidValue", "%s %q is not an integer", name, s)
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, errorf(http.StatusBadRequest, "invalidValue", "%s %q is not an integer", name, s)
		}
		n = n*10 + int(c-'0')
	}
	if neg {
		n = -n
	}
	return n, nil
}

// Run filters, sorts and pages resources as q asks and returns the page and
// the total number of matches. Resources missing the sort attribute sort
// last in either order.
func (q Query) Run(all []Resource, exact CaseExact) (page []Resource, total int, err error) {
	var hits []Resource
	for _, r := range all {
		if q.Filter != nil {
			ok, err := Match(q.Filter, r, exact)
			if err != nil {
				return nil, 0, err
			}
			if !ok {
				continue
			}
		}
		hits = append(hits, r)
	}
	if q.SortBy != nil {
		key := func(r Resource) (string, bool) {
			vals := values(r, *q.SortBy)
			for _, v := range vals {
				if m, ok := v.(map[string]any); ok {
					v = lookup(m, "value")
				}
				if s, ok := v.(string); ok {
					return strings.ToLower(s), true
				}
			}
			return "", false
		}
		slices.SortStableFunc(hits, func(a, b Resource) int {
			ka, oka := key(a)
			kb, okb := key(b)
			switch {
			case !oka && !okb:
				return 0
			case !oka:
				return 1
			case !okb:
				return -1
			}
			if q.Descending {
				return cmp.Compare(kb, ka)
			}
			return cmp.Compare(ka, kb)
		})
	}
	total = len(hits)
	count := q.Count
	if count < 0 {
		count = DefaultCount
	}
	count = min(count, MaxCount)
	start := min(q.StartIndex-1, len(hits))
	end := min(start+count, len(hits))
	return hits[start:end], total, nil
}

// always are the attributes returned whatever attributes asks (RFC 7643
// §7: "returned": "always").
var always = []string{"id", "schemas"}

// Project keeps what attributes asks for (plus those always returned), or
// drops what excludedAttributes names, from a copy of r.
func (q Query) Project(r Resource) Resource {
	if len(q.Attributes) == 0 && len(q.ExcludedAttributes) == 0 {
		return r
	}
	out := Resource{}
	if len(q.Attributes) > 0 {
		for _, k := range always {
			if v, ok := r[keyOf(r, k)]; ok {
				out[k] = v
			}
		}
		for _, p := range q.Attributes {
			copyPath(out, r, p)
		}
		return out
	}
	for k, v := range r {
		out[k] = v
	}
	for _, p := range q.ExcludedAttributes {
		if slices.ContainsFunc(always, func(a string) bool { return strings.EqualFold(a, p.Name) && p.URI == "" }) {
			continue
		}
		dropPath(out, p)
	}
	return out
}

// holder returns the map of r holding p's attribute: r, or p's extension.
func holder(r Resource, p AttrPath) (map[string]any, string) {
	if p.URI != "" && !strings.HasPrefix(strings.ToLower(p.URI), CoreSchemaPrefix) {
		m, _ := lookup(r, p.URI).(map[string]any)
		return m, keyOf(r, p.URI)
	}
	return r, ""
}

func copyPath(dst, src Resource, p AttrPath) {
	from, extKey := holder(src, p)
	if from == nil {
		return
	}
	to := dst
	if extKey != "" {
		m, _ := dst[extKey].(map[string]any)
		if m == nil {
			m = map[string]any{}
			dst[extKey] = m
		}
		to = m
	}
	k := keyOf(from, p.Name)
	v, ok := from[k]
	if !ok {
		return
	}
	if p.Sub == "" {
		to[k] = v
		return
	}
	switch v := v.(type) {
	case map[string]any:
		sk := keyOf(v, p.Sub)
		if sv, ok := v[sk]; ok {
			m, _ := to[k].(map[string]any)
			if m == nil {
				m = map[string]any{}
			}
			m[sk] = sv
			to[k] = m
		}
	case []any:
		var list []any
		for _, e := range v {
			if em, ok := e.(map[string]any); ok {
				sk := keyOf(em, p.Sub)
				if sv, ok := em[sk]; ok {
					list = append(list, map[string]any{sk: sv})
				}
			}
		}
		to[k] = list
	}
}

func dropPath(r Resource, p AttrPath) {
	m, extKey := holder(r, p)
	if m == nil {
		return
	}
	if extKey != "" { // copy the extension before changing it
		c := make(map[string]any, len(m))
		for k, v := range m {
			c[k] = v
		}
		m = c
		r[extKey] = m
	}
	k := keyOf(m, p.Name)
	if p.Sub == "" {
		delete(m, k)
		return
	}
	switch v := m[k].(type) {
	case map[string]any:
		c := make(map[string]any, len(v))
		for sk, sv := range v {
			if !strings.EqualFold(sk, p.Sub) {
				c[sk] = sv
			}
		}
		m[k] = c
	case []any:
		list := make([]any, 0, len(v))
		for _, e := range v {
			em, ok := e.(map[string]any)
			if !ok {
				list = append(list, e)
				continue
			}
			c := make(map[string]any, len(em))
			for sk, sv := range em {
				if !strings.EqualFold(sk, p.Sub) {
					c[sk] = sv
				}
			}
			list = append(list, c)
		}
		m[k] = list
	}
}
