package scim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ambit-authz/ambit/tuple"
)

// Kind is a resource endpoint: Users or Groups.
type Kind string

// The resource kinds ambit serves.
const (
	Users  Kind = "Users"
	Groups Kind = "Groups"
)

// Errors a Store returns.
var (
	ErrNotFound   = errors.New("scim: no such resource")
	ErrConflict   = errors.New("scim: the resource changed (version mismatch)")
	ErrUniqueness = errors.New("scim: another resource holds the unique value")
)

// Commit is one atomic change: a resource written or removed, the
// relationships it implies touched and deleted, applied only if the
// resource's stored version is still Expect (0: it must not exist) and no
// other resource of the kind holds Unique. A group's Resource holds no
// members: those that change are SetMembers (written whole, each with its
// "value") and RemoveMembers (their ids); a group's removal lists every
// member it still has in RemoveMembers.
type Commit struct {
	Kind          Kind
	ID            string
	Expect        uint64
	Resource      Resource // nil removes the resource
	Unique        string   // "" for none; lower-cased by the caller (the store compares it exactly)
	SetMembers    []map[string]any
	RemoveMembers []string
	Touch         []tuple.Relationship
	Delete        []tuple.Relationship
}

// Versioned is a stored resource and its version.
type Versioned struct {
	Resource Resource
	Version  uint64
}

// Store is what the SCIM endpoints need of ambit's replicated store. A
// Commit goes through raft as one command, so the resource, its members and
// its relationships apply together or not at all. A group is stored without
// its members (Get and List return none); they are read apart, all or a
// few, so that a change of a few members of a large group reads and writes
// those members only.
type Store interface {
	Get(ctx context.Context, kind Kind, id string) (Resource, uint64, error)
	// List returns every resource of the kind, in id order.
	List(ctx context.Context, kind Kind) ([]Versioned, error)
	// Commit returns the resource's new version (0 after a removal).
	Commit(ctx context.Context, c Commit) (uint64, error)
	// Unique returns the id of the resource holding a unique value (a
	// lower-cased userName), if any: Okta's lookup before every create
	// reads one record instead of listing every user.
	Unique(ctx context.Context, kind Kind, value string) (id string, ok bool, err error)
	// Find returns the ids of the resources whose attr equals value by an
	// index (externalId; a group's displayName without regard to case); ok
	// is false when attr has no index or value is not indexed (longer than
	// MaxIndexedValue): the caller must scan.
	Find(ctx context.Context, kind Kind, attr, value string) (ids []string, ok bool, err error)
	// Members returns a group's members in id order as they were at the
	// group's version (ErrConflict if it is no longer there).
	Members(ctx context.Context, group string, version uint64) ([]any, error)
	// MembersIn returns those of ids that are members of group, by id.
	MembersIn(ctx context.Context, group string, ids []string) (map[string]map[string]any, error)
	// WithMember returns those of groups that have member.
	WithMember(ctx context.Context, groups []string, member string) ([]string, error)
	// Exist returns those of ids that are resources of the kind.
	Exist(ctx context.Context, kind Kind, ids []string) (map[string]bool, error)
}

// DefaultMaxBody bounds a request body when Handler.MaxBody is zero.
const DefaultMaxBody = 1 << 20

// Handler serves SCIM 2.0 under a prefix (e.g. /scim/v2). Authentication
// happens before it.
type Handler struct {
	Store   Store
	Mapping Mapping
	// Prefix is the path the handler is mounted at, for meta.location.
	Prefix string
	// Now stamps meta.created and meta.lastModified.
	Now func() time.Time
	// Log records unexpected errors (nil: not logged).
	Log *slog.Logger
	// MaxBody bounds a request body in bytes (DefaultMaxBody if zero): a
	// larger one is 413.
	MaxBody int64
	// MaxMembers bounds the members one request lists: a POST's or PUT's
	// members, the member values of a PATCH's operations together
	// (DefaultMaxMembers if zero). More is 413.
	MaxMembers int
	// MaxUpdates is the most relationship updates one write may carry
	// (the server's --max-updates-per-write; DefaultMaxUpdates if zero): a
	// group's DELETE removes its members in writes of at most this many.
	MaxUpdates int
	// MaxBulkOperations bounds the operations of one bulk request
	// (DefaultMaxBulkOperations if zero); the body's bound is MaxBody.
	MaxBulkOperations int
	// Admit, when set, admits a list request that no index answers (it
	// reads every resource of its kind) and returns the function that
	// releases its slot; its error (a 503 with RetryAfter) is the answer.
	Admit func(ctx context.Context) (release func(), err error)
}

// Defaults of the Handler's limits.
const (
	DefaultMaxMembers = 10000
	DefaultMaxUpdates = 1000
)

func (h *Handler) maxMembers() int {
	if h.MaxMembers > 0 {
		return h.MaxMembers
	}
	return DefaultMaxMembers
}

func (h *Handler) maxUpdates() int {
	if h.MaxUpdates > 0 {
		return h.MaxUpdates
	}
	return DefaultMaxUpdates
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now().UTC()
	}
	return time.Now().UTC()
}

// ServeHTTP routes a request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest := strings.Trim(strings.TrimPrefix(r.URL.Path, h.Prefix), "/")
	parts := strings.Split(rest, "/")
	var err error
	switch {
	case rest == "ServiceProviderConfig" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, serviceProviderConfig(h.maxBulk(), h.maxBody()))
	case parts[0] == "ResourceTypes" && r.Method == http.MethodGet:
		err = h.resourceTypes(w, parts[1:])
	case parts[0] == "Schemas" && r.Method == http.MethodGet:
		err = schemasEndpoint(w, parts[1:])
	case rest == "Bulk" && r.Method == http.MethodPost:
		err = h.bulk(w, r)
	case parts[0] == string(Users) || parts[0] == string(Groups):
		err = h.resources(w, r, Kind(parts[0]), parts[1:])
	default:
		err = errorf(http.StatusNotFound, "", "no SCIM endpoint %s %s", r.Method, r.URL.Path)
	}
	if err != nil {
		h.writeError(w, err)
	}
}

func (h *Handler) resources(w http.ResponseWriter, r *http.Request, kind Kind, rest []string) error {
	ctx := r.Context()
	switch {
	case len(rest) == 0 && r.Method == http.MethodGet:
		q, err := ParseQuery(r.URL.Query().Get)
		if err != nil {
			return err
		}
		return h.list(ctx, w, kind, q)
	case len(rest) == 1 && rest[0] == ".search" && r.Method == http.MethodPost:
		var body map[string]any
		if err := h.decodeBody(r, &body); err != nil {
			return err
		}
		q, err := ParseQuery(func(k string) string { return searchParam(body, k) })
		if err != nil {
			return err
		}
		return h.list(ctx, w, kind, q)
	case len(rest) == 0 && r.Method == http.MethodPost:
		var in Resource
		if err := h.decodeBody(r, &in); err != nil {
			return err
		}
		if kind == Groups {
			if err := h.checkMembers(in, nil); err != nil {
				return err
			}
		}
		return h.create(ctx, w, kind, in)
	case len(rest) != 1:
		return errorf(http.StatusNotFound, "", "no SCIM endpoint %s %s", r.Method, r.URL.Path)
	}
	id := rest[0]
	var put Resource
	var req PatchRequest
	switch r.Method {
	case http.MethodGet, http.MethodDelete:
	case http.MethodPut:
		if err := h.decodeBody(r, &put); err != nil {
			return err
		}
	case http.MethodPatch:
		if err := h.decodeBody(r, &req); err != nil {
			return err
		}
		if !containsFold(req.Schemas, PatchOpSchema) {
			return errorf(http.StatusBadRequest, "invalidSyntax", "a PATCH body's schemas must list %s", PatchOpSchema)
		}
	default:
		return errorf(http.StatusMethodNotAllowed, "", "%s is not allowed on %s", r.Method, r.URL.Path)
	}
	if kind == Groups {
		if err := h.checkMembers(put, req.Operations); err != nil {
			return err
		}
	}
	ifMatch := r.Header.Get("If-Match")
	for attempt := 1; ; attempt++ {
		cur, version, err := h.Store.Get(ctx, kind, id)
		if err != nil {
			return err
		}
		if r.Method == http.MethodGet {
			q, err := ParseQuery(r.URL.Query().Get)
			if err == nil {
				err = checkQuery(kind, q)
			}
			if err != nil {
				return err
			}
			if kind == Groups && wantsMembers(q) {
				err = h.loadMembers(ctx, id, cur, version)
				if errors.Is(err, ErrConflict) && attempt < MaxConflictRetries {
					continue // the members changed while they were read
				}
				if err != nil {
					return err
				}
			}
			w.Header().Set("ETag", etag(version))
			writeJSON(w, http.StatusOK, q.Project(withVersion(cur, version)))
			return nil
		}
		if ifMatch != "" && ifMatch != "*" && !etagMatches(ifMatch, version) {
			return errorf(http.StatusPreconditionFailed, "", "If-Match %s: the resource is at %s", ifMatch, etag(version))
		}
		switch r.Method {
		case http.MethodPut:
			if kind == Groups {
				err = h.loadMembers(ctx, id, cur, version)
			}
			if err == nil {
				err = h.replace(ctx, w, kind, id, cur, version, put, http.StatusOK)
			}
		case http.MethodPatch:
			status := http.StatusOK
			if kind == Groups {
				// A group's PATCH reads only the members its operations
				// name (all of them only for an operation that may concern
				// any member: patchMembers) and answers 204 without a body
				// (RFC 7644 §3.5.2 allows it; Entra ID and Okta expect it).
				status = http.StatusNoContent
				err = h.loadPatchMembers(ctx, id, cur, version, req.Operations)
			}
			if err == nil {
				core, exts := schemasOf(kind)
				next, perr := ApplyPatch(cur, core, exts, req.Operations)
				if perr != nil {
					return perr
				}
				err = h.replace(ctx, w, kind, id, cur, version, next, status)
			}
		case http.MethodDelete:
			if kind == Groups {
				err = h.loadMembers(ctx, id, cur, version)
			}
			if err == nil {
				err = h.remove(ctx, w, kind, id, cur, version)
			}
		}
		// Without If-Match the client asked for no particular version: a
		// concurrent change (an IdP sends several PATCHes to one group at
		// once) is read again and the change applied to it.
		if errors.Is(err, ErrConflict) && ifMatch == "" && attempt < MaxConflictRetries {
			continue
		}
		return err
	}
}

// MaxConflictRetries bounds how often a change without If-Match is applied
// again to a resource that changed while it was being made.
const MaxConflictRetries = 8

// checkQuery refuses a query naming an attribute the kind's schemas do not
// define: in the filter (invalidFilter), sortBy, attributes or
// excludedAttributes (invalidValue). Without it a typo would silently
// match nothing or return everything.
func checkQuery(kind Kind, q Query) error {
	core, exts := schemasOf(kind)
	known := func(p AttrPath) bool {
		if p.URI == "" && p.Sub == "" && strings.EqualFold(p.Name, "schemas") {
			return true
		}
		if extensionOf(exts, p.String()) != "" { // a whole extension
			return true
		}
		_, _, ok := Resolve(core, exts, p)
		return ok
	}
	var walk func(f Filter, parent *Attribute) error
	walk = func(f Filter, parent *Attribute) error {
		switch f := f.(type) {
		case Compare:
			if parent != nil {
				if f.Path.URI != "" || f.Path.Sub != "" || find(parent.Sub, f.Path.Name) == nil {
					return errorf(http.StatusBadRequest, "invalidFilter", "%s has no sub-attribute %s", parent.Name, f.Path)
				}
				return nil
			}
			if !known(f.Path) {
				return errorf(http.StatusBadRequest, "invalidFilter", "filter: %s is not an attribute of %s", f.Path, core)
			}
		case And:
			if err := walk(f.L, parent); err != nil {
				return err
			}
			return walk(f.R, parent)
		case Or:
			if err := walk(f.L, parent); err != nil {
				return err
			}
			return walk(f.R, parent)
		case Not:
			return walk(f.F, parent)
		case ValuePath:
			a, _, ok := Resolve(core, exts, AttrPath{URI: f.Path.URI, Name: f.Path.Name})
			if !ok || parent != nil {
				return errorf(http.StatusBadRequest, "invalidFilter", "filter: %s is not an attribute of %s", f.Path, core)
			}
			return walk(f.Filter, a)
		}
		return nil
	}
	if q.Filter != nil {
		if err := walk(q.Filter, nil); err != nil {
			return err
		}
	}
	if q.SortBy != nil && !known(*q.SortBy) {
		return errorf(http.StatusBadRequest, "invalidValue", "sortBy: %s is not an attribute of %s", q.SortBy, core)
	}
	for _, list := range [][]AttrPath{q.Attributes, q.ExcludedAttributes} {
		for _, p := range list {
			if !known(p) {
				return errorf(http.StatusBadRequest, "invalidValue", "%s is not an attribute of %s", p, core)
			}
		}
	}
	return nil
}

func schemasOf(kind Kind) (string, []string) {
	if kind == Users {
		return UserSchema, []string{EnterpriseUserSchema}
	}
	return GroupSchema, nil
}

func (h *Handler) list(ctx context.Context, w http.ResponseWriter, kind Kind, q Query) error {
	if err := checkQuery(kind, q); err != nil {
		return err
	}
	all, ok, err := h.indexed(ctx, kind, q.Filter)
	if err != nil {
		return err
	}
	filter := q.Filter
	if ok && kind == Groups && usesMembers(filter) {
		if all, filter, err = h.filterMembers(ctx, all, filter); err != nil {
			return err
		}
	}
	if !ok {
		// Every resource of the kind is read: admitted like the API's
		// other heavy calls, so a flood of them cannot exhaust the node.
		if h.Admit != nil {
			release, err := h.Admit(ctx)
			if err != nil {
				return err
			}
			defer release()
		}
		if all, filter, err = h.scan(ctx, kind, q.Filter); err != nil {
			return err
		}
	}
	run := q
	run.Filter = filter
	page, total, err := run.Run(all, nil)
	if err != nil {
		return err
	}
	out := make([]any, len(page))
	for i, r := range page {
		if kind == Groups && wantsMembers(q) && r["members"] == nil {
			if r, err = h.withMembers(ctx, r); err != nil {
				return err
			}
		}
		out[i] = q.Project(r)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"schemas": []string{ListResponseSchema}, "totalResults": total,
		"startIndex": q.StartIndex, "itemsPerPage": len(page), "Resources": out,
	})
	return nil
}

// indexed returns the resources a filter may match when an index answers
// it: `userName eq` (Okta's lookup before a create), `externalId eq`, a
// group's `displayName eq` (Entra ID's and Okta's lookups), `id eq`, or an
// `and` with one of these on either side. ok is false when no index does.
// The filter still runs over what it returns.
func (h *Handler) indexed(ctx context.Context, kind Kind, f Filter) (rs []Resource, ok bool, err error) {
	var ids []string
	switch f := f.(type) {
	case And:
		if rs, ok, err = h.indexed(ctx, kind, f.L); ok || err != nil {
			return rs, ok, err
		}
		return h.indexed(ctx, kind, f.R)
	case Compare:
		want, isString := f.Value.(string)
		core, _ := schemasOf(kind)
		if f.Op != OpEq || !isString || f.Path.Sub != "" || (f.Path.URI != "" && !strings.EqualFold(f.Path.URI, core)) {
			return nil, false, nil
		}
		switch {
		case strings.EqualFold(f.Path.Name, "id"):
			ids = []string{want}
		case kind == Users && strings.EqualFold(f.Path.Name, "userName"):
			id, found, err := h.Store.Unique(ctx, kind, strings.ToLower(want))
			if err != nil {
				return nil, false, err
			}
			if found {
				ids = []string{id}
			}
		default:
			if ids, ok, err = h.Store.Find(ctx, kind, f.Path.Name, want); !ok || err != nil {
				return nil, false, err
			}
		}
	default:
		return nil, false, nil
	}
	for _, id := range ids {
		r, v, err := h.Store.Get(ctx, kind, id)
		if errors.Is(err, ErrNotFound) { // removed since the index was read
			continue
		}
		if err != nil {
			return nil, false, err
		}
		rs = append(rs, withVersion(r, v))
	}
	return rs, true, nil
}

// scan returns every resource of the kind and the filter left to run over
// them. A group's members are read only when the filter looks at them:
// `members[value eq "..."]`, alone or in an `and` whose other side does not
// look at members, reads one member record per group and is answered here
// (filterMembers); any other filter on members reads every group's members.
func (h *Handler) scan(ctx context.Context, kind Kind, f Filter) ([]Resource, Filter, error) {
	all, err := h.Store.List(ctx, kind)
	if err != nil {
		return nil, nil, err
	}
	out := make([]Resource, len(all))
	for i, v := range all {
		out[i] = withVersion(v.Resource, v.Version)
	}
	if kind != Groups || !usesMembers(f) {
		return out, f, nil
	}
	return h.filterMembers(ctx, out, f)
}

// filterMembers returns those of groups a filter on members may match, and
// the filter left to run over them: for `members[value eq "ID"]`, alone or
// in an `and` whose other side does not look at members (Entra ID asks
// `id eq "G" and members[value eq "U"]`), the groups that have member ID,
// by one member record each, and the other side; for any other filter on
// members, the groups with all their members, and the filter.
func (h *Handler) filterMembers(ctx context.Context, groups []Resource, f Filter) ([]Resource, Filter, error) {
	member, rest, ok := splitMemberEq(f)
	if !ok {
		out := make([]Resource, len(groups))
		for i, r := range groups {
			var err error
			if out[i], err = h.withMembers(ctx, r); err != nil {
				return nil, nil, err
			}
		}
		return out, f, nil
	}
	ids := make([]string, len(groups))
	for i, r := range groups {
		ids[i], _ = r["id"].(string)
	}
	with, err := h.Store.WithMember(ctx, ids, member)
	if err != nil {
		return nil, nil, err
	}
	has := make(map[string]bool, len(with))
	for _, id := range with {
		has[id] = true
	}
	var hits []Resource
	for _, r := range groups {
		if id, _ := r["id"].(string); has[id] {
			hits = append(hits, r)
		}
	}
	return hits, rest, nil
}

// splitMemberEq splits `members[value eq "ID"]`, or an `and` of it and a
// filter that does not look at members, into ID and the rest (nil for
// none).
func splitMemberEq(f Filter) (member string, rest Filter, ok bool) {
	if m, ok := memberValueEq(f); ok {
		return m, nil, true
	}
	a, isAnd := f.(And)
	if !isAnd {
		return "", nil, false
	}
	if m, ok := memberValueEq(a.L); ok && !usesMembers(a.R) {
		return m, a.R, true
	}
	if m, ok := memberValueEq(a.R); ok && !usesMembers(a.L) {
		return m, a.L, true
	}
	return "", nil, false
}

func (h *Handler) create(ctx context.Context, w http.ResponseWriter, kind Kind, in Resource) error {
	id, err := newID()
	if err != nil {
		return err
	}
	res, unique, err := h.clean(kind, in, id, nil)
	if err != nil {
		return err
	}
	now := h.now().Format(time.RFC3339)
	res["meta"] = map[string]any{"resourceType": resourceType(kind), "created": now, "lastModified": now, "location": h.location(kind, id)}
	touch, del, err := h.relationships(ctx, kind, id, nil, res)
	if err != nil {
		return err
	}
	head, set, remove := splitMembers(kind, nil, res)
	version, err := h.Store.Commit(ctx, Commit{Kind: kind, ID: id, Expect: 0, Resource: head, Unique: unique,
		SetMembers: set, RemoveMembers: remove, Touch: touch, Delete: del})
	if err != nil {
		return err
	}
	return h.respond(w, http.StatusCreated, res, version)
}

// replace writes in over cur, a resource at version (a group with the
// members the change concerns: all of them, or for a PATCH those its
// operations name), and answers status (204: no body).
func (h *Handler) replace(ctx context.Context, w http.ResponseWriter, kind Kind, id string, cur Resource, version uint64, in Resource, status int) error {
	res, unique, err := h.clean(kind, in, id, cur)
	if err != nil {
		return err
	}
	meta, _ := cur["meta"].(map[string]any)
	res["meta"] = map[string]any{"resourceType": resourceType(kind), "created": meta["created"], "lastModified": h.now().Format(time.RFC3339), "location": h.location(kind, id)}
	touch, del, err := h.relationships(ctx, kind, id, cur, res)
	if err != nil {
		return err
	}
	head, set, remove := splitMembers(kind, cur, res)
	v, err := h.Store.Commit(ctx, Commit{Kind: kind, ID: id, Expect: version, Resource: head, Unique: unique,
		SetMembers: set, RemoveMembers: remove, Touch: touch, Delete: del})
	if err != nil {
		return err
	}
	if status == http.StatusNoContent {
		w.Header().Set("ETag", etag(v))
		w.WriteHeader(status)
		return nil
	}
	return h.respond(w, status, res, v)
}

// remove deletes a resource. A user's relationships stay, deactivated:
// users are never deleted (odm-users-and-permissions.txt); a group's go,
// with its members. A group with more members than one write can hold
// loses them in writes of at most that many first, each a consistent state
// (the group with fewer members, a new version); the last write removes the
// group. If one fails, the group is left with fewer members and a DELETE
// again finishes.
func (h *Handler) remove(ctx context.Context, w http.ResponseWriter, kind Kind, id string, cur Resource, version uint64) error {
	if kind == Groups {
		base, err := h.Mapping.Group(id, nil)
		if err != nil {
			return errorf(http.StatusBadRequest, "invalidValue", "%v", err)
		}
		chunk := max(1, min(MaxMemberChanges, h.maxUpdates()-len(base)))
		head, _, _ := splitMembers(kind, nil, cur)
		for {
			members, _ := cur["members"].([]any)
			if len(members) <= chunk {
				break
			}
			before, after := Resource{"members": members[len(members)-chunk:]}, Resource{}
			touch, del, err := h.relationships(ctx, kind, id, before, after)
			if err != nil {
				return err
			}
			_, _, gone := splitMembers(kind, before, after)
			if version, err = h.Store.Commit(ctx, Commit{Kind: kind, ID: id, Expect: version, Resource: head,
				RemoveMembers: gone, Touch: touch, Delete: del}); err != nil {
				return err
			}
			cur["members"] = members[:len(members)-chunk]
		}
	}
	var after Resource
	if kind == Users {
		after = Resource{"active": false}
	}
	touch, del, err := h.relationships(ctx, kind, id, cur, after)
	if err != nil {
		return err
	}
	_, _, gone := splitMembers(kind, cur, nil)
	if _, err := h.Store.Commit(ctx, Commit{Kind: kind, ID: id, Expect: version, RemoveMembers: gone, Touch: touch, Delete: del}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// clean checks a client's resource against its schema and returns what is
// stored: the client's attributes with the server's id and schemas set
// (meta is the caller's to set), and the resource's unique value.
func (h *Handler) clean(kind Kind, in Resource, id string, cur Resource) (Resource, string, error) {
	core, exts := schemasOf(kind)
	out := Resource{"id": id}
	schemas := []any{core}
	for k, v := range in {
		switch {
		case strings.EqualFold(k, "id") || strings.EqualFold(k, "meta"):
			continue // server-owned: ignored on input (RFC 7644 §3.3)
		case strings.EqualFold(k, "schemas"):
			continue
		}
		if ext := extensionOf(exts, k); ext != "" {
			m, ok := v.(map[string]any)
			if !ok {
				return nil, "", errorf(http.StatusBadRequest, "invalidValue", "%s: an extension's value is an object", k)
			}
			clean := map[string]any{}
			for ek, ev := range m {
				a, _, ok := Resolve(core, exts, AttrPath{URI: ext, Name: ek})
				if !ok {
					return nil, "", errorf(http.StatusBadRequest, "invalidValue", "%s has no attribute %q", ext, ek)
				}
				c, err := coerceWhole(*a, ev, ext+":"+a.Name)
				if err != nil {
					return nil, "", err
				}
				clean[a.Name] = c
			}
			out[ext] = clean
			schemas = append(schemas, ext)
			continue
		}
		a, _, ok := Resolve(core, exts, AttrPath{Name: k})
		if !ok {
			return nil, "", errorf(http.StatusBadRequest, "invalidValue", "%s has no attribute %q", core, k)
		}
		if a.Mutability == ReadOnly || a.Mutability == WriteOnly {
			continue // readOnly: the server's; writeOnly: accepted, not kept
		}
		c, err := coerceWhole(*a, v, a.Name)
		if err != nil {
			return nil, "", err
		}
		out[a.Name] = c
	}
	out["schemas"] = schemas
	if list, ok := out["members"].([]any); ok { // a member listed twice is one member
		var uniq []any
		for _, m := range list {
			if !containsValue(uniq, m, true) {
				uniq = append(uniq, m)
			}
		}
		out["members"] = uniq
	}
	required := "userName"
	if kind == Groups {
		required = "displayName"
	}
	s, _ := out[required].(string)
	if strings.TrimSpace(s) == "" {
		return nil, "", errorf(http.StatusBadRequest, "invalidValue", "%s is required", required)
	}
	if kind == Users {
		if _, ok := out["active"]; !ok {
			out["active"] = true
		}
		return out, strings.ToLower(s), nil
	}
	return out, "", nil
}

func extensionOf(exts []string, k string) string {
	for _, e := range exts {
		if strings.EqualFold(e, k) {
			return e
		}
	}
	return ""
}

// relationships returns what turns the relationships before implies into
// those after implies (nil: none).
func (h *Handler) relationships(ctx context.Context, kind Kind, id string, before, after Resource) (touch, del []tuple.Relationship, err error) {
	known := map[string]bool{} // member id -> is a group, from before
	implied := func(r Resource, lenient bool) ([]tuple.Relationship, error) {
		if r == nil {
			return nil, nil
		}
		var rels []tuple.Relationship
		var err error
		if kind == Users {
			active, _ := r["active"].(bool)
			rels, err = h.Mapping.User(id, active)
		} else {
			members, merr := h.members(ctx, r, known, lenient)
			if merr != nil {
				return nil, merr
			}
			if lenient {
				for _, m := range members {
					known[m.ID] = m.Group
				}
			}
			rels, err = h.Mapping.Group(id, members)
		}
		if err != nil { // an id the mapping cannot turn into a relationship
			return nil, errorf(http.StatusBadRequest, "invalidValue", "%v", err)
		}
		return rels, nil
	}
	b, err := implied(before, true)
	if err != nil {
		return nil, nil, err
	}
	a, err := implied(after, false)
	if err != nil {
		return nil, nil, err
	}
	touch, del = Diff(b, a)
	return touch, del, nil
}

// members reads a group's members: a member's type comes from "type" or,
// where the client left it out (Okta and Entra ID do), from the group's
// stored members (known) or from which kind of resource holds its id. The
// type found is written into the member, so the stored group keeps it: a
// member whose user was deleted since (users are deactivated, their
// relationships kept) is still known. lenient (the stored state) takes an
// unknown member for a user instead of refusing it.
func (h *Handler) members(ctx context.Context, r Resource, known map[string]bool, lenient bool) ([]Member, error) {
	list, _ := r["members"].([]any)
	out := make([]Member, 0, len(list))
	// The kinds of the members without a type, read together.
	var unknown []string
	for _, e := range list {
		m, _ := e.(map[string]any)
		v, _ := m["value"].(string)
		if typ, _ := lookup(m, "type").(string); typ == "" && v != "" {
			if _, ok := known[v]; !ok {
				unknown = append(unknown, v)
			}
		}
	}
	if len(unknown) > 0 {
		users, err := h.Store.Exist(ctx, Users, unknown)
		if err != nil {
			return nil, err
		}
		var rest []string
		for _, v := range unknown {
			if users[v] {
				known[v] = false
			} else {
				rest = append(rest, v)
			}
		}
		if len(rest) > 0 {
			groups, err := h.Store.Exist(ctx, Groups, rest)
			if err != nil {
				return nil, err
			}
			for v := range groups {
				known[v] = true
			}
		}
	}
	for _, e := range list {
		m, _ := e.(map[string]any)
		v, _ := m["value"].(string)
		if v == "" {
			return nil, errorf(http.StatusBadRequest, "invalidValue", "a member needs a value (the member's id)")
		}
		typ, _ := lookup(m, "type").(string)
		var group bool
		switch {
		case strings.EqualFold(typ, "User"):
		case strings.EqualFold(typ, "Group"):
			group = true
		case typ != "":
			return nil, errorf(http.StatusBadRequest, "invalidValue", "member %s: type %q is not User or Group", v, typ)
		default:
			g, ok := known[v]
			if !ok && !lenient {
				return nil, errorf(http.StatusBadRequest, "invalidValue", "member %s is neither a user nor a group", v)
			}
			group = g
			m[keyOf(m, "type")] = resourceType(map[bool]Kind{false: Users, true: Groups}[group])
		}
		out = append(out, Member{ID: v, Group: group})
	}
	return out, nil
}

func (h *Handler) location(kind Kind, id string) string {
	return strings.TrimSuffix(h.Prefix, "/") + "/" + string(kind) + "/" + id
}

func (h *Handler) respond(w http.ResponseWriter, status int, res Resource, version uint64) error {
	meta, _ := res["meta"].(map[string]any)
	if meta != nil {
		meta["version"] = etag(version)
		w.Header().Set("Location", fmt.Sprint(meta["location"]))
	}
	w.Header().Set("ETag", etag(version))
	writeJSON(w, status, res)
	return nil
}

// withVersion sets r's meta.version (the ETag of version) on a copy of its
// meta: the version is the store's, not part of the stored attributes.
func withVersion(r Resource, version uint64) Resource {
	meta, _ := r["meta"].(map[string]any)
	m := make(map[string]any, len(meta)+1)
	for k, v := range meta {
		m[k] = v
	}
	m["version"] = etag(version)
	out := make(Resource, len(r))
	for k, v := range r {
		out[k] = v
	}
	out["meta"] = m
	return out
}

func resourceType(k Kind) string {
	if k == Users {
		return "User"
	}
	return "Group"
}

// etag is a version as a weak ETag.
func etag(v uint64) string { return `W/"` + strconv.FormatUint(v, 10) + `"` }

func etagMatches(header string, v uint64) bool {
	for _, t := range strings.Split(header, ",") {
		if strings.TrimSpace(t) == etag(v) || strings.TrimPrefix(strings.TrimSpace(t), "W/") == strings.TrimPrefix(etag(v), "W/") {
			return true
		}
	}
	return false
}

func newID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80 // a version 4 UUID
	s := hex.EncodeToString(b)
	return s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:], nil
}

func (h *Handler) decodeBody(r *http.Request, v any) error {
	limit := h.MaxBody
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return errorf(http.StatusBadRequest, "invalidSyntax", "reading the body: %v", err)
	}
	if int64(len(body)) > limit {
		return errorf(http.StatusRequestEntityTooLarge, "", "the body is larger than %d bytes", limit)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return errorf(http.StatusBadRequest, "invalidSyntax", "the body is not a JSON object: %v", err)
	}
	return nil
}

func searchParam(body map[string]any, k string) string {
	switch v := lookup(body, k).(type) {
	case string:
		return v
	case float64:
		return strconv.FormatInt(int64(v), 10)
	case []any:
		var parts []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				parts = append(parts, s)
			}
		}
		return strings.Join(parts, ",")
	}
	return ""
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError writes err as a SCIM error body; an unexpected error is a 500
// whose detail is logged, never sent.
func (h *Handler) writeError(w http.ResponseWriter, err error) {
	var e *Error
	known := errors.As(err, &e) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrUniqueness) || errors.Is(err, ErrConflict)
	if e := AsError(err); !known && e.Status >= 500 && h.Log != nil {
		h.Log.Error("scim: internal error", "err", err)
	}
	WriteError(w, err)
}

// WriteError writes a SCIM error body; a store's errors map to their
// statuses (404, 409 uniqueness, 412 version) and this package's filter and
// path errors (invalidFilter, invalidPath) are 400s (AsError). Any other
// error that is not an *Error of this package is a 500 that does not show
// its detail.
func WriteError(w http.ResponseWriter, err error) {
	var e *Error
	switch {
	case errors.Is(err, ErrNotFound):
		e = errorf(http.StatusNotFound, "", "%v", err)
	case errors.Is(err, ErrUniqueness):
		e = errorf(http.StatusConflict, "uniqueness", "%v", err)
	case errors.Is(err, ErrConflict):
		e = errorf(http.StatusPreconditionFailed, "", "%v", err)
	default:
		e = AsError(err)
	}
	body := map[string]any{"schemas": []string{ErrorSchema}, "status": strconv.Itoa(e.Status), "detail": e.Detail}
	if e.ScimType != "" {
		body["scimType"] = e.ScimType
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	var explicit *Error
	if e.Status >= 500 && !errors.As(err, &explicit) {
		body["detail"] = "internal error" // never a server's internals
	}
	writeJSON(w, e.Status, body)
}
