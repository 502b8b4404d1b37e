package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ambit-authz/ambit/api"
)

// azClient calls the AuthZEN endpoints of a test server.
type azClient struct {
	t    *testing.T
	base string
}

func (c *azClient) post(path string, body any, out any) {
	c.t.Helper()
	code, b := c.do(path, body)
	if code != 200 {
		c.t.Fatalf("POST %s %v: status %d: %s", path, body, code, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		c.t.Fatalf("POST %s: %v: %s", path, err, b)
	}
}

func (c *azClient) do(path string, body any) (int, []byte) {
	c.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.raw(path, string(b))
}

func (c *azClient) raw(path, body string) (int, []byte) {
	c.t.Helper()
	code, b, _ := c.rawHeader(path, body, nil)
	return code, b
}

func (c *azClient) rawHeader(path, body string, hdr map[string]string) (int, []byte, http.Header) {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

const azSchema = `
caveat on_day(day string, resource_day string) {
	day == resource_day
}

definition user {}

definition group {
	relation member: user | group#member
}

definition document {
	relation owner: user
	relation viewer: user | user:* | group#member
	relation scheduled: user with on_day
	relation banned: user
	permission view = (viewer + owner + scheduled) - banned
	permission edit = owner
}
`

// newAZ is an env with the AuthZEN handler on a test HTTP server and a
// small data set: ana owns d1; eng members view d1; bob is in eng; d2 is
// public except for mallory; carl views d3 on the day given.
func newAZ(t *testing.T, o api.AuthZENOptions, envOpts ...func(*envOptions)) (*env, *azClient, *v1.ZedToken) {
	t.Helper()
	e := newEnv(t, envOpts...)
	e.writeSchema(azSchema)
	z := e.write(v1.RelationshipUpdate_OPERATION_TOUCH,
		"document:d1#owner@user:ana", "document:d1#viewer@group:eng#member", "group:eng#member@user:bob",
		"document:d2#viewer@user:*", "document:d2#banned@user:mallory",
		"document:d4#owner@user:ana", "document:d5#owner@user:ana", "document:d6#owner@user:ana",
		"document:d1#viewer@user:a=40b=2Ecom")
	// A caveated relationship with stored context day=monday.
	_, err := e.perms.WriteRelationships(e.ctx(), &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{{
		Operation: v1.RelationshipUpdate_OPERATION_TOUCH, Relationship: &v1.Relationship{
			Resource: obj("document:d3"), Relation: "scheduled", Subject: subj("user:carl"),
			OptionalCaveat: &v1.ContextualizedCaveat{CaveatName: "on_day", Context: mustStruct(map[string]any{"day": "monday"})},
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(e.srv.AuthZENHandler(o))
	t.Cleanup(hs.Close)
	return e, &azClient{t: t, base: hs.URL}, z
}

func mustStruct(m map[string]any) *structpb.Struct {
	s, err := structpb.NewStruct(m)
	if err != nil {
		panic(err)
	}
	return s
}

const evalD1 = `{"subject":{"type":"user","id":"ana"},"action":{"name":"view"},"resource":{"type":"document","id":"d1"}}`

// TestAuthZENBadInput: a client's mistake is a 400 whose message names the
// field, never a 500 or a stack trace.
func TestAuthZENBadInput(t *testing.T) {
	_, az, _ := newAZ(t, api.AuthZENOptions{MaxBodyBytes: 2048}, func(o *envOptions) { o.limits.MaxCaveatContextLen = 1024 })
	for _, tc := range []struct {
		name, path, body string
		want             []string
	}{
		{"malformed JSON", api.AuthZENEvaluation, `{"subject":{"type":"user",`, []string{"request body", "malformed JSON"}},
		{"not JSON", api.AuthZENEvaluation, `subject=ana`, []string{"request body", "malformed JSON"}},
		{"empty body", api.AuthZENEvaluation, ``, []string{"request body", "empty"}},
		{"two values", api.AuthZENEvaluation, evalD1 + evalD1, []string{"request body", "more than one"}},
		{"missing subject", api.AuthZENEvaluation, `{"action":{"name":"view"},"resource":{"type":"document","id":"d1"}}`, []string{"subject is required"}},
		{"missing subject.type", api.AuthZENEvaluation, `{"subject":{"id":"ana"},"action":{"name":"view"},"resource":{"type":"document","id":"d1"}}`, []string{"subject.type is required"}},
		{"subject.type not a string", api.AuthZENEvaluation, `{"subject":{"type":7,"id":"ana"},"action":{"name":"view"},"resource":{"type":"document","id":"d1"}}`, []string{"subject.type: must be a string"}},
		{"subject not an object", api.AuthZENEvaluation, `{"subject":"ana","action":{"name":"view"},"resource":{"type":"document","id":"d1"}}`, []string{"subject: must be an object"}},
		{"missing resource.id", api.AuthZENEvaluation, `{"subject":{"type":"user","id":"ana"},"action":{"name":"view"},"resource":{"type":"document"}}`, []string{"resource.id is required"}},
		{"unknown resource type", api.AuthZENEvaluation, `{"subject":{"type":"user","id":"ana"},"action":{"name":"view"},"resource":{"type":"folder","id":"d1"}}`, []string{"resource.type", `"folder" is not defined`}},
		{"unknown action", api.AuthZENEvaluation, `{"subject":{"type":"user","id":"ana"},"action":{"name":"delete"},"resource":{"type":"document","id":"d1"}}`, []string{"action.name", `no permission or relation "delete"`}},
		{"action name not an identifier", api.AuthZENEvaluation, `{"subject":{"type":"user","id":"ana"},"action":{"name":"Read File"},"resource":{"type":"document","id":"d1"}}`, []string{"action.name", "invalid relation name"}},
		{"missing action.name", api.AuthZENEvaluation, `{"subject":{"type":"user","id":"ana"},"action":{},"resource":{"type":"document","id":"d1"}}`, []string{"action.name is required"}},
		{"id with a control character", api.AuthZENEvaluation, `{"subject":{"type":"user","id":"ana"},"action":{"name":"view"},"resource":{"type":"document","id":"d\u00001"}}`, []string{"resource.id", "control character"}},
		{"subject id with a newline", api.AuthZENEvaluation, `{"subject":{"type":"user","id":"a\nb"},"action":{"name":"view"},"resource":{"type":"document","id":"d1"}}`, []string{"subject.id", "control character"}},
		{"id too long", api.AuthZENEvaluation, `{"subject":{"type":"user","id":"` + strings.Repeat("@", 400) + `"},"action":{"name":"view"},"resource":{"type":"document","id":"d1"}}`, []string{"subject.id", "limit of 1024"}},
		{"bad subject relation", api.AuthZENEvaluation, `{"subject":{"type":"group","id":"eng","properties":{"relation":"owner"}},"action":{"name":"view"},"resource":{"type":"document","id":"d1"}}`, []string{"subject.properties.relation", `no relation or permission "owner"`}},
		{"context not an object", api.AuthZENEvaluation, `{"subject":{"type":"user","id":"ana"},"action":{"name":"view"},"resource":{"type":"document","id":"d1"},"context":[1]}`, []string{"context", "expected"}},
		{"context key set twice", api.AuthZENEvaluation, `{"subject":{"type":"user","id":"ana"},"action":{"name":"view"},"resource":{"type":"document","id":"d1","properties":{"day":"x"}},"context":{"resource_day":"y"}}`, []string{"resource.properties.day", "resource_day"}},
		{"bad zedtoken in context", api.AuthZENEvaluation, `{"subject":{"type":"user","id":"ana"},"action":{"name":"view"},"resource":{"type":"document","id":"d1"},"context":{"zedtoken":"nope"}}`, []string{"context.zedtoken"}},
		{"body over the limit", api.AuthZENEvaluation, `{"subject":{"type":"user","id":"ana"},"context":{"pad":"` + strings.Repeat("x", 3000) + `"}}`, []string{"request body", "limit of 2048 bytes"}},
		{"context over the caveat context limit", api.AuthZENEvaluation, `{"subject":{"type":"user","id":"ana"},"action":{"name":"view"},"resource":{"type":"document","id":"d1","properties":{"pad":"` + strings.Repeat("x", 1500) + `"}}}`, []string{"context", "limit of 1024"}},
		{"bad semantic", api.AuthZENEvaluations, `{"options":{"evaluations_semantic":"first"},"evaluations":[{}]}`, []string{"options.evaluations_semantic"}},
		{"evaluations not an array", api.AuthZENEvaluations, `{"evaluations":{}}`, []string{"evaluations", "expected"}},
		{"page.limit zero", api.AuthZENSearchResource, `{"subject":{"type":"user","id":"ana"},"action":{"name":"view"},"resource":{"type":"document"},"page":{"limit":0}}`, []string{"page.limit"}},
		{"resource search with an id", api.AuthZENSearchResource, `{"subject":{"type":"user","id":"ana"},"action":{"name":"view"},"resource":{"type":"document","id":"d1"}}`, []string{"resource.id", "must not be given"}},
		{"malformed page.token", api.AuthZENSearchResource, `{"subject":{"type":"user","id":"ana"},"action":{"name":"view"},"resource":{"type":"document"},"page":{"token":"!!"}}`, []string{"page.token", "malformed"}},
		{"action search with an action", api.AuthZENSearchAction, `{"subject":{"type":"user","id":"ana"},"action":{"name":"view"},"resource":{"type":"document","id":"d1"}}`, []string{"action: must not be given"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b := az.raw(tc.path, tc.body)
			if code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", code, b)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(b), w) {
					t.Errorf("message %q does not mention %q", b, w)
				}
			}
			if strings.Contains(string(b), "goroutine") || strings.Contains(string(b), ".go:") {
				t.Errorf("message leaks internals: %s", b)
			}
		})
	}
	if code, b := az.raw("/access/v1/evaluation/", evalD1); code != http.StatusNotFound {
		t.Errorf("unknown path: %d %s", code, b)
	}
	req, _ := http.NewRequest(http.MethodGet, az.base+api.AuthZENEvaluation, nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET evaluation: %v %v", resp.StatusCode, err)
	}
}

// TestAuthZENPageTokenReuse: a page token only continues the search that
// issued it.
func TestAuthZENPageTokenReuse(t *testing.T) {
	_, az, _ := newAZ(t, api.AuthZENOptions{})
	first := map[string]any{"subject": map[string]any{"type": "user", "id": "ana"}, "action": map[string]any{"name": "edit"},
		"resource": map[string]any{"type": "document"}, "page": map[string]any{"limit": 2}}
	var resp struct {
		Results []map[string]any
		Page    struct {
			NextToken string `json:"next_token"`
		}
	}
	az.post(api.AuthZENSearchResource, first, &resp)
	if resp.Page.NextToken == "" || len(resp.Results) != 2 {
		t.Fatalf("first page: %+v", resp)
	}
	for _, tc := range []struct {
		name   string
		change func(m map[string]any)
	}{
		{"another action", func(m map[string]any) { m["action"] = map[string]any{"name": "view"} }},
		{"another subject", func(m map[string]any) { m["subject"] = map[string]any{"type": "user", "id": "bob"} }},
		{"a context", func(m map[string]any) { m["context"] = map[string]any{"day": "monday"} }},
		{"another endpoint", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := map[string]any{}
			for k, v := range first {
				next[k] = v
			}
			next["page"] = map[string]any{"limit": 2, "token": resp.Page.NextToken}
			path := api.AuthZENSearchResource
			if tc.change != nil {
				tc.change(next)
			} else {
				path = api.AuthZENSearchAction
				next["resource"] = map[string]any{"type": "document", "id": "d1"}
				delete(next, "action")
			}
			code, b := az.do(path, next)
			if code != http.StatusBadRequest || !strings.Contains(string(b), "page.token") {
				t.Fatalf("status %d %s, want 400 naming page.token", code, b)
			}
		})
	}
	// Unchanged, and with another limit, the token continues.
	next := map[string]any{}
	for k, v := range first {
		next[k] = v
	}
	next["page"] = map[string]any{"limit": 5, "token": resp.Page.NextToken}
	var resp2 struct {
		Results []map[string]any
		Page    struct {
			NextToken *string `json:"next_token"`
		}
	}
	az.post(api.AuthZENSearchResource, next, &resp2)
	if len(resp2.Results) != 2 || resp2.Page.NextToken == nil || *resp2.Page.NextToken != "" {
		t.Fatalf("second page: %+v", resp2)
	}
}

// TestAuthZENDecisions covers the mapping: subject sets, wildcards, caveat
// context from context and properties, CONDITIONAL, escaped ids, batches and
// their semantics, ZedTokens.
func TestAuthZENDecisions(t *testing.T) {
	_, az, z := newAZ(t, api.AuthZENOptions{})
	type dec struct {
		Decision bool           `json:"decision"`
		Context  map[string]any `json:"context"`
	}
	for _, tc := range []struct {
		name    string
		body    string
		want    bool
		missing string
	}{
		{"owner", evalD1, true, ""},
		{"group member", `{"subject":{"type":"user","id":"bob"},"action":{"name":"view"},"resource":{"type":"document","id":"d1"}}`, true, ""},
		{"subject set", `{"subject":{"type":"group","id":"eng","properties":{"relation":"member"}},"action":{"name":"view"},"resource":{"type":"document","id":"d1"}}`, true, ""},
		{"group object is not its members", `{"subject":{"type":"group","id":"eng"},"action":{"name":"view"},"resource":{"type":"document","id":"d1"}}`, false, ""},
		{"relation as action", `{"subject":{"type":"user","id":"ana"},"action":{"name":"owner"},"resource":{"type":"document","id":"d1"}}`, true, ""},
		{"no relationship", `{"subject":{"type":"user","id":"bob"},"action":{"name":"edit"},"resource":{"type":"document","id":"d1"}}`, false, ""},
		{"wildcard", `{"subject":{"type":"user","id":"zed"},"action":{"name":"view"},"resource":{"type":"document","id":"d2"}}`, true, ""},
		{"wildcard minus banned", `{"subject":{"type":"user","id":"mallory"},"action":{"name":"view"},"resource":{"type":"document","id":"d2"}}`, false, ""},
		{"id * is not a wildcard", `{"subject":{"type":"user","id":"*"},"action":{"name":"edit"},"resource":{"type":"document","id":"d1"}}`, false, ""},
		{"escaped id", `{"subject":{"type":"user","id":"a@b.com"},"action":{"name":"view"},"resource":{"type":"document","id":"d1"}}`, true, ""},
		{"escaped form is another id", `{"subject":{"type":"user","id":"a=40b=2Ecom"},"action":{"name":"view"},"resource":{"type":"document","id":"d1"}}`, false, ""},
		{"caveat without context", `{"subject":{"type":"user","id":"carl"},"action":{"name":"view"},"resource":{"type":"document","id":"d3"}}`, false, "resource_day"},
		{"caveat from context", `{"subject":{"type":"user","id":"carl"},"action":{"name":"view"},"resource":{"type":"document","id":"d3"},"context":{"resource_day":"monday"}}`, true, ""},
		{"caveat from properties", `{"subject":{"type":"user","id":"carl"},"action":{"name":"view"},"resource":{"type":"document","id":"d3","properties":{"day":"monday"}}}`, true, ""},
		{"caveat from a draft-00 member", `{"subject":{"type":"user","id":"carl"},"action":{"name":"view"},"resource":{"type":"document","id":"d3","day":"monday"}}`, true, ""},
		{"caveat false", `{"subject":{"type":"user","id":"carl"},"action":{"name":"view"},"resource":{"type":"document","id":"d3","properties":{"day":"friday"}}}`, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b, hdr := az.rawHeader(api.AuthZENEvaluation, tc.body, map[string]string{"X-Request-ID": "abc-1"})
			if code != 200 {
				t.Fatalf("status %d: %s", code, b)
			}
			var d dec
			if err := json.Unmarshal(b, &d); err != nil {
				t.Fatal(err)
			}
			if d.Decision != tc.want {
				t.Errorf("decision %v, want %v (%s)", d.Decision, tc.want, b)
			}
			miss, _ := json.Marshal(d.Context["missing_context"])
			if tc.missing != "" && !strings.Contains(string(miss), tc.missing) || tc.missing == "" && d.Context != nil {
				t.Errorf("context %v, want missing %q", d.Context, tc.missing)
			}
			if hdr.Get("X-Request-ID") != "abc-1" || hdr.Get(api.ZedTokenHeader) == "" {
				t.Errorf("headers %v", hdr)
			}
		})
	}
	// A ZedToken in the header or in context reads at least as fresh.
	for _, hdr := range []map[string]string{{api.ZedTokenHeader: z.GetToken()}, nil} {
		body := evalD1
		if hdr == nil {
			body = `{"subject":{"type":"user","id":"ana"},"action":{"name":"view"},"resource":{"type":"document","id":"d1"},"context":{"zedtoken":"` + z.GetToken() + `"}}`
		}
		if code, b, _ := az.rawHeader(api.AuthZENEvaluation, body, hdr); code != 200 || !strings.Contains(string(b), `"decision":true`) {
			t.Errorf("with ZedToken %v: %d %s", hdr, code, b)
		}
	}
	if code, b, _ := az.rawHeader(api.AuthZENEvaluation, evalD1, map[string]string{api.ZedTokenHeader: "garbage"}); code != 400 || !strings.Contains(string(b), "ZedToken header") {
		t.Errorf("bad ZedToken header: %d %s", code, b)
	}

	// Batches: defaults, items overriding them, an item's error, semantics.
	batch := func(sem string) string {
		return `{"subject":{"type":"user","id":"ana"},"action":{"name":"view"},"options":{"evaluations_semantic":"` + sem + `"},"evaluations":[
			{"resource":{"type":"document","id":"d1"}},
			{"resource":{"type":"document","id":"d2"},"subject":{"type":"user","id":"mallory"}},
			{"resource":{"type":"document","id":"d1"},"subject":{"id":"x"}},
			{"resource":{"type":"document","id":"d1"},"action":{"name":"edit"}}]}`
	}
	for _, tc := range []struct {
		sem  string
		want []bool
	}{
		{"", []bool{true, false, false, true}},
		{"execute_all", []bool{true, false, false, true}},
		{"deny_on_first_deny", []bool{true, false}},
		{"permit_on_first_permit", []bool{true}},
	} {
		var got struct{ Evaluations []dec }
		code, b := az.raw(api.AuthZENEvaluations, batch(tc.sem))
		if code != 200 || json.Unmarshal(b, &got) != nil {
			t.Fatalf("%s: %d %s", tc.sem, code, b)
		}
		if len(got.Evaluations) != len(tc.want) {
			t.Fatalf("%s: %d results, want %d: %s", tc.sem, len(got.Evaluations), len(tc.want), b)
		}
		for i, w := range tc.want {
			if got.Evaluations[i].Decision != w {
				t.Errorf("%s: [%d] = %v, want %v", tc.sem, i, got.Evaluations[i].Decision, w)
			}
		}
		if len(got.Evaluations) > 2 {
			e, _ := got.Evaluations[2].Context["error"].(map[string]any)
			if e["status"] != float64(400) || !strings.Contains(e["message"].(string), "evaluations[2].subject.type is required") {
				t.Errorf("%s: item error %v", tc.sem, got.Evaluations[2].Context)
			}
		}
	}
	// Without items, /evaluations is /evaluation.
	if code, b := az.raw(api.AuthZENEvaluations, evalD1); code != 200 || !strings.Contains(string(b), `"decision":true`) {
		t.Errorf("evaluations without items: %d %s", code, b)
	}
}

// TestAuthZENSearch: searches return complete, transitive, unescaped results
// and page to the end.
func TestAuthZENSearch(t *testing.T) {
	_, az, _ := newAZ(t, api.AuthZENOptions{})
	search := func(path string, req map[string]any, field string, limit int) []string {
		var out []string
		token := ""
		for {
			req["page"] = map[string]any{"limit": limit, "token": token}
			var resp struct {
				Results []map[string]any
				Page    struct {
					NextToken string `json:"next_token"`
				}
			}
			az.post(path, req, &resp)
			for _, r := range resp.Results {
				out = append(out, r[field].(string))
			}
			if resp.Page.NextToken == "" {
				return out
			}
			token = resp.Page.NextToken
		}
	}
	for _, limit := range []int{1, 2, 100} {
		got := search(api.AuthZENSearchResource, map[string]any{"subject": map[string]any{"type": "user", "id": "ana"}, "action": map[string]any{"name": "edit"}, "resource": map[string]any{"type": "document"}}, "id", limit)
		if strings.Join(got, ",") != "d1,d4,d5,d6" {
			t.Errorf("resource search, limit %d: %v", limit, got)
		}
		got = search(api.AuthZENSearchSubject, map[string]any{"subject": map[string]any{"type": "user"}, "action": map[string]any{"name": "view"}, "resource": map[string]any{"type": "document", "id": "d1"}}, "id", limit)
		if strings.Join(got, ",") != "a@b.com,ana,bob" {
			t.Errorf("subject search, limit %d: %v", limit, got)
		}
		got = search(api.AuthZENSearchAction, map[string]any{"subject": map[string]any{"type": "user", "id": "ana"}, "resource": map[string]any{"type": "document", "id": "d1"}}, "name", limit)
		if strings.Join(got, ",") != "owner,view,edit" {
			t.Errorf("action search, limit %d: %v", limit, got)
		}
	}
	// The wildcard comes first, with what it excludes.
	var resp struct{ Results []map[string]any }
	az.post(api.AuthZENSearchSubject, map[string]any{"subject": map[string]any{"type": "user"}, "action": map[string]any{"name": "view"}, "resource": map[string]any{"type": "document", "id": "d2"}}, &resp)
	if b, _ := json.Marshal(resp.Results); string(b) != `[{"id":"*","properties":{"excluded":["mallory"]},"type":"user"}]` {
		t.Errorf("wildcard subject search: %s", b)
	}
	// Subject sets.
	az.post(api.AuthZENSearchSubject, map[string]any{"subject": map[string]any{"type": "group", "properties": map[string]any{"relation": "member"}}, "action": map[string]any{"name": "view"}, "resource": map[string]any{"type": "document", "id": "d1"}}, &resp)
	if b, _ := json.Marshal(resp.Results); string(b) != `[{"id":"eng","properties":{"relation":"member"},"type":"group"}]` {
		t.Errorf("subject-set search: %s", b)
	}
}

func TestAuthZENConfiguration(t *testing.T) {
	_, az, _ := newAZ(t, api.AuthZENOptions{BaseURL: "https://pdp.example.com/"})
	resp, err := http.Get(az.base + api.AuthZENConfiguration)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"policy_decision_point":       "https://pdp.example.com",
		"access_evaluation_endpoint":  "https://pdp.example.com/access/v1/evaluation",
		"access_evaluations_endpoint": "https://pdp.example.com/access/v1/evaluations",
		"search_subject_endpoint":     "https://pdp.example.com/access/v1/search/subject",
		"search_resource_endpoint":    "https://pdp.example.com/access/v1/search/resource",
		"search_action_endpoint":      "https://pdp.example.com/access/v1/search/action",
	} {
		if doc[k] != v {
			t.Errorf("%s = %v, want %s", k, doc[k], v)
		}
	}
	// context.explain is announced.
	if caps, _ := doc["capabilities"].([]any); !strings.Contains(fmt.Sprint(caps...), "urn:ambit:authzen:explain") {
		t.Errorf("capabilities %v lack urn:ambit:authzen:explain", doc["capabilities"])
	}
}

// TestAuthZENAuth: the gRPC API's keys; 401 without, 403 with a wrong one.
func TestAuthZENAuth(t *testing.T) {
	_, az, _ := newAZ(t, api.AuthZENOptions{Auth: api.NewAuthenticator([]string{"s3cret"})})
	for _, tc := range []struct {
		auth string
		code int
	}{{"", 401}, {"Basic s3cret", 401}, {"Bearer nope", 403}, {"Bearer s3cret", 200}} {
		hdr := map[string]string{}
		if tc.auth != "" {
			hdr["Authorization"] = tc.auth
		}
		code, b, h := az.rawHeader(api.AuthZENEvaluation, evalD1, hdr)
		if code != tc.code {
			t.Errorf("%q: %d %s, want %d", tc.auth, code, b, tc.code)
		}
		if code == 401 && h.Get("WWW-Authenticate") == "" {
			t.Errorf("%q: 401 without WWW-Authenticate", tc.auth)
		}
	}
}

// TestAuthZENSlowBody: a body that never ends is cut off by the request's
// budget instead of holding the handler.
func TestAuthZENSlowBody(t *testing.T) {
	_, az, _ := newAZ(t, api.AuthZENOptions{Timeout: 300 * time.Millisecond})
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() { _, _ = pw.Write([]byte(`{"subject":{"type":"user",`)) }()
	req, err := http.NewRequest(http.MethodPost, az.base+api.AuthZENEvaluation, pr)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 20 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "request body") {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
}

// AuthZEN calls the lookup handlers in process, past the gRPC interceptors:
// its searches and large batches still pass the heavy-call gate, so above
// the memory high-water mark they are refused as the gRPC lookups are (429
// with Retry-After: the server is busy, the request is fine), and a single
// evaluation is still answered.
func TestAuthZENHeavyCallsGated(t *testing.T) {
	_, az, _ := newAZ(t, api.AuthZENOptions{}, func(o *envOptions) { o.limits.MemoryHighWater = 1; o.limits.HeavyBulkChecks = 1 })
	for _, tc := range []struct{ path, body string }{
		{api.AuthZENSearchResource, `{"subject":{"type":"user","id":"ana"},"action":{"name":"view"},"resource":{"type":"document"}}`},
		{api.AuthZENSearchSubject, `{"subject":{"type":"user"},"action":{"name":"view"},"resource":{"type":"document","id":"d1"}}`},
		{api.AuthZENEvaluations, `{"evaluations":[` + evalD1 + `,` + evalD1 + `]}`},
	} {
		code, body, hdr := az.rawHeader(tc.path, tc.body, nil)
		if code != http.StatusTooManyRequests || !strings.Contains(string(body), "high-water mark") || hdr.Get("Retry-After") != "1" {
			t.Errorf("%s above the high-water mark: %d (Retry-After %q) %s, want 429 naming the high-water mark, Retry-After 1", tc.path, code, hdr.Get("Retry-After"), body)
		}
	}
	if code, body := az.raw(api.AuthZENEvaluation, evalD1); code != http.StatusOK {
		t.Errorf("a single evaluation: %d %s", code, body)
	}
}

// TestAuthZENExplain: with context.explain true, a deny (and a conditional
// one) carries Explain's why-not reasons in context.reasons; a permit, a
// deny that did not ask, and explain false carry none; a value other than
// true or false is refused naming context.explain. In a batch each item
// asks for itself (the top-level context is its default).
func TestAuthZENExplain(t *testing.T) {
	_, az, _ := newAZ(t, api.AuthZENOptions{})
	eval := func(sub, act, res, ctx string) string {
		b := `{"subject":{"type":"user","id":"` + sub + `"},"action":{"name":"` + act + `"},"resource":{"type":"document","id":"` + res + `"}`
		if ctx != "" {
			b += `,"context":` + ctx
		}
		return b + "}"
	}
	type decision struct {
		Decision bool           `json:"decision"`
		Context  map[string]any `json:"context"`
	}
	for _, tc := range []struct {
		name, body string
		decision   bool
		reason     string // a reason the context must hold; "" = no reasons at all
	}{
		{"exclusion", eval("mallory", "view", "d2", `{"explain":true}`), false, "excluded by document:d2#banned@user:mallory"},
		{"missing relationship", eval("bob", "edit", "d1", `{"explain":true}`), false, "needs document:d1#owner@user:bob"},
		{"missing group membership", eval("eve", "view", "d1", `{"explain":true}`), false, "needs group:eng#member@user:eve"},
		{"missing caveat context", eval("carl", "view", "d3", `{"explain":true}`), false, "missing resource_day"},
		{"failed caveat", `{"subject":{"type":"user","id":"carl"},"action":{"name":"view"},"resource":{"type":"document","id":"d3","properties":{"day":"friday"}},"context":{"explain":true}}`,
			false, `day="monday", resource_day="friday" = false`},
		{"permit", eval("ana", "view", "d1", `{"explain":true}`), true, ""},
		{"not asked", eval("mallory", "view", "d2", ""), false, ""},
		{"explain false", eval("mallory", "view", "d2", `{"explain":false}`), false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b := az.raw(api.AuthZENEvaluation, tc.body)
			var d decision
			if code != http.StatusOK || json.Unmarshal(b, &d) != nil {
				t.Fatalf("status %d: %s", code, b)
			}
			reasons, has := d.Context["reasons"].([]any)
			if d.Decision != tc.decision || has != (tc.reason != "") {
				t.Fatalf("got %s, want decision %v with reasons %v", b, tc.decision, tc.reason != "")
			}
			if tc.reason != "" && !strings.Contains(fmt.Sprint(reasons...), tc.reason) {
				t.Errorf("reasons %q lack %q", reasons, tc.reason)
			}
		})
	}
	if code, b := az.raw(api.AuthZENEvaluation, eval("mallory", "view", "d2", `{"explain":"yes"}`)); code != http.StatusBadRequest || !strings.Contains(string(b), "context.explain") {
		t.Errorf("explain \"yes\": %d %s, want 400 naming context.explain", code, b)
	}

	batch := `{"subject":{"type":"user","id":"bob"},"resource":{"type":"document","id":"d1"},"context":{"explain":true},"options":{"evaluations_semantic":"%s"},
	"evaluations":[{"action":{"name":"view"}},{"action":{"name":"edit"}},{"subject":{"type":"user","id":"mallory"},"action":{"name":"view"},"resource":{"type":"document","id":"d2"}},
	{"subject":{"type":"user","id":"mallory"},"action":{"name":"view"},"resource":{"type":"document","id":"d2"},"context":{}}]}`
	for _, sem := range []string{"execute_all", "deny_on_first_deny"} {
		code, b := az.raw(api.AuthZENEvaluations, fmt.Sprintf(batch, sem))
		var got struct{ Evaluations []decision }
		if code != http.StatusOK || json.Unmarshal(b, &got) != nil {
			t.Fatalf("%s: status %d: %s", sem, code, b)
		}
		want := []string{"", "needs document:d1#owner@user:bob", "excluded by document:d2#banned@user:mallory", ""}
		if sem == "deny_on_first_deny" {
			want = want[:2]
		}
		if len(got.Evaluations) != len(want) {
			t.Fatalf("%s: %d results, want %d: %s", sem, len(got.Evaluations), len(want), b)
		}
		for i, w := range want {
			reasons, has := got.Evaluations[i].Context["reasons"].([]any)
			if has != (w != "") || (w != "" && !strings.Contains(fmt.Sprint(reasons...), w)) {
				t.Errorf("%s: evaluations[%d] = %+v, want reasons holding %q", sem, i, got.Evaluations[i], w)
			}
		}
	}
}

// TestAuthZENItemZedToken: in /evaluations an item's own context.zedtoken
// counts: the batch is read at least as fresh as the freshest token of the
// header, the request's context and every item (it was ignored, so a batch
// inside the revision quantum missed the write the item's token named); a
// malformed one is 400 naming the item.
func TestAuthZENItemZedToken(t *testing.T) {
	e, az, _ := newAZ(t, api.AuthZENOptions{}, func(o *envOptions) { o.limits.RevisionQuantum = time.Hour })
	batch := func(itemCtx string) (int, string) {
		code, b := az.raw(api.AuthZENEvaluations, `{"subject":{"type":"user","id":"eve"},"action":{"name":"view"},"evaluations":[`+
			`{"resource":{"type":"document","id":"d1"}},{"resource":{"type":"document","id":"d1"}`+itemCtx+`}]}`)
		return code, string(b)
	}
	// The first minimize_latency read pins a revision for the quantum.
	if code, b := batch(""); code != 200 || strings.Count(b, `"decision":false`) != 2 {
		t.Fatalf("before the write: %d %s", code, b)
	}
	z := e.write(v1.RelationshipUpdate_OPERATION_TOUCH, "document:d1#viewer@user:eve")
	if code, b := batch(`,"context":{"zedtoken":"` + z.GetToken() + `"}`); code != 200 || strings.Count(b, `"decision":true`) != 2 {
		t.Errorf("an item's ZedToken of the write: %d %s, want both true", code, b)
	}
	if code, b := batch(`,"context":{"zedtoken":"nope"}`); code != 400 || !strings.Contains(b, "evaluations[1].context.zedtoken") {
		t.Errorf("a malformed item ZedToken: %d %s, want 400 naming evaluations[1].context.zedtoken", code, b)
	}
}
