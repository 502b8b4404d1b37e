package scim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Bulk (RFC 7644 §3.7): one POST /Bulk carries up to
// Handler.MaxBulkOperations creates, replaces, patches and deletes, each
// run as its own request (its own raft command, or several for the DELETE
// of a large group: a bulk request is not atomic, as the RFC has it), in
// order, with "bulkId:X" in an operation's path or data standing for the id
// of the resource the operation with bulkId X created. An operation whose
// reference is not resolved yet waits for the operation that resolves it;
// one whose reference can never be (unknown, failed, or circular) fails
// with 409. failOnErrors stops the request after that many failures.

// The bulk messages' schemas.
const (
	BulkRequestSchema  = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
	BulkResponseSchema = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
)

// DefaultMaxBulkOperations is Handler.MaxBulkOperations's default.
const DefaultMaxBulkOperations = 1000

func (h *Handler) maxBulk() int {
	if h.MaxBulkOperations > 0 {
		return h.MaxBulkOperations
	}
	return DefaultMaxBulkOperations
}

func (h *Handler) maxBody() int64 {
	if h.MaxBody > 0 {
		return h.MaxBody
	}
	return DefaultMaxBody
}

type bulkOp struct {
	Method  string `json:"method"`
	BulkID  string `json:"bulkId,omitempty"`
	Version string `json:"version,omitempty"`
	Path    string `json:"path"`
	Data    any    `json:"data,omitempty"`
}

type bulkRequest struct {
	Schemas      []string `json:"schemas"`
	FailOnErrors int      `json:"failOnErrors"`
	Operations   []bulkOp `json:"Operations"`
}

// bulkRef is the prefix of a reference to another operation's resource.
const bulkRef = "bulkId:"

// refs returns the bulkIds an operation's path and data refer to.
func (op bulkOp) refs() []string {
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			if id, ok := strings.CutPrefix(v, bulkRef); ok {
				out = append(out, id)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	for _, part := range strings.Split(op.Path, "/") {
		walk(part)
	}
	walk(op.Data)
	return out
}

// resolve returns v with every "bulkId:X" replaced by ids[X].
func resolve(v any, ids map[string]string) any {
	switch v := v.(type) {
	case string:
		if id, ok := strings.CutPrefix(v, bulkRef); ok {
			return ids[id]
		}
		return v
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = resolve(e, ids)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = resolve(e, ids)
		}
		return out
	}
	return v
}

// check returns what is wrong with an operation's shape, or nil.
func (op bulkOp) check() *Error {
	method := strings.ToUpper(op.Method)
	parts := strings.Split(strings.Trim(op.Path, "/"), "/")
	kindOK := parts[0] == string(Users) || parts[0] == string(Groups)
	switch {
	case method != http.MethodPost && method != http.MethodPut && method != http.MethodPatch && method != http.MethodDelete:
		return errorf(http.StatusBadRequest, "invalidValue", "method %q is not POST, PUT, PATCH or DELETE", op.Method)
	case method == http.MethodPost && (op.BulkID == "" || len(parts) != 1 || !kindOK):
		return errorf(http.StatusBadRequest, "invalidValue", "a POST needs a bulkId and the path /Users or /Groups, not %q", op.Path)
	case method != http.MethodPost && (len(parts) != 2 || !kindOK || parts[1] == ""):
		return errorf(http.StatusBadRequest, "invalidValue", "a %s needs the path /Users/ID or /Groups/ID, not %q", method, op.Path)
	case method != http.MethodDelete && op.Data == nil:
		return errorf(http.StatusBadRequest, "invalidValue", "a %s needs data", method)
	}
	return nil
}

func (h *Handler) bulk(w http.ResponseWriter, r *http.Request) error {
	var req bulkRequest
	if err := h.decodeBody(r, &req); err != nil {
		return err
	}
	if !containsFold(req.Schemas, BulkRequestSchema) {
		return errorf(http.StatusBadRequest, "invalidSyntax", "a bulk request's schemas must list %s", BulkRequestSchema)
	}
	if len(req.Operations) > h.maxBulk() {
		return errorf(http.StatusRequestEntityTooLarge, "", "%d operations, more than the limit of %d in one bulk request (maxOperations)", len(req.Operations), h.maxBulk())
	}
	defined := map[string]int{} // bulkId -> its operation
	for i, op := range req.Operations {
		if op.BulkID == "" {
			continue
		}
		if _, dup := defined[op.BulkID]; dup {
			return errorf(http.StatusBadRequest, "invalidValue", "Operations[%d]: bulkId %q is used twice", i, op.BulkID)
		}
		defined[op.BulkID] = i
	}
	results := make([]map[string]any, len(req.Operations))
	ids := map[string]string{}    // bulkId -> the id its POST created
	failed := map[string]string{} // bulkId -> why it has no id
	errs := 0
	fail := func(i int, e *Error) {
		results[i] = bulkResult(req.Operations[i], "", "", e.Status, errorBody(e))
		errs++
		if id := req.Operations[i].BulkID; id != "" {
			failed[id] = fmt.Sprintf("the operation with bulkId %q failed (%d)", id, e.Status)
		}
	}
	stop := func() bool { return req.FailOnErrors > 0 && errs >= req.FailOnErrors }
	pending := make([]int, 0, len(req.Operations))
	for i, op := range req.Operations {
		if e := op.check(); e != nil {
			fail(i, e)
			continue
		}
		pending = append(pending, i)
	}
	for len(pending) > 0 && !stop() {
		var wait []int
		for _, i := range pending {
			if stop() {
				break
			}
			op := req.Operations[i]
			ready, bad := true, ""
			for _, ref := range op.refs() {
				switch _, ok := ids[ref]; {
				case ok:
				case failed[ref] != "":
					bad = failed[ref]
				case !hasKey(defined, ref):
					bad = fmt.Sprintf("no operation has bulkId %q", ref)
				default:
					ready = false
				}
			}
			switch {
			case bad != "":
				fail(i, errorf(http.StatusConflict, "invalidValue", "%s", bad))
			case !ready:
				wait = append(wait, i)
			default:
				h.bulkRun(r.Context(), req.Operations[i], ids, &results[i], &errs, failed)
			}
		}
		if len(wait) == len(pending) { // no progress: the references are circular
			for _, i := range wait {
				fail(i, errorf(http.StatusConflict, "invalidValue", "bulkId references that depend on each other cannot be resolved"))
			}
			break
		}
		pending = wait
	}
	out := make([]any, 0, len(results))
	for _, res := range results {
		if res != nil { // nil: not run (failOnErrors was reached)
			out = append(out, res)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"schemas": []string{BulkResponseSchema}, "Operations": out})
	return nil
}

func hasKey(m map[string]int, k string) bool {
	_, ok := m[k]
	return ok
}

// bulkRun runs one operation as a request to the handler.
func (h *Handler) bulkRun(ctx context.Context, op bulkOp, ids map[string]string, result *map[string]any, errs *int, failed map[string]string) {
	path := "/" + strings.Trim(op.Path, "/")
	parts := strings.Split(path, "/")
	for i, p := range parts {
		parts[i], _ = resolve(p, ids).(string)
	}
	path = strings.Join(parts, "/")
	var body []byte
	if op.Data != nil {
		body, _ = json.Marshal(resolve(op.Data, ids))
	}
	req, err := http.NewRequestWithContext(ctx, strings.ToUpper(op.Method), strings.TrimSuffix(h.Prefix, "/")+path, bytes.NewReader(body))
	if err != nil {
		*result = bulkResult(op, "", "", http.StatusBadRequest, errorBody(errorf(http.StatusBadRequest, "invalidValue", "path %q: %v", op.Path, err)))
		*errs++
		return
	}
	req.Header.Set("Content-Type", "application/scim+json")
	if op.Version != "" {
		req.Header.Set("If-Match", op.Version)
	}
	rec := &recorder{header: http.Header{}}
	h.ServeHTTP(rec, req)
	var resp map[string]any
	_ = json.Unmarshal(rec.body.Bytes(), &resp)
	if rec.status >= 400 {
		*result = bulkResult(op, "", "", rec.status, resp)
		*errs++
		if op.BulkID != "" {
			failed[op.BulkID] = fmt.Sprintf("the operation with bulkId %q failed (%d)", op.BulkID, rec.status)
		}
		return
	}
	location := rec.header.Get("Location")
	if location == "" && strings.ToUpper(op.Method) != http.MethodDelete {
		location = strings.TrimSuffix(h.Prefix, "/") + path
	}
	if id, _ := resp["id"].(string); op.BulkID != "" && id != "" {
		ids[op.BulkID] = id
	}
	*result = bulkResult(op, location, rec.header.Get("ETag"), rec.status, nil)
}

func bulkResult(op bulkOp, location, version string, status int, response map[string]any) map[string]any {
	out := map[string]any{"method": strings.ToUpper(op.Method), "status": strconv.Itoa(status)}
	if op.BulkID != "" {
		out["bulkId"] = op.BulkID
	}
	if location != "" {
		out["location"] = location
	}
	if version != "" {
		out["version"] = version
	}
	if response != nil {
		out["response"] = response
	}
	return out
}

// errorBody is e as a SCIM error body.
func errorBody(e *Error) map[string]any {
	body := map[string]any{"schemas": []string{ErrorSchema}, "status": strconv.Itoa(e.Status), "detail": e.Detail}
	if e.ScimType != "" {
		body["scimType"] = e.ScimType
	}
	return body
}

// recorder is the http.ResponseWriter a bulk operation writes to.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
