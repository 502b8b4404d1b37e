package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ambit-authz/ambit/api"
	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/internal/conformance"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
	"github.com/ambit-authz/ambit/validation"
	"github.com/ambit-authz/ambit/validation/oracle"
	"github.com/ambit-authz/ambit/validation/remote"
)

// TestAuthZENConformanceOracle loads every shared conformance file into one
// server and runs validation/oracle over its AuthZEN endpoints (azAPI)
// with the authzed v1 API as the reference: the file's assertions and
// validation map hold through evaluation and search/subject, and
// evaluation, evaluations, search/resource, search/subject and
// search/action agree with CheckPermission for every resource, permission
// and subject the file mentions. Searches page with limit 2 and with the
// server's default limit.
func TestAuthZENConformanceOracle(t *testing.T) {
	files := conformance.Files(t)
	e := newEnv(t, func(o *envOptions) { o.limits.RevisionQuantum = -1 })
	hs := httptest.NewServer(e.srv.AuthZENHandler(api.AuthZENOptions{}))
	t.Cleanup(hs.Close)
	az := azAPI{base: hs.URL}
	c := remote.NewClient(e.conn)
	loader := remote.New(c, remote.Options{})
	opts := oracle.Options{Oracle: true, Reference: remote.API{C: c, Consistency: full()}, Definite: true, PageSizes: []int{2, 0}}
	comparisons := 0
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := validation.Parse(path, data)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range docs {
			name := fmt.Sprintf("%s#%d", filepath.Base(path), f.Doc)
			if _, err := loader.Run(e.ctx(), f); err != nil {
				t.Fatalf("%s: loading: %v", name, err)
			}
			sch, err := schema.Compile(f.Name, f.Schema)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := oracle.Run(e.ctx(), az, f, sch, opts)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for _, fl := range rep.Failures {
				t.Errorf("AuthZEN: %s", fl)
			}
			comparisons += rep.Oracle
		}
	}
	t.Logf("AuthZEN oracle over %d files: %d comparisons", len(files), comparisons)
	if comparisons == 0 {
		t.Fatal("the oracle compared nothing")
	}
}

// azAPI is validation/oracle's AuthZEN adapter: Check is evaluation,
// CheckBulk evaluations, LookupResources search/resource, LookupSubjects
// search/subject and SubjectPermissions search/action (searches list
// definite answers only: oracle.Options.Definite). AuthZEN has no Expand
// and no ResourceAccess.
type azAPI struct{ base string }

var _ oracle.API = azAPI{}

// azSubject is the AuthZEN form of a subject; an empty ID leaves id out
// (a search's subject kind).
func azSubject(s tuple.SubjectRef) map[string]any {
	m := map[string]any{"type": s.Type}
	if s.ID != "" {
		m["id"] = s.ID
	}
	if s.Relation != "" {
		m["properties"] = map[string]any{"relation": s.Relation}
	}
	return m
}

func azResource(o tuple.ObjectRef) map[string]any {
	m := map[string]any{"type": o.Type}
	if o.ID != "" {
		m["id"] = o.ID
	}
	return m
}

func azEvaluationOf(q oracle.Query) map[string]any {
	ev := map[string]any{"subject": azSubject(q.Subject), "action": map[string]any{"name": q.Permission}, "resource": azResource(q.Resource)}
	if q.Context != nil {
		ev["context"] = q.Context
	}
	return ev
}

// azDecisionJSON is a decision as the endpoints send it.
type azDecisionJSON struct {
	Decision bool `json:"decision"`
	Context  struct {
		Missing []string       `json:"missing_context"`
		Error   map[string]any `json:"error"`
	} `json:"context"`
}

func (d azDecisionJSON) answer() oracle.Answer {
	switch {
	case d.Context.Error != nil:
		return oracle.Answer{Err: fmt.Errorf("AuthZEN: %v", d.Context.Error)}
	case d.Decision:
		return oracle.Answer{Permissionship: engine.HasPermission}
	case d.Context.Missing != nil:
		m := slices.Clone(d.Context.Missing)
		slices.Sort(m)
		return oracle.Answer{Permissionship: engine.ConditionalPermission, Missing: m}
	}
	return oracle.Answer{Permissionship: engine.NoPermission}
}

// post sends body to path and decodes the 200 answer into out.
func (a azAPI) post(ctx context.Context, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s %s: status %d: %s", path, b, resp.StatusCode, rb)
	}
	if err := json.Unmarshal(rb, out); err != nil {
		return fmt.Errorf("POST %s: %w: %s", path, err, rb)
	}
	return nil
}

// Check implements oracle.API with evaluation.
func (a azAPI) Check(ctx context.Context, q oracle.Query) oracle.Answer {
	var d azDecisionJSON
	if err := a.post(ctx, api.AuthZENEvaluation, azEvaluationOf(q), &d); err != nil {
		return oracle.Answer{Err: err}
	}
	return d.answer()
}

// CheckBulk implements oracle.API with one evaluations call.
func (a azAPI) CheckBulk(ctx context.Context, qs []oracle.Query) ([]oracle.Answer, error) {
	items := make([]any, len(qs))
	for i, q := range qs {
		items[i] = azEvaluationOf(q)
	}
	var got struct {
		Evaluations []azDecisionJSON `json:"evaluations"`
	}
	if err := a.post(ctx, api.AuthZENEvaluations, map[string]any{"evaluations": items}, &got); err != nil {
		return nil, err
	}
	out := make([]oracle.Answer, len(got.Evaluations))
	for i, d := range got.Evaluations {
		out[i] = d.answer()
	}
	return out, nil
}

// search pages through a search, limit results a page (0: the server's
// default), and returns every result.
func (a azAPI) search(ctx context.Context, path string, req map[string]any, limit int) ([]map[string]any, error) {
	var out []map[string]any
	token := ""
	for pages := 0; ; pages++ {
		if pages > 10_000 {
			return nil, fmt.Errorf("%s: more than 10,000 pages", path)
		}
		page := map[string]any{"token": token}
		if limit > 0 {
			page["limit"] = limit
		}
		req["page"] = page
		var resp struct {
			Results []map[string]any `json:"results"`
			Page    struct {
				NextToken *string `json:"next_token"`
			} `json:"page"`
		}
		if err := a.post(ctx, path, req, &resp); err != nil {
			return nil, err
		}
		out = append(out, resp.Results...)
		switch {
		case resp.Page.NextToken == nil:
			return nil, fmt.Errorf("%s: no page.next_token", path)
		case *resp.Page.NextToken == "":
			return out, nil
		}
		token = *resp.Page.NextToken
	}
}

// LookupResources implements oracle.API with search/resource, page results
// a page.
func (a azAPI) LookupResources(ctx context.Context, typ, perm string, subj tuple.SubjectRef, page int) ([]engine.LookupResult, error) {
	rs, err := a.search(ctx, api.AuthZENSearchResource, map[string]any{"subject": azSubject(subj), "action": map[string]any{"name": perm},
		"resource": map[string]any{"type": typ}}, page)
	if err != nil {
		return nil, err
	}
	out := make([]engine.LookupResult, len(rs))
	for i, r := range rs {
		out[i] = engine.LookupResult{ID: fmt.Sprint(r["id"]), Permissionship: engine.HasPermission}
	}
	return out, nil
}

// LookupSubjects implements oracle.API with search/subject, two results a
// page; a wildcard's excluded ids are in properties.excluded.
func (a azAPI) LookupSubjects(ctx context.Context, res tuple.ObjectRef, perm string, kind tuple.SubjectRef) ([]engine.LookupResult, error) {
	rs, err := a.search(ctx, api.AuthZENSearchSubject, map[string]any{"subject": azSubject(kind), "action": map[string]any{"name": perm},
		"resource": azResource(res)}, 2)
	if err != nil {
		return nil, err
	}
	out := make([]engine.LookupResult, len(rs))
	for i, r := range rs {
		out[i] = engine.LookupResult{ID: fmt.Sprint(r["id"]), Permissionship: engine.HasPermission}
		if props, ok := r["properties"].(map[string]any); ok {
			if ex, ok := props["excluded"].([]any); ok {
				for _, id := range ex {
					out[i].Excluded = append(out[i].Excluded, fmt.Sprint(id))
				}
			}
		}
	}
	return out, nil
}

// SubjectPermissions implements oracle.API with search/action, two results
// a page.
func (a azAPI) SubjectPermissions(ctx context.Context, res tuple.ObjectRef, subj tuple.SubjectRef) ([]engine.PermissionResult, error) {
	rs, err := a.search(ctx, api.AuthZENSearchAction, map[string]any{"subject": azSubject(subj), "resource": azResource(res)}, 2)
	if err != nil {
		return nil, err
	}
	out := make([]engine.PermissionResult, len(rs))
	for i, r := range rs {
		out[i] = engine.PermissionResult{Permission: fmt.Sprint(r["name"]), Permissionship: engine.HasPermission}
	}
	return out, nil
}

// ResourceAccess implements oracle.API: AuthZEN has none.
func (azAPI) ResourceAccess(context.Context, tuple.ObjectRef, []string, string) ([]engine.Access, error) {
	return nil, fmt.Errorf("AuthZEN ResourceAccess: %w", errors.ErrUnsupported)
}

// Expand implements oracle.API: AuthZEN has none.
func (azAPI) Expand(context.Context, tuple.ObjectRef, string) (*engine.ExpandNode, error) {
	return nil, fmt.Errorf("AuthZEN Expand: %w", errors.ErrUnsupported)
}

// GaveUp implements oracle.API: a depth or result limit is a 400 naming it.
func (azAPI) GaveUp(err error) bool {
	return err != nil && strings.Contains(err.Error(), "status 400") && (strings.Contains(err.Error(), "depth") || strings.Contains(err.Error(), "more than"))
}
