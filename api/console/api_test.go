package console_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/api"
	"github.com/ambit-authz/ambit/api/apitoken"
)

// call makes one /ui/api/ request: a GET when body is "", else a JSON POST.
func (e *env) call(t *testing.T, key, path, body string) (int, map[string]any) {
	t.Helper()
	method := http.MethodGet
	var rd io.Reader
	if body != "" {
		method, rd = http.MethodPost, strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+"api/"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("%s %s: HTTP %d, not JSON: %q", method, path, resp.StatusCode, data)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("%s %s: Cache-Control %q, want no-store", method, path, resp.Header.Get("Cache-Control"))
	}
	return resp.StatusCode, out
}

// A request that reaches the gRPC API for every endpoint (a valid body or
// query), keyed by "METHOD path" as Handler.Endpoints lists them.
var validCalls = map[string]struct{ path, body string }{
	"GET whoami":               {"whoami", ""},
	"GET schema":               {"schema", ""},
	"POST schema/check":        {"schema/check", mustJSON(map[string]string{"schema": testSchema})},
	"POST schema/write":        {"schema/write", mustJSON(map[string]string{"schema": testSchema})},
	"GET relationships":        {"relationships?resource_type=document", ""},
	"POST relationships/write": {"relationships/write", `{"operation":"touch","relationships":["document:d1#viewer@user:zed"]}`},
	"POST import":              {"import", `{"file":"relationships: document:d1#viewer@user:zed\n"}`},
	"POST check":               {"check", `{"resource":"document:d1","permission":"view","subject":"user:ana"}`},
	"GET access":               {"access?resource=document:d1&subject_type=user", ""},
	"GET watch":                {"watch?wait=1", ""},
	"GET cluster":              {"cluster", ""},
}

// everyEndpoint returns a valid call for each endpoint the handler has,
// failing t for one this test does not know (a new endpoint must be added
// to validCalls, and so to the auth tests).
func everyEndpoint(t *testing.T, e *env) map[string]struct{ path, body string } {
	out := map[string]struct{ path, body string }{}
	for _, ep := range e.h.Endpoints() {
		c, ok := validCalls[ep]
		if !ok {
			t.Fatalf("endpoint %q has no entry in validCalls", ep)
		}
		out[ep] = c
	}
	return out
}

// Every /ui/api/ call is refused without a credential (401) and with a
// wrong one; the page's own files are public (they hold no data).
func TestNoCredentialRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	for ep, c := range everyEndpoint(t, e) {
		code, out := e.call(t, "", c.path, c.body)
		if code != http.StatusUnauthorized || out["code"] != "Unauthenticated" {
			t.Errorf("%s without a credential: HTTP %d %v, want 401 Unauthenticated", ep, code, out)
		}
		if code, out := e.call(t, "wrong-key", c.path, c.body); code != http.StatusUnauthorized && code != http.StatusForbidden {
			t.Errorf("%s with a wrong credential: HTTP %d %v, want 401 or 403", ep, code, out)
		}
	}
	for _, f := range []string{"", "app.js", "style.css"} {
		resp, err := http.Get(e.url + f)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") == "" || resp.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("GET /ui/%s: HTTP %d, CSP %q, X-Frame-Options %q", f, resp.StatusCode, resp.Header.Get("Content-Security-Policy"), resp.Header.Get("X-Frame-Options"))
		}
	}
}

// A read-and-check credential is refused every endpoint that writes (403,
// naming the scope) and allowed the others.
func TestScopes(t *testing.T) {
	e := newEnv(t, envOptions{})
	writeSchema(t, e, testSchema)
	writes := []string{"POST schema/write", "POST relationships/write", "POST import"}
	for ep, c := range everyEndpoint(t, e) {
		code, out := e.call(t, readerKey, c.path, c.body)
		if slices.Contains(writes, ep) {
			if code != http.StatusForbidden || !strings.Contains(out["error"].(string), "scope") {
				t.Errorf("%s as a reader: HTTP %d %v, want 403 naming the scope", ep, code, out)
			}
			continue
		}
		if code != http.StatusOK {
			t.Errorf("%s as a reader: HTTP %d %v, want 200", ep, code, out)
		}
	}
	_, who := e.call(t, readerKey, "whoami", "")
	can := who["can"].(map[string]any)
	if can["read"] != true || can["check"] != true || can["write"] != false || can["schema"] != false {
		t.Errorf("whoami as a reader: %v", who)
	}
}

// allowAll is an Authenticator that lets every request through as an
// admin: a console behind it must still get nothing from the node without
// a credential, because it reaches the node only through the gRPC API with
// the caller's own credential.
type allowAll struct{}

func (allowAll) Authenticate(string) (api.Caller, error) { return api.Caller{Anonymous: true}, nil }
func (allowAll) AuthorizeHTTP(*http.Request, apitoken.Scope) (api.Caller, error) {
	return api.Caller{Anonymous: true}, nil
}

func TestNoBypassOfTheGRPCAuth(t *testing.T) {
	e := newEnv(t, envOptions{auth: allowAll{}})
	writeSchema(t, e, testSchema)
	for ep, c := range everyEndpoint(t, e) {
		switch ep {
		case "GET whoami": // asks the Authenticator only
			continue
		case "GET cluster": // the test's Cluster reads the node directly; serve's calls the cluster service with the caller's key
			continue
		}
		code, out := e.call(t, "", c.path, c.body)
		if code != http.StatusUnauthorized {
			t.Errorf("%s without a credential, the console letting it through: HTTP %d %v; the gRPC API must refuse it (401)", ep, code, out)
		}
		if code, out := e.call(t, adminKey, c.path, c.body); code != http.StatusOK {
			t.Errorf("%s with the admin key: HTTP %d %v", ep, code, out)
		}
	}
}

// Console calls are gRPC calls: they show in the gRPC metrics.
func TestCallsAreCountedAsGRPC(t *testing.T) {
	e := newEnv(t, envOptions{})
	writeSchema(t, e, testSchema)
	count := func() float64 {
		mfs, err := e.srv.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "ambit_grpc_requests_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "method" && l.GetValue() == "/ambit.v1.AccessService/Explain" {
						return m.GetCounter().GetValue()
					}
				}
			}
		}
		return 0
	}
	before := count()
	if code, out := e.call(t, adminKey, "check", validCalls["POST check"].body); code != 200 {
		t.Fatalf("check: HTTP %d %v", code, out)
	}
	if after := count(); after != before+1 {
		t.Errorf("Explain calls counted %v before a console check and %v after, want one more", before, after)
	}
}

// The check endpoint's graph for grants, denials, exclusions and caveats.
func TestCheckGraph(t *testing.T) {
	e := newEnv(t, envOptions{})
	writeSchema(t, e, testSchema+`

caveat on_net(ip string) {
	ip == "10.0.0.1"
}

definition report {
	relation reader: user with on_net | user:*
	relation owner: user
	permission read = reader + owner
}`)
	write(t, e, append(testRelationships, `report:r1#reader@user:kim[on_net]`, `report:r2#reader@user:*`)...)
	type edge struct{ from, to, state string }
	for _, c := range []struct {
		name, req string
		answer    string
		want      []edge // edges that must be drawn
		none      string // a state no edge may have
		all       bool
	}{
		{name: "grant through a group and an arrow", req: `"resource":"document:d1","permission":"view","subject":"user:ana"`, answer: "HAS",
			want: []edge{{"user:ana", "group:lab#member", "grant"}, {"group:lab#member", "folder:f1#viewer", "grant"},
				{"folder:f1#viewer", "folder:f1#view", "grant"}, {"folder:f1#view", "document:d1#view", "grant"}}, none: "missing"},
		{name: "grant, every route", req: `"resource":"document:d1","permission":"view","subject":"user:ana","all":true`, answer: "HAS",
			want: []edge{{"folder:f1#view", "document:d1#view", "grant"}, {"user:ana", "document:d1#viewer", "missing"}}},
		{name: "denied: no route", req: `"resource":"document:d1","permission":"view","subject":"user:eve"`, answer: "NO",
			want: []edge{{"user:eve", "document:d1#viewer", "missing"}, {"user:eve", "folder:f1#viewer", "missing"}, {"user:eve", "group:lab#member", "missing"}}, none: "grant"},
		{name: "denied by the exclusion", req: `"resource":"document:d1","permission":"view","subject":"user:dan"`, answer: "NO",
			want: []edge{{"user:dan", "document:d1#viewer", "grant"}, {"document:d1#viewer", "document:d1#view", "failed"},
				{"document:d1#banned", "document:d1#view", "excluded"}, {"user:dan", "document:d1#banned", "excluded"}}},
		{name: "caveat without its context", req: `"resource":"report:r1","permission":"read","subject":"user:kim"`, answer: "CONDITIONAL",
			want: []edge{{"user:kim", "report:r1#reader", "grant"}, {"report:r1#reader", "report:r1#read", "grant"}}},
		{name: "caveat with its context", req: `"resource":"report:r1","permission":"read","subject":"user:kim","context":"{\"ip\": \"10.0.0.1\"}"`, answer: "HAS",
			want: []edge{{"user:kim", "report:r1#reader", "grant"}}},
		{name: "caveat false", req: `"resource":"report:r1","permission":"read","subject":"user:kim","context":"{\"ip\": \"10.9.9.9\"}"`, answer: "NO",
			want: []edge{{"user:kim", "report:r1#reader", "failed"}}, none: "grant"},
		{name: "wildcard", req: `"resource":"report:r2","permission":"read","subject":"user:lee"`, answer: "HAS",
			want: []edge{{"user:*", "report:r2#reader", "grant"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out := e.call(t, adminKey, "check", "{"+c.req+"}")
			if code != 200 {
				t.Fatalf("HTTP %d %v", code, out)
			}
			if out["permissionship"] != c.answer {
				t.Errorf("answer %v, want %s", out["permissionship"], c.answer)
			}
			g := out["graph"].(map[string]any)
			var drawn []edge
			nodes := map[string]bool{}
			for _, n := range g["nodes"].([]any) {
				nodes[n.(map[string]any)["id"].(string)] = true
			}
			for _, x := range g["edges"].([]any) {
				m := x.(map[string]any)
				d := edge{m["from"].(string), m["to"].(string), m["state"].(string)}
				drawn = append(drawn, d)
				if !nodes[d.from] || !nodes[d.to] {
					t.Errorf("edge %v has an end that is not a node", d)
				}
				if c.none != "" && d.state == c.none {
					t.Errorf("edge %v: no edge may be %s here", d, c.none)
				}
			}
			for _, w := range c.want {
				if !slices.Contains(drawn, w) {
					t.Errorf("no edge %v; drawn: %v", w, drawn)
				}
			}
			if !strings.HasPrefix(out["text"].(string), strings.Split(strings.Split(c.req, `"resource":"`)[1], `"`)[0]) {
				t.Errorf("text %q", out["text"])
			}
		})
	}
}

// Check before write: compile errors at their place, and changes that
// would orphan stored relationships, as the server's schema guard refuses
// them; the server indeed refuses each.
func TestSchemaCheck(t *testing.T) {
	e := newEnv(t, envOptions{})
	writeSchema(t, e, testSchema)
	write(t, e, testRelationships...)
	for _, c := range []struct {
		name, schema string
		line, col    int
		msg          string
	}{
		{name: "compile error", schema: "definition user {}\n\ndefinition doc {\n  relation viewer: usr\n}", line: 4, col: 20, msg: "usr"},
		{name: "removes a definition in use", schema: strings.ReplaceAll(strings.Replace(testSchema, "definition group {\n\trelation member: user | group#member\n}", "", 1), "user | group#member", "user"),
			line: 1, col: 1, msg: "removes definition group"},
		{name: "removes a relation in use", schema: strings.Replace(strings.Replace(testSchema, "\trelation banned: user\n", "", 1), " - banned", "", 1),
			line: 12, col: 12, msg: "removes relation document#banned"},
		{name: "removes a subject type in use", schema: strings.Replace(testSchema, "relation viewer: user | group#member\n\tpermission view = viewer", "relation viewer: user\n\tpermission view = viewer", 1),
			line: 8, col: 11, msg: "no longer allows group#member on folder#viewer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.schema == testSchema {
				t.Fatal("the test's replacement changed nothing")
			}
			code, out := e.call(t, adminKey, "schema/check", mustJSON(map[string]string{"schema": c.schema}))
			if code != 200 {
				t.Fatalf("HTTP %d %v", code, out)
			}
			if out["ok"] != false {
				t.Fatalf("ok %v, want false", out["ok"])
			}
			ps := out["problems"].([]any)
			found := false
			for _, x := range ps {
				p := x.(map[string]any)
				if strings.Contains(p["message"].(string), c.msg) {
					found = true
					if int(p["line"].(float64)) != c.line || int(p["col"].(float64)) != c.col {
						t.Errorf("problem %v, want it at %d:%d", p, c.line, c.col)
					}
				}
			}
			if !found {
				t.Errorf("no problem says %q: %v", c.msg, ps)
			}
			if code, _ := e.call(t, adminKey, "schema/write", mustJSON(map[string]string{"schema": c.schema})); code == 200 {
				t.Error("the server wrote the schema the check refused")
			}
		})
	}
	ok := strings.Replace(testSchema, "definition user {}", "definition user {}\n\ndefinition team {\n\trelation member: user\n}", 1)
	if code, out := e.call(t, adminKey, "schema/check", mustJSON(map[string]string{"schema": ok})); code != 200 || out["ok"] != true {
		t.Errorf("a harmless change: HTTP %d %v", code, out)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestRelationshipsPaging(t *testing.T) {
	e := newEnv(t, envOptions{})
	writeSchema(t, e, testSchema)
	want := []string{"document:a#viewer@user:u1", "document:a#viewer@user:u2", "document:b#viewer@user:u1", "document:c#viewer@user:u3", "document:c#viewer@user:u4"}
	write(t, e, want...)
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		q := url.Values{"resource_type": {"document"}, "limit": {"2"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		code, out := e.call(t, readerKey, "relationships?"+q.Encode(), "")
		if code != 200 {
			t.Fatalf("HTTP %d %v", code, out)
		}
		for _, r := range out["relationships"].([]any) {
			got = append(got, r.(string))
		}
		c, _ := out["cursor"].(string)
		if c == "" {
			break
		}
		cursor = c
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("pages hold %q, want %q", got, want)
	}
	for _, q := range []string{"relationships?resource_type=document&subject=user:u1", "relationships?subject=user:u1"} {
		code, out := e.call(t, readerKey, q, "")
		if code != 200 || len(out["relationships"].([]any)) != 2 {
			t.Errorf("%s: HTTP %d %v, want user:u1's 2", q, code, out)
		}
	}
	for _, q := range []string{"relationships", "relationships?relation=viewer&subject=user:u1", "relationships?resource_type=document&limit=0", "relationships?resource_type=document&subject=Bad!"} {
		if code, out := e.call(t, readerKey, q, ""); code != http.StatusBadRequest {
			t.Errorf("%s: HTTP %d %v, want 400", q, code, out)
		}
	}
}

func TestImport(t *testing.T) {
	e := newEnv(t, envOptions{})
	file := "schema: |-\n  definition user {}\n  definition doc {\n    relation viewer: user\n  }\nrelationships: |-\n  doc:a#viewer@user:ana\n  doc:b#viewer@user:bob\n"
	code, out := e.call(t, adminKey, "import", mustJSON(map[string]any{"file": file, "write_schema": true}))
	if code != 200 || out["relationships"] != 2.0 || out["schema_written"] != true {
		t.Fatalf("import: HTTP %d %v", code, out)
	}
	if rels := read(t, e, "doc"); len(rels) != 2 {
		t.Errorf("stored after the import: %q", rels)
	}
	// Again: touched, harmless.
	if code, out := e.call(t, adminKey, "import", mustJSON(map[string]any{"file": file})); code != 200 {
		t.Errorf("import again: HTTP %d %v", code, out)
	}
	// A schemaFile would read the server's disk: refused.
	code, out = e.call(t, adminKey, "import", mustJSON(map[string]any{"file": "schemaFile: ./go.mod\nrelationships: doc:a#viewer@user:x\n", "write_schema": true}))
	if code != http.StatusBadRequest || !strings.Contains(out["error"].(string), "cannot refer to another file") {
		t.Errorf("import with schemaFile: HTTP %d %v", code, out)
	}
}

// The watch long poll returns the changes after its cursor.
func TestWatch(t *testing.T) {
	e := newEnv(t, envOptions{})
	writeSchema(t, e, testSchema)
	code, out := e.call(t, readerKey, "watch?wait=0", "")
	if code != 200 || out["cursor"] == "" {
		t.Fatalf("first poll: HTTP %d %v", code, out)
	}
	cursor := out["cursor"].(string)
	write(t, e, "document:w#viewer@user:wendy")
	deadline := time.Now().Add(time.Minute)
	for {
		code, out = e.call(t, readerKey, "watch?wait=10&cursor="+url.QueryEscape(cursor), "")
		if code != 200 {
			t.Fatalf("poll: HTTP %d %v", code, out)
		}
		if cs := out["changes"].([]any); len(cs) > 0 {
			c := cs[0].(map[string]any)
			if c["relationship"] != "document:w#viewer@user:wendy" || c["operation"] != "touch" {
				t.Errorf("change %v", c)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the write never came through the watch")
		}
		cursor = out["cursor"].(string)
	}
	if code, _ := e.call(t, readerKey, "watch?wait=26", ""); code != http.StatusBadRequest {
		t.Errorf("wait beyond the limit: HTTP %d, want 400", code)
	}
}

// A body over the limit is refused before anything is done with it.
func TestBodyLimit(t *testing.T) {
	e := newEnv(t, envOptions{maxBody: 64})
	big := mustJSON(map[string]string{"schema": "definition user {}\n" + strings.Repeat("// padding\n", 10)})
	code, out := e.call(t, adminKey, "schema/check", big)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(out["error"].(string), "64 bytes") {
		t.Errorf("a %d-byte body with a 64-byte limit: HTTP %d %v, want 413 naming the limit", len(big), code, out)
	}
	if code, out := e.call(t, adminKey, "schema/check", `{"schema":"definition user {}"}`); code != 200 {
		t.Errorf("a small body: HTTP %d %v", code, out)
	}
	if code, out := e.call(t, adminKey, "check", `{"resource":"d:1","extra":1}`); code != http.StatusBadRequest {
		t.Errorf("an unknown field: HTTP %d %v, want 400", code, out)
	}
}
