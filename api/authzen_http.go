package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ambit-authz/ambit/api/apitoken"
	"github.com/ambit-authz/ambit/tuple"
)

// AuthZEN 1.0 (OpenID AuthZEN Authorization API) over HTTP. Every endpoint
// translates its request to the authzed v1 messages and calls the gRPC
// handlers of this package in process (CheckPermission,
// CheckBulkPermissions, LookupResources, LookupSubjects), so answers,
// consistency, limits and cursors are the gRPC API's.

// AuthZEN defaults.
const (
	DefaultAuthZENMaxBody   = 1 << 20
	DefaultAuthZENTimeout   = 30 * time.Second
	DefaultAuthZENPageLimit = 1000
)

// AuthZENOptions configure the AuthZEN handler.
type AuthZENOptions struct {
	// Auth authenticates every request but discovery by its Authorization
	// header ("Bearer CREDENTIAL", the gRPC API's credentials) and requires
	// the check scope (apitoken.Check). Nil, or one without credentials,
	// disables authentication.
	Auth *Authenticator
	// MaxBodyBytes bounds a request body; default DefaultAuthZENMaxBody.
	MaxBodyBytes int64
	// Timeout is each request's budget; default DefaultAuthZENTimeout.
	Timeout time.Duration
	// BaseURL is the policy_decision_point of the discovery document; by
	// default the scheme and Host the request came with.
	BaseURL string
}

// AuthZEN endpoint paths.
const (
	AuthZENEvaluation     = "/access/v1/evaluation"
	AuthZENEvaluations    = "/access/v1/evaluations"
	AuthZENSearchSubject  = "/access/v1/search/subject"
	AuthZENSearchResource = "/access/v1/search/resource"
	AuthZENSearchAction   = "/access/v1/search/action"
	AuthZENConfiguration  = "/.well-known/authzen-configuration"
)

// ZedTokenHeader carries a ZedToken: in a request, the answer must be at
// least as fresh as it; in a response, the revision the answer was read at.
const ZedTokenHeader = "ZedToken"

// AuthZENHandler returns the handler of the AuthZEN endpoints; mount it on
// "/access/v1/" and AuthZENConfiguration.
func (s *Server) AuthZENHandler(o AuthZENOptions) http.Handler {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultAuthZENMaxBody
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultAuthZENTimeout
	}
	if o.Auth == nil {
		o.Auth = NewAuthenticator(nil)
	}
	h := &azHandler{s: s, o: o}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+AuthZENEvaluation, h.wrap("evaluation", h.evaluation))
	mux.HandleFunc("POST "+AuthZENEvaluations, h.wrap("evaluations", h.evaluations))
	mux.HandleFunc("POST "+AuthZENSearchSubject, h.wrap("search/subject", h.searchSubject))
	mux.HandleFunc("POST "+AuthZENSearchResource, h.wrap("search/resource", h.searchResource))
	mux.HandleFunc("POST "+AuthZENSearchAction, h.wrap("search/action", h.searchAction))
	mux.HandleFunc("GET "+AuthZENConfiguration, h.configuration)
	return mux
}

type azHandler struct {
	s *Server
	o AuthZENOptions
}

// azCall is one request being served.
type azCall struct {
	ctx    context.Context
	r      *http.Request
	w      http.ResponseWriter
	method string
}

// wrap authenticates, bounds the body and the time, recovers from panics,
// maps errors to HTTP statuses and records the call like a gRPC one.
func (h *azHandler) wrap(name string, f func(c *azCall) (any, error)) http.HandlerFunc {
	method := "/authzen/" + name
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if id := r.Header.Get("X-Request-ID"); id != "" {
			w.Header().Set("X-Request-ID", id)
		}
		ctx, cancel := context.WithTimeout(WithRequestID(r.Context(), r.Header.Get("X-Request-ID")), h.o.Timeout)
		defer cancel()
		// The budget covers reading the body too (a client sending it
		// slowly gets a read error, not a goroutine held open).
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(h.o.Timeout))
		c := &azCall{ctx: ctx, r: r, w: w, method: method}
		resp, err := func() (resp any, err error) {
			defer func() {
				if p := recover(); p != nil {
					h.s.log.Error("panic in AuthZEN handler", "method", method, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
					resp, err = nil, status.Error(codes.Internal, "internal error (the server recovered from a panic; its log has the details)")
				}
			}()
			caller, err := h.o.Auth.authorize(r.Header.Get("Authorization"), apitoken.Check, method)
			if err != nil {
				return nil, err
			}
			c.ctx = WithCaller(c.ctx, caller)
			r.Body = http.MaxBytesReader(w, r.Body, h.o.MaxBodyBytes)
			return f(c)
		}()
		if err != nil {
			err = h.s.azStatus(method, err)
		}
		h.s.observe(method, start, err)
		if err != nil {
			code, msg := azHTTPStatus(err)
			if code == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="ambit"`)
			}
			SetRetryAfter(w.Header(), err)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.WriteHeader(code)
			fmt.Fprintln(w, msg)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if d, ok := resp.(azDecision); ok && d.Context == nil {
			_, _ = w.Write(plainDecision[d.Decision]) // what json.Marshal writes, without reflection
			return
		}
		b, err := json.Marshal(resp)
		if err != nil {
			h.s.log.Error("AuthZEN response encoding", "method", method, "err", err)
			http.Error(w, "internal error; the server log has the details", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write(append(b, '\n'))
	}
}

// plainDecision is the JSON of a decision without context.
var plainDecision = map[bool][]byte{true: []byte("{\"decision\":true}\n"), false: []byte("{\"decision\":false}\n")}

// azStatus maps an error of a handler to a gRPC status: client mistakes
// found here are InvalidArgument, the rest goes through toStatus.
func (s *Server) azStatus(method string, err error) error {
	var az *azError
	if errors.As(err, &az) {
		return status.Error(codes.InvalidArgument, az.msg)
	}
	return toStatus(s.log, method, err)
}

// azHTTPStatus maps a gRPC status to the HTTP status of the AuthZEN binding.
// A request the client can fix is 400, never 500; one refused because the
// server is busy (RetryAfter) is 429.
func azHTTPStatus(err error) (int, string) {
	st := status.Convert(err)
	if _, busy := RetryAfter(err); busy {
		return http.StatusTooManyRequests, st.Message()
	}
	switch st.Code() {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange, codes.ResourceExhausted:
		return http.StatusBadRequest, st.Message()
	case codes.Unauthenticated:
		return http.StatusUnauthorized, st.Message()
	case codes.PermissionDenied:
		return http.StatusForbidden, st.Message()
	case codes.NotFound:
		return http.StatusNotFound, st.Message()
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict, st.Message()
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout, st.Message()
	case codes.Unavailable, codes.Canceled:
		return http.StatusServiceUnavailable, st.Message()
	}
	return http.StatusInternalServerError, st.Message()
}

// decode reads the JSON body into v. Errors name the field where they can.
// plain, when not nil, decodes a body of the plain shape into v
// (authzen_plain.go) and reports false, leaving v alone, for any other.
func (c *azCall) decode(v any, plain func([]byte) bool) error {
	body, err := io.ReadAll(c.r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return azErrorf("request body: larger than the limit of %d bytes", mbe.Limit)
		case errors.Is(err, os.ErrDeadlineExceeded):
			return azErrorf("request body: not received within the request's budget")
		}
		return azErrorf("request body: %v", err)
	}
	if plain != nil && plain(body) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &mbe):
			return azErrorf("request body: larger than the limit of %d bytes", mbe.Limit)
		case errors.Is(err, os.ErrDeadlineExceeded):
			return azErrorf("request body: not received within the request's budget")
		case errors.Is(err, io.EOF) && dec.InputOffset() == 0:
			return azErrorf("request body: empty; expected a JSON object")
		case errors.As(err, &se):
			return azErrorf("request body: malformed JSON at byte %d: %v", se.Offset, se)
		case errors.As(err, &te):
			field := te.Field
			if field == "" {
				field = "request body"
			}
			return azErrorf("%s: expected %s, found JSON %s", field, te.Type, te.Value)
		}
		return azErrorf("request body: malformed JSON: %v", err)
	}
	if dec.More() {
		return azErrorf("request body: more than one JSON value")
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err == nil {
		return azErrorf("request body: more than one JSON value")
	} else {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return azErrorf("request body: larger than the limit of %d bytes", mbe.Limit)
		}
	}
	return nil
}

// consistency is minimize_latency unless the request carries ZedTokens: in
// the ZedToken header, in context.zedtoken, or (in /evaluations) in an
// item's context.zedtoken, given in items with their field paths. Then it is
// at_least_as_fresh of the freshest of them, which satisfies every one (a
// batch is read at one revision).
func (c *azCall) consistency(s *Server, ctx map[string]any, items ...azItemContext) (*v1.Consistency, error) {
	var (
		best    *v1.ZedToken
		bestRev tuple.Revision
	)
	consider := func(tok, field string) error {
		if tok == "" {
			return nil
		}
		z := &v1.ZedToken{Token: tok}
		rev, err := s.tokens.revision(z, field)
		if err != nil {
			return azErrorf("%v", err)
		}
		if best == nil || rev > bestRev {
			best, bestRev = z, rev
		}
		return nil
	}
	fromContext := func(m map[string]any, path string) error {
		v, ok := m[zedTokenKey]
		if !ok {
			return nil
		}
		str, ok := v.(string)
		if !ok {
			return azErrorf("%scontext.%s: must be a string (a ZedToken)", path, zedTokenKey)
		}
		return consider(str, path+"context."+zedTokenKey)
	}
	if err := consider(c.r.Header.Get(ZedTokenHeader), ZedTokenHeader+" header"); err != nil {
		return nil, err
	}
	if err := fromContext(ctx, ""); err != nil {
		return nil, err
	}
	for _, it := range items {
		if err := fromContext(it.ctx, it.path); err != nil {
			return nil, err
		}
	}
	if best == nil {
		return &v1.Consistency{Requirement: &v1.Consistency_MinimizeLatency{MinimizeLatency: true}}, nil
	}
	return &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: best}}, nil
}

// azItemContext is the context of an item of /evaluations and its path.
type azItemContext struct {
	ctx  map[string]any
	path string
}

func (c *azCall) answeredAt(z *v1.ZedToken) {
	if z != nil {
		c.w.Header().Set(ZedTokenHeader, z.GetToken())
	}
}

func (h *azHandler) translator() (azTranslator, error) {
	sch, err := h.s.currentSchema()
	if err != nil {
		return azTranslator{}, err
	}
	return azTranslator{sch: sch, maxContext: h.s.limits.MaxCaveatContextLen}, nil
}

// evaluation serves POST /access/v1/evaluation.
func (h *azHandler) evaluation(c *azCall) (any, error) {
	var req azEvaluation
	if err := c.decode(&req, func(b []byte) bool { return decodePlainEvaluation(b, &req) }); err != nil {
		return nil, err
	}
	return h.single(c, &req)
}

func (h *azHandler) single(c *azCall, req *azEvaluation) (any, error) {
	t, err := h.translator()
	if err != nil {
		return nil, err
	}
	item, err := t.checkItem(req, "")
	if err != nil {
		return nil, err
	}
	cons, err := c.consistency(h.s, req.Context)
	if err != nil {
		return nil, err
	}
	resp, err := h.s.CheckPermission(c.ctx, &v1.CheckPermissionRequest{Consistency: cons,
		Resource: item.Resource, Permission: item.Permission, Subject: item.Subject, Context: item.Context})
	if err != nil {
		return nil, err
	}
	c.answeredAt(resp.GetCheckedAt())
	d := decisionOf(resp.GetPermissionship(), resp.GetPartialCaveatInfo())
	if !d.Decision && wantsExplain(req) {
		if err := h.explainDeny(c, item, resp.GetCheckedAt(), &d); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Evaluation semantics of /evaluations (options.evaluations_semantic).
const (
	azExecuteAll          = "execute_all"
	azDenyOnFirstDeny     = "deny_on_first_deny"
	azPermitOnFirstPermit = "permit_on_first_permit"
)

// evaluations serves POST /access/v1/evaluations. The top-level subject,
// action, resource and context are defaults each item may replace. Results
// are in request order; an item that fails is a deny whose context.error
// says why. With deny_on_first_deny (permit_on_first_permit) the results
// end with the first deny (permit).
func (h *azHandler) evaluations(c *azCall) (any, error) {
	var req azEvaluationsRequest
	if err := c.decode(&req, func(b []byte) bool { return decodePlainEvaluations(b, &req) }); err != nil {
		return nil, err
	}
	sem := req.Options.EvaluationsSemantic
	switch sem {
	case "", azExecuteAll, azDenyOnFirstDeny, azPermitOnFirstPermit:
	default:
		return nil, azErrorf("options.evaluations_semantic: %q is not one of %s, %s, %s", sem, azExecuteAll, azDenyOnFirstDeny, azPermitOnFirstPermit)
	}
	if len(req.Evaluations) == 0 {
		return h.single(c, &req.azEvaluation)
	}
	if n, max := len(req.Evaluations), h.s.limits.MaxChecksPerBulk; n > max {
		return nil, azErrorf("evaluations: %d items, more than the limit of %d; split the request", n, max)
	}
	t, err := h.translator()
	if err != nil {
		return nil, err
	}
	items := make([]azItemContext, 0, len(req.Evaluations))
	for i, ev := range req.Evaluations {
		if ev.Context != nil {
			items = append(items, azItemContext{ev.Context, fmt.Sprintf("evaluations[%d].", i)})
		}
	}
	cons, err := c.consistency(h.s, req.Context, items...)
	if err != nil {
		return nil, err
	}
	out := make([]azDecision, len(req.Evaluations))
	bulk := &v1.CheckBulkPermissionsRequest{Consistency: cons}
	var idx []int
	// explain[i]: the item the i-th evaluation asks reasons for, if it does.
	explain := make([]*v1.CheckBulkPermissionsRequestItem, len(req.Evaluations))
	for i := range req.Evaluations {
		ev := merged(req.azEvaluation, req.Evaluations[i])
		item, err := t.checkItem(&ev, fmt.Sprintf("evaluations[%d].", i))
		if err != nil {
			out[i] = h.itemError(c.method, err)
			continue
		}
		bulk.Items = append(bulk.Items, item)
		idx = append(idx, i)
		if wantsExplain(&ev) {
			explain[i] = item
		}
	}
	var at *v1.ZedToken
	if len(bulk.Items) > 0 {
		release, err := h.s.admit(c.ctx, v1.PermissionsService_CheckBulkPermissions_FullMethodName, bulk)
		if err != nil {
			return nil, err
		}
		resp, err := h.s.CheckBulkPermissions(c.ctx, bulk)
		release() // before the explanations, which take a heavy slot each
		if err != nil {
			return nil, err
		}
		at = resp.GetCheckedAt()
		c.answeredAt(at)
		for j, p := range resp.GetPairs() {
			i := idx[j]
			if e := p.GetError(); e != nil {
				code, _ := azHTTPStatus(status.ErrorProto(e))
				out[i] = azDecision{Context: map[string]any{"error": map[string]any{"status": code, "message": e.GetMessage()}}}
				explain[i] = nil
				continue
			}
			it := p.GetItem()
			out[i] = decisionOf(it.GetPermissionship(), it.GetPartialCaveatInfo())
		}
	}
	switch sem {
	case azDenyOnFirstDeny, azPermitOnFirstPermit:
		for i, d := range out {
			if d.Decision == (sem == azPermitOnFirstPermit) {
				out = out[:i+1]
				break
			}
		}
	}
	for i := range out {
		if explain[i] != nil && !out[i].Decision {
			if err := h.explainDeny(c, explain[i], at, &out[i]); err != nil {
				return nil, err
			}
		}
	}
	return map[string]any{"evaluations": out}, nil
}

func (h *azHandler) itemError(method string, err error) azDecision {
	code, msg := azHTTPStatus(h.s.azStatus(method, err))
	return azDecision{Context: map[string]any{"error": map[string]any{"status": code, "message": msg}}}
}

// Search paging. A page token is URL-safe base64 of
//
//	0x01 request:8 payload
//
// where request is a fingerprint of the search request without its page
// (so a token cannot page a different search) and payload is the v1
// cursor (subject and resource search) or the uvarint offset of the next
// action followed by a ZedToken (action search). The revision of the first
// page holds for all.
type azSearchKind byte

const (
	azSearchSubjects azSearchKind = iota + 1
	azSearchResources
	azSearchActions
)

type azPageResp struct {
	NextToken string `json:"next_token"`
	Count     int    `json:"count"`
}

type azSearchResponse struct {
	Results []map[string]any `json:"results"`
	Page    azPageResp       `json:"page"`
}

func (h *azHandler) decodeSearch(c *azCall, kind azSearchKind) (*azSearchRequest, [8]byte, int, error) {
	var req azSearchRequest
	if err := c.decode(&req, nil); err != nil {
		return nil, [8]byte{}, 0, err
	}
	page := req.Page
	req.Page = nil
	b, err := json.Marshal(req)
	if err != nil {
		return nil, [8]byte{}, 0, azErrorf("request body: %v", err)
	}
	sum := sha256.Sum256(append([]byte{byte(kind)}, b...))
	var fp [8]byte
	copy(fp[:], sum[:8])
	req.Page = page
	limit := DefaultAuthZENPageLimit
	if page != nil && page.Limit != nil {
		limit = *page.Limit
		if limit < 1 || limit > h.s.limits.MaxLookupResults {
			return nil, fp, 0, azErrorf("page.limit: %d is outside 1..%d", limit, h.s.limits.MaxLookupResults)
		}
	}
	return &req, fp, limit, nil
}

func encodePageToken(fp [8]byte, payload []byte) string {
	b := make([]byte, 0, 9+len(payload))
	b = append(b, 1)
	b = append(b, fp[:]...)
	return base64.RawURLEncoding.EncodeToString(append(b, payload...))
}

// pageToken returns the payload of req's page token (nil on a first page).
func pageToken(req *azSearchRequest, fp [8]byte) ([]byte, error) {
	if req.Page == nil || req.Page.Token == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(req.Page.Token)
	if err != nil || len(b) < 9 || b[0] != 1 {
		return nil, azErrorf("page.token: malformed; use the page.next_token of the previous response as it is")
	}
	if !bytes.Equal(b[1:9], fp[:]) {
		return nil, azErrorf("page.token: was issued for a different request; every field but page must stay the same across pages")
	}
	return b[9:], nil
}

// collect is a grpc server stream that keeps what the handler sends. Only
// Context and Send are called by the lookup handlers.
type collect[T any] struct {
	grpc.ServerStream
	ctx context.Context
	out []*T
}

func (c *collect[T]) Context() context.Context { return c.ctx }
func (c *collect[T]) Send(m *T) error          { c.out = append(c.out, m); return nil }

// azSearch is a search request, decoded and translated: what the three
// searches share.
type azSearch struct {
	req       *azSearchRequest
	fp        [8]byte // the request's fingerprint, bound into page tokens
	limit     int
	subj      *v1.SubjectReference
	rtyp, rid string
	perm      string // the action's permission; "" in an action search
	cctx      *structpb.Struct
	t         azTranslator
	payload   []byte // from page.token; nil on the first page
}

// parseSearch decodes a search of kind and translates its parts, naming the
// field of the first that is wrong. subjectID and resourceID say whether the
// search takes that entity's id (a subject search has no subject id, a
// resource search no resource id); an action search takes no action.
func (h *azHandler) parseSearch(c *azCall, kind azSearchKind, subjectID, resourceID bool) (*azSearch, error) {
	req, fp, limit, err := h.decodeSearch(c, kind)
	if err != nil {
		return nil, err
	}
	if kind == azSearchActions && req.Action != nil {
		return nil, azErrorf("action: must not be given in a search for actions")
	}
	t, err := h.translator()
	if err != nil {
		return nil, err
	}
	q := &azSearch{req: req, fp: fp, limit: limit, t: t}
	if q.subj, err = t.subject(req.Subject, "subject", subjectID); err != nil {
		return nil, err
	}
	if q.rtyp, q.rid, err = t.entity(req.Resource, "resource", resourceID); err != nil {
		return nil, err
	}
	if kind != azSearchActions {
		if q.perm, err = t.action(req.Action, q.rtyp, "action"); err != nil {
			return nil, err
		}
	}
	if q.cctx, err = t.caveatContext(&req.azEvaluation, ""); err != nil {
		return nil, err
	}
	if q.payload, err = pageToken(req, fp); err != nil {
		return nil, err
	}
	return q, nil
}

// searchResource serves POST /access/v1/search/resource: every resource of
// resource.type on which subject may do action (definite answers only: a
// conditional one is a deny, as in evaluation).
func (h *azHandler) searchResource(c *azCall) (any, error) {
	q, err := h.parseSearch(c, azSearchResources, true, false)
	if err != nil {
		return nil, err
	}
	req, fp, limit, rtyp, payload := q.req, q.fp, q.limit, q.rtyp, q.payload
	lr := &v1.LookupResourcesRequest{ResourceObjectType: rtyp, Permission: q.perm, Subject: q.subj, Context: q.cctx, OptionalLimit: uint32(limit + 1)}
	if payload != nil {
		lr.OptionalCursor = &v1.Cursor{Token: string(payload)}
	} else if lr.Consistency, err = c.consistency(h.s, req.Context); err != nil {
		return nil, err
	}
	release, err := h.s.admit(c.ctx, v1.PermissionsService_LookupResources_FullMethodName, lr)
	if err != nil {
		return nil, err
	}
	defer release()
	st := &collect[v1.LookupResourcesResponse]{ctx: c.ctx}
	if err := h.s.LookupResources(lr, st); err != nil {
		return nil, pageTokenErr(err, payload)
	}
	resp := &azSearchResponse{Results: []map[string]any{}}
	got := st.out
	if len(got) > limit {
		resp.Page.NextToken = encodePageToken(fp, []byte(got[limit-1].GetAfterResultCursor().GetToken()))
		got = got[:limit]
	}
	for _, r := range got {
		if r.GetPermissionship() != v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_HAS_PERMISSION {
			continue
		}
		resp.Results = append(resp.Results, map[string]any{"type": rtyp, "id": ambitIDToAZ(r.GetResourceObjectId())})
	}
	if len(st.out) > 0 {
		c.answeredAt(st.out[0].GetLookedUpAt())
	}
	resp.Page.Count = len(resp.Results)
	return resp, nil
}

// pageTokenErr names page.token in an error about the cursor it carried.
func pageTokenErr(err error, payload []byte) error {
	if payload == nil {
		return err
	}
	if st, ok := status.FromError(err); ok && st.Code() == codes.InvalidArgument && strings.Contains(st.Message(), "cursor") {
		return azErrorf("page.token: %s", st.Message())
	}
	return err
}

// searchSubject serves POST /access/v1/search/subject: every subject of
// subject.type (with subject.properties.relation, every subject set) that
// may do action on resource. A wildcard grant is the result {type, id: "*"}
// (first, on the first page), with the ids it excludes in
// properties.excluded.
func (h *azHandler) searchSubject(c *azCall) (any, error) {
	q, err := h.parseSearch(c, azSearchSubjects, false, true)
	if err != nil {
		return nil, err
	}
	req, fp, limit, subj, rtyp, rid, perm, cctx, payload := q.req, q.fp, q.limit, q.subj, q.rtyp, q.rid, q.perm, q.cctx, q.payload
	styp := subj.GetObject().GetObjectType()
	ls := &v1.LookupSubjectsRequest{Resource: &v1.ObjectReference{ObjectType: rtyp, ObjectId: rid}, Permission: perm,
		SubjectObjectType: styp, OptionalSubjectRelation: subj.GetOptionalRelation(), Context: cctx,
		OptionalConcreteLimit: uint32(limit + 1)}
	if payload != nil {
		ls.OptionalCursor = &v1.Cursor{Token: string(payload)}
	} else if ls.Consistency, err = c.consistency(h.s, req.Context); err != nil {
		return nil, err
	}
	release, err := h.s.admit(c.ctx, v1.PermissionsService_LookupSubjects_FullMethodName, ls)
	if err != nil {
		return nil, err
	}
	defer release()
	st := &collect[v1.LookupSubjectsResponse]{ctx: c.ctx}
	if err := h.s.LookupSubjects(ls, st); err != nil {
		return nil, pageTokenErr(err, payload)
	}
	resp := &azSearchResponse{Results: []map[string]any{}}
	got := st.out
	n := 0
	for i, r := range got {
		if r.GetSubjectObjectId() == tuple.Wildcard {
			continue
		}
		if n++; n == limit && i+1 < len(got) {
			resp.Page.NextToken = encodePageToken(fp, []byte(r.GetAfterResultCursor().GetToken()))
			got = got[:i+1]
			break
		}
	}
	for _, r := range got {
		if r.GetPermissionship() != v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_HAS_PERMISSION {
			continue
		}
		id := r.GetSubjectObjectId()
		res := map[string]any{"type": styp, "id": ambitIDToAZ(id)}
		props := map[string]any{}
		if id == tuple.Wildcard {
			ex := make([]string, 0, len(r.GetExcludedSubjects()))
			for _, e := range r.GetExcludedSubjects() {
				ex = append(ex, ambitIDToAZ(e.GetSubjectObjectId()))
			}
			res["id"] = tuple.Wildcard
			props["excluded"] = ex
		}
		if rel := subj.GetOptionalRelation(); rel != "" {
			props["relation"] = rel
		}
		if len(props) > 0 {
			res["properties"] = props
		}
		resp.Results = append(resp.Results, res)
	}
	if len(st.out) > 0 {
		c.answeredAt(st.out[0].GetLookedUpAt())
	}
	resp.Page.Count = len(resp.Results)
	return resp, nil
}

// searchAction serves POST /access/v1/search/action: every permission and
// relation of resource's type that subject holds on resource, in the
// schema's order. All of them are checked at once (a type has few); pages
// are slices of the answer at the revision of the first page.
func (h *azHandler) searchAction(c *azCall) (any, error) {
	q, err := h.parseSearch(c, azSearchActions, true, true)
	if err != nil {
		return nil, err
	}
	req, fp, limit, t, subj, rtyp, rid, cctx, payload := q.req, q.fp, q.limit, q.t, q.subj, q.rtyp, q.rid, q.cctx, q.payload
	var cons *v1.Consistency
	start := 0
	if payload != nil {
		// payload = uvarint(offset) zedtoken
		off, n := binary.Uvarint(payload)
		if n <= 0 || off > uint64(h.s.limits.MaxLookupResults) {
			return nil, azErrorf("page.token: malformed; use the page.next_token of the previous response as it is")
		}
		z := &v1.ZedToken{Token: string(payload[n:])}
		if _, err := h.s.tokens.revision(z, "page.token"); err != nil {
			return nil, azErrorf("%v", err)
		}
		cons = &v1.Consistency{Requirement: &v1.Consistency_AtExactSnapshot{AtExactSnapshot: z}}
		start = int(off)
	} else if cons, err = c.consistency(h.s, req.Context); err != nil {
		return nil, err
	}
	names := t.sch.Definitions[rtyp].Order
	var granted []string
	var at *v1.ZedToken
	for len(names) > 0 {
		n := min(len(names), h.s.limits.MaxChecksPerBulk)
		bulk := &v1.CheckBulkPermissionsRequest{Consistency: cons}
		for _, name := range names[:n] {
			bulk.Items = append(bulk.Items, &v1.CheckBulkPermissionsRequestItem{
				Resource: &v1.ObjectReference{ObjectType: rtyp, ObjectId: rid}, Permission: name, Subject: subj, Context: cctx})
		}
		release, err := h.s.admit(c.ctx, v1.PermissionsService_CheckBulkPermissions_FullMethodName, bulk)
		if err != nil {
			return nil, err
		}
		out, err := h.s.CheckBulkPermissions(c.ctx, bulk)
		release()
		if err != nil {
			return nil, pageTokenErr(err, payload)
		}
		if at == nil {
			at = out.GetCheckedAt()
			cons = &v1.Consistency{Requirement: &v1.Consistency_AtExactSnapshot{AtExactSnapshot: at}}
		}
		for _, p := range out.GetPairs() {
			if e := p.GetError(); e != nil {
				return nil, status.ErrorProto(e)
			}
			if p.GetItem().GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION {
				granted = append(granted, p.GetRequest().GetPermission())
			}
		}
		names = names[n:]
	}
	c.answeredAt(at)
	resp := &azSearchResponse{Results: []map[string]any{}}
	page := granted[min(start, len(granted)):]
	if len(page) > limit {
		p := binary.AppendUvarint(nil, uint64(start+limit))
		resp.Page.NextToken = encodePageToken(fp, append(p, at.GetToken()...))
		page = page[:limit]
	}
	for _, name := range page {
		resp.Results = append(resp.Results, map[string]any{"name": name})
	}
	resp.Page.Count = len(resp.Results)
	return resp, nil
}

// configuration serves the discovery document (no authentication: it holds
// no data).
func (h *azHandler) configuration(w http.ResponseWriter, r *http.Request) {
	base := h.o.BaseURL
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	base = strings.TrimRight(base, "/")
	doc := map[string]any{
		"policy_decision_point":       base,
		"access_evaluation_endpoint":  base + AuthZENEvaluation,
		"access_evaluations_endpoint": base + AuthZENEvaluations,
		"search_subject_endpoint":     base + AuthZENSearchSubject,
		"search_resource_endpoint":    base + AuthZENSearchResource,
		"search_action_endpoint":      base + AuthZENSearchAction,
		"capabilities": []string{
			"urn:ambit:authzen:evaluations-semantics",
			"urn:ambit:authzen:search-paging",
			"urn:ambit:authzen:zedtoken-consistency",
			"urn:ambit:authzen:caveat-context",
			"urn:ambit:authzen:explain",
		},
	}
	if id := r.Header.Get("X-Request-ID"); id != "" {
		w.Header().Set("X-Request-ID", id)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(doc)
}
