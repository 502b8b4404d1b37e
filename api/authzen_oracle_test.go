package api_test

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/ambit-authz/ambit/api"
	"github.com/ambit-authz/ambit/internal/conformance"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
	"github.com/ambit-authz/ambit/validation"
	"github.com/ambit-authz/ambit/validation/remote"
)

// azSubject is the AuthZEN form of a subject.
func azSubject(s tuple.SubjectRef) map[string]any {
	m := map[string]any{"type": s.Type, "id": s.ID}
	if s.Relation != "" {
		m["properties"] = map[string]any{"relation": s.Relation}
	}
	return m
}

// TestAuthZENConformanceOracle loads every shared conformance file into one server and
// checks that every AuthZEN evaluation, batch and search agrees with the
// authzed v1 API on it: evaluations with CheckBulkPermissions (and single
// evaluations with CheckPermission), resource search with LookupResources,
// subject search with LookupSubjects, and action search with a check of
// every permission and relation of the resource's type. Searches page with
// limit 2, so paging is covered too.
func TestAuthZENConformanceOracle(t *testing.T) {
	files := conformance.Files(t)
	e := newEnv(t, func(o *envOptions) { o.limits.RevisionQuantum = -1 })
	hs := httptest.NewServer(e.srv.AuthZENHandler(api.AuthZENOptions{}))
	t.Cleanup(hs.Close)
	az := &azClient{t: t, base: hs.URL}
	runner := remote.New(remote.NewClient(e.conn), remote.Options{})
	totals := map[string]int{}
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
			if _, err := runner.Run(e.ctx(), f); err != nil {
				t.Fatalf("%s: loading: %v", name, err)
			}
			sch, err := schema.Compile(f.Name, f.Schema)
			if err != nil {
				t.Fatal(err)
			}
			oracleFile(t, e, az, name, f, sch, totals)
		}
	}
	t.Logf("AuthZEN oracle over %d files: %v", len(files), totals)
	if totals["evaluations"] == 0 || totals["search/resource"] == 0 || totals["search/subject"] == 0 || totals["search/action"] == 0 {
		t.Fatalf("the oracle compared too little: %v", totals)
	}
}

type triple struct {
	res  tuple.ObjectRef
	perm string
	sub  tuple.SubjectRef
}

func oracleFile(t *testing.T, e *env, az *azClient, name string, f *validation.File, sch *schema.Schema, totals map[string]int) {
	objects, subjects := f.Mentioned()
	var triples []triple
	for _, o := range objects {
		d := sch.Definitions[o.Type]
		if d == nil {
			continue
		}
		for _, p := range d.Order {
			for _, s := range subjects {
				if sch.Definitions[s.Type] != nil {
					triples = append(triples, triple{o, p, s})
				}
			}
		}
	}
	// Evaluations against CheckBulkPermissions, 500 at a time.
	has := map[triple]bool{}
	for i := 0; i < len(triples); i += 500 {
		chunk := triples[i:min(i+500, len(triples))]
		bulk := &v1.CheckBulkPermissionsRequest{Consistency: full()}
		var items []any
		for _, tr := range chunk {
			bulk.Items = append(bulk.Items, &v1.CheckBulkPermissionsRequestItem{Resource: objPB(tr.res), Permission: tr.perm, Subject: subPB(tr.sub)})
			items = append(items, map[string]any{"subject": azSubject(tr.sub), "action": map[string]any{"name": tr.perm},
				"resource": map[string]any{"type": tr.res.Type, "id": tr.res.ID}})
		}
		want, err := e.perms.CheckBulkPermissions(e.ctx(), bulk)
		if err != nil {
			t.Fatalf("%s: CheckBulkPermissions: %v", name, err)
		}
		var got struct {
			Evaluations []struct {
				Decision bool           `json:"decision"`
				Context  map[string]any `json:"context"`
			} `json:"evaluations"`
		}
		az.post(api.AuthZENEvaluations, map[string]any{"evaluations": items}, &got)
		if len(got.Evaluations) != len(chunk) {
			t.Fatalf("%s: %d evaluations for %d items", name, len(got.Evaluations), len(chunk))
		}
		for j, p := range want.GetPairs() {
			if p.GetError() != nil {
				t.Fatalf("%s: CheckBulkPermissions item %v: %v", name, chunk[j], p.GetError())
			}
			w := p.GetItem().GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION
			has[chunk[j]] = w
			if got.Evaluations[j].Decision != w {
				t.Errorf("%s: evaluations: %s#%s@%s: AuthZEN %v, CheckBulkPermissions %v", name, chunk[j].res, chunk[j].perm, chunk[j].sub, got.Evaluations[j].Decision, w)
			}
			cond := p.GetItem().GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_CONDITIONAL_PERMISSION
			if cond != (got.Evaluations[j].Context["missing_context"] != nil) {
				t.Errorf("%s: evaluations: %s#%s@%s: conditional %v but context %v", name, chunk[j].res, chunk[j].perm, chunk[j].sub, cond, got.Evaluations[j].Context)
			}
			totals["evaluations"]++
		}
	}
	// Single evaluations against CheckPermission, every 7th triple.
	for i := 0; i < len(triples); i += 7 {
		tr := triples[i]
		want := e.check(full(), tr.res.String(), tr.perm, tr.sub.String()) == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION
		var got struct{ Decision bool }
		az.post(api.AuthZENEvaluation, map[string]any{"subject": azSubject(tr.sub), "action": map[string]any{"name": tr.perm},
			"resource": map[string]any{"type": tr.res.Type, "id": tr.res.ID}}, &got)
		if got.Decision != want {
			t.Errorf("%s: evaluation %s#%s@%s: AuthZEN %v, CheckPermission %v", name, tr.res, tr.perm, tr.sub, got.Decision, want)
		}
		totals["evaluation"]++
	}
	// Action search against the checks above.
	for _, o := range objects {
		d := sch.Definitions[o.Type]
		if d == nil {
			continue
		}
		for _, s := range subjects {
			if sch.Definitions[s.Type] == nil {
				continue
			}
			var want []string
			for _, p := range d.Order {
				if has[triple{o, p, s}] {
					want = append(want, p)
				}
			}
			got := az.search(api.AuthZENSearchAction, map[string]any{"subject": azSubject(s), "resource": map[string]any{"type": o.Type, "id": o.ID}}, "name")
			if !slices.Equal(got, want) {
				t.Errorf("%s: search/action %s@%s: AuthZEN %v, checks %v", name, o, s, got, want)
			}
			totals["search/action"]++
		}
	}
	// Resource search against LookupResources.
	types := slices.Sorted(func(yield func(string) bool) {
		for k := range sch.Definitions {
			if !yield(k) {
				return
			}
		}
	})
	for _, s := range subjects {
		if sch.Definitions[s.Type] == nil {
			continue
		}
		for _, typ := range types {
			for _, p := range sch.Definitions[typ].Order {
				st, err := e.perms.LookupResources(e.ctx(), &v1.LookupResourcesRequest{Consistency: full(), ResourceObjectType: typ, Permission: p, Subject: subPB(s)})
				if err != nil {
					t.Fatal(err)
				}
				rs, err := drain(t, st.Recv)
				if err != nil {
					t.Fatalf("%s: LookupResources %s#%s@%s: %v", name, typ, p, s, err)
				}
				var want []string
				for _, r := range rs {
					if r.GetPermissionship() == v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_HAS_PERMISSION {
						want = append(want, r.GetResourceObjectId())
					}
				}
				got := az.search(api.AuthZENSearchResource, map[string]any{"subject": azSubject(s), "action": map[string]any{"name": p},
					"resource": map[string]any{"type": typ}}, "id")
				if !slices.Equal(got, want) {
					t.Errorf("%s: search/resource %s#%s@%s: AuthZEN %v, LookupResources %v", name, typ, p, s, got, want)
				}
				totals["search/resource"]++
			}
		}
	}
	// Subject search against LookupSubjects.
	for _, o := range objects {
		d := sch.Definitions[o.Type]
		if d == nil {
			continue
		}
		for _, p := range d.Order {
			for _, styp := range types {
				st, err := e.perms.LookupSubjects(e.ctx(), &v1.LookupSubjectsRequest{Consistency: full(), Resource: objPB(o), Permission: p, SubjectObjectType: styp})
				if err != nil {
					t.Fatal(err)
				}
				rs, err := drain(t, st.Recv)
				if err != nil {
					t.Fatalf("%s: LookupSubjects %s#%s %s: %v", name, o, p, styp, err)
				}
				var want []string
				for _, r := range rs {
					if r.GetSubject().GetPermissionship() == v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_HAS_PERMISSION {
						want = append(want, r.GetSubjectObjectId())
					}
				}
				got := az.search(api.AuthZENSearchSubject, map[string]any{"subject": map[string]any{"type": styp}, "action": map[string]any{"name": p},
					"resource": map[string]any{"type": o.Type, "id": o.ID}}, "id")
				if !slices.Equal(got, want) {
					t.Errorf("%s: search/subject %s#%s %s: AuthZEN %v, LookupSubjects %v", name, o, p, styp, got, want)
				}
				totals["search/subject"]++
			}
		}
	}
}

func objPB(o tuple.ObjectRef) *v1.ObjectReference {
	return &v1.ObjectReference{ObjectType: o.Type, ObjectId: o.ID}
}

func subPB(s tuple.SubjectRef) *v1.SubjectReference {
	return &v1.SubjectReference{Object: objPB(s.Object()), OptionalRelation: s.Relation}
}

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

// search pages through a search with page.limit 2 and returns field of every
// result, in order.
func (c *azClient) search(path string, req map[string]any, field string) []string {
	c.t.Helper()
	var out []string
	token := ""
	for pages := 0; ; pages++ {
		if pages > 10_000 {
			c.t.Fatalf("%s: more than 10,000 pages", path)
		}
		req["page"] = map[string]any{"limit": 2, "token": token}
		var resp struct {
			Results []map[string]any `json:"results"`
			Page    struct {
				NextToken *string `json:"next_token"`
			} `json:"page"`
		}
		c.post(path, req, &resp)
		for _, r := range resp.Results {
			out = append(out, r[field].(string))
		}
		if resp.Page.NextToken == nil {
			c.t.Fatalf("%s: no page.next_token", path)
		}
		if *resp.Page.NextToken == "" {
			return out
		}
		token = *resp.Page.NextToken
	}
}
