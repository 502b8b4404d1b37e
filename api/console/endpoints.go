package console

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ambit-authz/ambit/api"
	"github.com/ambit-authz/ambit/api/apitoken"
	"github.com/ambit-authz/ambit/engine"
	ambitv1 "github.com/ambit-authz/ambit/proto/ambit/v1"
	"github.com/ambit-authz/ambit/tuple"
)

// The JSON API. Each endpoint needs the scope of the gRPC calls it makes
// (apitoken.MethodScope), checked here and again by the gRPC API itself.
func (h *Handler) routes() {
	h.handle("whoami", endpoint{method: http.MethodGet, fn: h.whoami})
	h.handle("schema", endpoint{method: http.MethodGet, scope: apitoken.Read, fn: h.readSchema})
	h.handle("schema/check", endpoint{method: http.MethodPost, scope: apitoken.Read, fn: h.checkSchema})
	h.handle("schema/write", endpoint{method: http.MethodPost, scope: apitoken.Schema, fn: h.writeSchema})
	h.handle("relationships", endpoint{method: http.MethodGet, scope: apitoken.Read, fn: h.readRelationships})
	h.handle("relationships/write", endpoint{method: http.MethodPost, scope: apitoken.Write, fn: h.writeRelationships})
	h.handle("import", endpoint{method: http.MethodPost, scope: apitoken.Write, fn: h.importFile})
	h.handle("check", endpoint{method: http.MethodPost, scope: apitoken.Check, fn: h.check})
	h.handle("access", endpoint{method: http.MethodGet, scope: apitoken.Check, fn: h.access})
	h.handle("watch", endpoint{method: http.MethodGet, scope: apitoken.Read, wait: true, fn: h.watch})
	h.handle("cluster", endpoint{method: http.MethodGet, scope: apitoken.Read, fn: h.cluster})
}

func (h *Handler) permissions() v1.PermissionsServiceClient {
	return v1.NewPermissionsServiceClient(h.cfg.Conn)
}

func (h *Handler) schemas() v1.SchemaServiceClient { return v1.NewSchemaServiceClient(h.cfg.Conn) }

// whoamiResponse tells the page what the credential may do, so it hides
// what would be refused (the server refuses it anyway).
type whoamiResponse struct {
	Name      string   `json:"name,omitempty"`
	TokenID   string   `json:"token_id,omitempty"`
	Anonymous bool     `json:"anonymous"`
	Scopes    []string `json:"scopes"`
	// Can maps each scope to whether the caller holds it (admin holds all).
	Can map[string]bool `json:"can"`
}

func (h *Handler) whoami(_ context.Context, c call) (any, error) {
	out := whoamiResponse{Name: c.caller.Name, TokenID: c.caller.TokenID, Anonymous: c.caller.Anonymous, Scopes: []string{}, Can: map[string]bool{}}
	for _, s := range c.caller.Scopes {
		out.Scopes = append(out.Scopes, string(s))
	}
	for _, s := range apitoken.Scopes {
		out.Can[string(s)] = c.caller.Allows(s)
	}
	return out, nil
}

// schemaResponse is the current schema: its text, the text as highlighted
// tokens, and its diagram.
type schemaResponse struct {
	Text    string   `json:"text"`
	ReadAt  string   `json:"read_at,omitempty"`
	Tokens  []Token  `json:"tokens"`
	Diagram *Diagram `json:"diagram,omitempty"`
	Error   string   `json:"error,omitempty"`
}

func (h *Handler) readSchema(ctx context.Context, _ call) (any, error) {
	resp, err := h.schemas().ReadSchema(ctx, &v1.ReadSchemaRequest{})
	if status.Code(err) == codes.NotFound {
		return schemaResponse{Tokens: []Token{}}, nil
	}
	if err != nil {
		return nil, err
	}
	out := schemaResponse{Text: resp.GetSchemaText(), ReadAt: resp.GetReadAt().GetToken(), Tokens: Highlight(resp.GetSchemaText())}
	d, err := SchemaDiagram(resp.GetSchemaText())
	if err != nil {
		out.Error = err.Error()
	}
	out.Diagram = d
	return out, nil
}

type schemaRequest struct {
	Schema string `json:"schema"`
}

// checkSchemaResponse is "check before write": the errors of the new text
// at their line and column (compile errors, and relationships the change
// would orphan), and the diagram of the text when it compiles.
type checkSchemaResponse struct {
	OK       bool      `json:"ok"`
	Problems []Problem `json:"problems"`
	Warnings []Problem `json:"warnings"`
	Tokens   []Token   `json:"tokens"`
	Diagram  *Diagram  `json:"diagram,omitempty"`
}

func (h *Handler) checkSchema(ctx context.Context, c call) (any, error) {
	var req schemaRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	out := checkSchemaResponse{Problems: []Problem{}, Warnings: []Problem{}, Tokens: Highlight(req.Schema)}
	next, problems, warnings := compileProblems(req.Schema)
	out.Problems, out.Warnings = append(out.Problems, problems...), append(out.Warnings, warnings...)
	if next == nil {
		return out, nil
	}
	out.Diagram = diagramOf(next)
	prev := ""
	resp, err := h.schemas().ReadSchema(ctx, &v1.ReadSchemaRequest{})
	switch {
	case status.Code(err) == codes.NotFound:
	case err != nil:
		return nil, err
	default:
		prev = resp.GetSchemaText()
	}
	orphans, err := h.orphaned(ctx, prev, req.Schema, next)
	if err != nil {
		return nil, err
	}
	out.Problems = append(out.Problems, orphans...)
	out.OK = len(out.Problems) == 0
	return out, nil
}

type writtenResponse struct {
	WrittenAt string `json:"written_at"`
}

func (h *Handler) writeSchema(ctx context.Context, c call) (any, error) {
	var req schemaRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	resp, err := h.schemas().WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: req.Schema})
	if err != nil {
		return nil, err
	}
	return writtenResponse{WrittenAt: resp.GetWrittenAt().GetToken()}, nil
}

// DefaultPageSize and MaxPageSize bound a relationships page.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

type relationshipsResponse struct {
	Relationships []string `json:"relationships"`
	// Cursor resumes after the last one; "" when the page was not full.
	Cursor string `json:"cursor,omitempty"`
	ReadAt string `json:"read_at,omitempty"`
}

// readRelationships lists one page of the relationships a filter matches:
// resource_type, resource_id, relation, and subject as type[:id][#relation]
// (a resource type or a subject is required).
func (h *Handler) readRelationships(ctx context.Context, c call) (any, error) {
	q := c.r.URL.Query()
	f := &v1.RelationshipFilter{ResourceType: q.Get("resource_type"), OptionalResourceId: q.Get("resource_id"), OptionalRelation: q.Get("relation")}
	s := strings.TrimSpace(q.Get("subject"))
	if f.ResourceType == "" && s == "" {
		return nil, invalidf("give a resource_type or a subject to browse by")
	}
	if f.ResourceType == "" && (f.OptionalResourceId != "" || f.OptionalRelation != "") {
		return nil, invalidf("resource_id and relation need a resource_type")
	}
	if s != "" {
		sf, err := subjectFilter(s)
		if err != nil {
			return nil, err
		}
		f.OptionalSubjectFilter = sf
	}
	limit := DefaultPageSize
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > MaxPageSize {
			return nil, invalidf("limit %q: give 1..%d", l, MaxPageSize)
		}
		limit = n
	}
	req := &v1.ReadRelationshipsRequest{RelationshipFilter: f, OptionalLimit: uint32(limit),
		Consistency: &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}}
	if cur := q.Get("cursor"); cur != "" {
		req.OptionalCursor = &v1.Cursor{Token: cur}
		req.Consistency = nil // the cursor carries its revision
	}
	stream, err := h.permissions().ReadRelationships(ctx, req)
	if err != nil {
		return nil, err
	}
	out := relationshipsResponse{Relationships: []string{}}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		r, err := api.RelationshipFromV1(resp.GetRelationship())
		if err != nil {
			return nil, err
		}
		out.Relationships = append(out.Relationships, r.String())
		out.Cursor, out.ReadAt = resp.GetAfterResultCursor().GetToken(), resp.GetReadAt().GetToken()
	}
	if len(out.Relationships) < limit {
		out.Cursor = ""
	}
	return out, nil
}

// subjectFilter reads type, type:id, type:id#relation or type#relation.
func subjectFilter(s string) (*v1.SubjectFilter, error) {
	obj, rel, hasRel := strings.Cut(s, "#")
	typ, id, _ := strings.Cut(obj, ":")
	if err := tuple.ValidateType(typ); err != nil {
		return nil, invalidf("subject %q: %v", s, err)
	}
	sf := &v1.SubjectFilter{SubjectType: typ, OptionalSubjectId: id}
	if id != "" {
		if err := tuple.ValidateSubjectID(id); err != nil {
			return nil, invalidf("subject %q: %v", s, err)
		}
	}
	if hasRel {
		if rel != tuple.Ellipsis {
			if err := tuple.ValidateRelation(rel); err != nil {
				return nil, invalidf("subject %q: %v", s, err)
			}
		} else {
			rel = ""
		}
		sf.OptionalRelation = &v1.SubjectFilter_RelationFilter{Relation: rel}
	}
	return sf, nil
}

type writeRequest struct {
	// Operation is create, touch or delete.
	Operation     string   `json:"operation"`
	Relationships []string `json:"relationships"`
}

func (h *Handler) writeRelationships(ctx context.Context, c call) (any, error) {
	var req writeRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	var op v1.RelationshipUpdate_Operation
	switch req.Operation {
	case "create":
		op = v1.RelationshipUpdate_OPERATION_CREATE
	case "touch":
		op = v1.RelationshipUpdate_OPERATION_TOUCH
	case "delete":
		op = v1.RelationshipUpdate_OPERATION_DELETE
	default:
		return nil, invalidf("operation %q: give create, touch or delete", req.Operation)
	}
	if len(req.Relationships) == 0 {
		return nil, invalidf("relationships is empty")
	}
	ups := make([]*v1.RelationshipUpdate, 0, len(req.Relationships))
	for i, s := range req.Relationships {
		r, err := tuple.Parse(s)
		if err != nil {
			return nil, invalidf("relationships[%d]: %v", i, err)
		}
		pb, err := api.RelationshipToV1(r)
		if err != nil {
			return nil, invalidf("relationships[%d]: %v", i, status.Convert(err).Message())
		}
		ups = append(ups, &v1.RelationshipUpdate{Operation: op, Relationship: pb})
	}
	resp, err := h.permissions().WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: ups})
	if err != nil {
		return nil, err
	}
	return writtenResponse{WrittenAt: resp.GetWrittenAt().GetToken()}, nil
}

// checkRequest is a check to explain.
type checkRequest struct {
	Resource   string `json:"resource"`
	Permission string `json:"permission"`
	Subject    string `json:"subject"`
	// Context is the caveat context, a JSON object as text ("" for none).
	Context string `json:"context"`
	// All draws every route of a grant too, not only the granting ones.
	All bool `json:"all"`
}

// checkResponse is the answer, the graph of why, and the text tree.
type checkResponse struct {
	Permissionship string   `json:"permissionship"` // HAS, NO or CONDITIONAL
	Missing        []string `json:"missing_context"`
	Proof          []string `json:"proof"`
	Graph          *Graph   `json:"graph"`
	Text           string   `json:"text"`
	Truncated      bool     `json:"truncated"`
	ReadAt         string   `json:"read_at"`
}

func (h *Handler) check(ctx context.Context, c call) (any, error) {
	var req checkRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	res, err := tuple.ParseObject(req.Resource)
	if err != nil {
		return nil, invalidf("resource: %v", err)
	}
	sub, err := tuple.ParseSubject(req.Subject)
	if err != nil {
		return nil, invalidf("subject: %v", err)
	}
	if err := tuple.ValidateRelation(req.Permission); err != nil {
		return nil, invalidf("permission: %v", err)
	}
	ereq := &ambitv1.ExplainRequest{
		Consistency: &ambitv1.Consistency{Requirement: &ambitv1.Consistency_FullyConsistent{FullyConsistent: true}},
		Resource:    &ambitv1.ObjectReference{ObjectType: res.Type, ObjectId: res.ID}, Permission: req.Permission,
		Subject: &ambitv1.SubjectReference{Object: &ambitv1.ObjectReference{ObjectType: sub.Type, ObjectId: sub.ID}, OptionalRelation: sub.Relation},
	}
	if strings.TrimSpace(req.Context) != "" {
		m, err := tuple.ParseContext([]byte(req.Context))
		if err != nil {
			return nil, invalidf("context: %v", err)
		}
		if m != nil {
			s, err := structpb.NewStruct(m)
			if err != nil {
				return nil, invalidf("context: %v", err)
			}
			ereq.Context = s
		}
	}
	resp, err := ambitv1.NewAccessServiceClient(h.cfg.Conn).Explain(ctx, ereq)
	if err != nil {
		return nil, err
	}
	perm := api.PermissionshipFromPB(resp.GetPermissionship())
	out := checkResponse{Permissionship: resultWord(perm), Missing: resp.GetMissingContext(), Proof: []string{},
		Truncated: resp.GetTruncated(), ReadAt: resp.GetReadAt().GetToken()}
	if out.Missing == nil {
		out.Missing = []string{}
	}
	var proof []tuple.Relationship
	for _, p := range resp.GetProof() {
		r := api.RelationshipFromPB(p)
		proof = append(proof, r)
		out.Proof = append(out.Proof, r.String())
	}
	why := api.WhyFromPB(resp.GetRoot())
	out.Graph = BuildGraph(why, sub, proof, req.All)
	out.Text = strings.TrimSuffix(req.Resource+"#"+req.Permission+"@"+req.Subject+": "+engine.ResultText(perm, resp.GetMissingContext())+"\n"+why.Text(), "\n")
	return out, nil
}

// resultWord is a permissionship as the page shows it.
func resultWord(p engine.Permissionship) string {
	switch p {
	case engine.HasPermission:
		return "HAS"
	case engine.ConditionalPermission:
		return "CONDITIONAL"
	}
	return "NO"
}

type accessEntry struct {
	Subject    string   `json:"subject"`
	Permission string   `json:"permission"`
	Result     string   `json:"result"`
	Missing    []string `json:"missing_context,omitempty"`
	Excluded   []string `json:"excluded,omitempty"`
	Through    []string `json:"through"`
}

type accessResponse struct {
	Permissions []string      `json:"permissions"`
	Entries     []accessEntry `json:"entries"`
	Cursor      string        `json:"cursor,omitempty"`
}

// access lists who has access to a resource: each subject of subject_type
// with its highest permission of permissions (ranked, highest first; by
// default the definition's permissions in schema order) and the proof
// path it holds it through (ambit.v1 ResourceAccess).
func (h *Handler) access(ctx context.Context, c call) (any, error) {
	q := c.r.URL.Query()
	res, err := tuple.ParseObject(q.Get("resource"))
	if err != nil {
		return nil, invalidf("resource: %v", err)
	}
	subjType := q.Get("subject_type")
	if subjType == "" {
		return nil, invalidf("subject_type is required (e.g. user)")
	}
	var perms []string
	for _, p := range strings.Split(q.Get("permissions"), ",") {
		if p = strings.TrimSpace(p); p != "" {
			perms = append(perms, p)
		}
	}
	if len(perms) == 0 {
		resp, err := h.schemas().ReadSchema(ctx, &v1.ReadSchemaRequest{})
		if err != nil {
			return nil, err
		}
		d, err := SchemaDiagram(resp.GetSchemaText())
		if err != nil {
			return nil, err
		}
		for _, def := range d.Definitions {
			if def.Name == res.Type {
				for _, r := range def.Relations {
					if r.Permission {
						perms = append(perms, r.Name)
					}
				}
			}
		}
		if len(perms) == 0 {
			return nil, invalidf("definition %q has no permission; name the permissions to rank", res.Type)
		}
	}
	limit := DefaultPageSize
	req := &ambitv1.ResourceAccessRequest{Resource: &ambitv1.ObjectReference{ObjectType: res.Type, ObjectId: res.ID},
		RankedPermissions: perms, SubjectObjectType: subjType, OptionalLimit: uint32(limit),
		Consistency: &ambitv1.Consistency{Requirement: &ambitv1.Consistency_FullyConsistent{FullyConsistent: true}}}
	if cur := q.Get("cursor"); cur != "" {
		req.OptionalCursor, req.Consistency = &ambitv1.Cursor{Token: cur}, nil
	}
	stream, err := ambitv1.NewAccessServiceClient(h.cfg.Conn).ResourceAccess(ctx, req)
	if err != nil {
		return nil, err
	}
	out := accessResponse{Permissions: perms, Entries: []accessEntry{}}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		s := resp.GetSubject()
		subj := tuple.SubjectRef{Type: s.GetObject().GetObjectType(), ID: s.GetObject().GetObjectId(), Relation: s.GetOptionalRelation()}
		e := accessEntry{Subject: subj.String(), Permission: resp.GetPermission(), Result: resultWord(api.PermissionshipFromPB(resp.GetPermissionship())),
			Missing: resp.GetMissingContext(), Excluded: resp.GetExcludedSubjectIds(), Through: []string{}}
		for _, p := range resp.GetProof() {
			e.Through = append(e.Through, api.RelationshipFromPB(p).String())
		}
		out.Entries = append(out.Entries, e)
		out.Cursor = resp.GetAfterResultCursor().GetToken()
	}
	if len(out.Entries) < limit {
		out.Cursor = ""
	}
	return out, nil
}

// watchResponse is what a long poll saw: the changes, and the cursor to
// poll from next.
type watchResponse struct {
	Changes []watchChange `json:"changes"`
	Cursor  string        `json:"cursor"`
}

type watchChange struct {
	Operation    string `json:"operation"`
	Relationship string `json:"relationship"`
}

// watch long-polls the Watch feed from cursor (a ZedToken; none: from now)
// for up to wait seconds (default 20, at most MaxWatchWait), returning as
// soon as some change arrived.
func (h *Handler) watch(ctx context.Context, c call) (any, error) {
	q := c.r.URL.Query()
	wait := 20 * time.Second
	if w := q.Get("wait"); w != "" {
		n, err := strconv.Atoi(w)
		if err != nil || n < 0 || time.Duration(n)*time.Second > MaxWatchWait {
			return nil, invalidf("wait %q: give 0..%d seconds", w, int(MaxWatchWait/time.Second))
		}
		wait = time.Duration(n) * time.Second
	}
	cursor := q.Get("cursor")
	if cursor == "" {
		// Start from the newest applied revision (ReadSchema reads there),
		// so the next poll misses nothing in between.
		tctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
		resp, err := h.schemas().ReadSchema(tctx, &v1.ReadSchemaRequest{})
		cancel()
		switch {
		case status.Code(err) == codes.NotFound:
		case err != nil:
			return nil, err
		default:
			cursor = resp.GetReadAt().GetToken()
		}
	}
	out := watchResponse{Changes: []watchChange{}, Cursor: cursor}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	req := &v1.WatchRequest{}
	if cursor != "" {
		req.OptionalStartCursor = &v1.ZedToken{Token: cursor}
	}
	stream, err := v1.NewWatchServiceClient(h.cfg.Conn).Watch(wctx, req)
	if err != nil {
		return out, timeoutOK(wctx, err)
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return out, timeoutOK(wctx, err)
		}
		if t := resp.GetChangesThrough().GetToken(); t != "" {
			out.Cursor = t
		}
		for _, u := range resp.GetUpdates() {
			r, err := api.RelationshipFromV1(u.GetRelationship())
			if err != nil {
				return nil, err
			}
			op := strings.ToLower(strings.TrimPrefix(u.GetOperation().String(), "OPERATION_"))
			out.Changes = append(out.Changes, watchChange{Operation: op, Relationship: r.String()})
		}
		if len(out.Changes) > 0 || resp.GetSchemaUpdated() {
			return out, nil
		}
	}
}

// timeoutOK turns the end of a long poll's wait into an empty answer: the
// wait's deadline (gRPC's timer may fire before the context's own) or its
// cancellation. Watch has no server-side deadline, so a DeadlineExceeded
// is the wait's.
func timeoutOK(wctx context.Context, err error) error {
	switch {
	case status.Code(err) == codes.DeadlineExceeded, errors.Is(err, context.DeadlineExceeded):
		return nil
	case wctx.Err() != nil && status.Code(err) == codes.Canceled:
		return nil
	}
	return err
}
