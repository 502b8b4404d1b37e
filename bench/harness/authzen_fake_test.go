package harness

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ambit-authz/ambit/bench/workload"
	"github.com/ambit-authz/ambit/engine"
)

// azFakeEval is the part of an AuthZEN evaluation the fake reads.
type azFakeEval struct {
	Subject struct {
		Type, ID   string
		Properties map[string]string
	}
	Action   struct{ Name string }
	Resource struct{ Type, ID string }
	Context  map[string]any
	Page     struct{ Token string }
}

func (e azFakeEval) subject() *v1.SubjectReference {
	return &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: e.Subject.Type, ObjectId: e.Subject.ID}, OptionalRelation: e.Subject.Properties["relation"]}
}

// startAuthZENFake serves the AuthZEN endpoints the harness uses over f:
// decisions from f.check, resource search from the engine in pages of 5.
func startAuthZENFake(t *testing.T, f *fake, c *Client) {
	t.Helper()
	mux := http.NewServeMux()
	decide := func(ctx context.Context, e azFakeEval) (bool, error) {
		cx, err := structpb.NewStruct(e.Context)
		if err != nil {
			return false, err
		}
		p, err := f.check(ctx, &v1.ObjectReference{ObjectType: e.Resource.Type, ObjectId: e.Resource.ID}, e.Action.Name, e.subject(), cx)
		return p == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION, err
	}
	mux.HandleFunc("POST /access/v1/evaluation", func(w http.ResponseWriter, r *http.Request) {
		var e azFakeEval
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		d, err := decide(r.Context(), e)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]bool{"decision": d})
	})
	mux.HandleFunc("POST /access/v1/evaluations", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Evaluations []azFakeEval }
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		var out []map[string]bool
		for _, e := range req.Evaluations {
			d, err := decide(r.Context(), e)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			out = append(out, map[string]bool{"decision": d})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"evaluations": out})
	})
	mux.HandleFunc("POST /access/v1/search/resource", func(w http.ResponseWriter, r *http.Request) {
		var e azFakeEval
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		v, err := f.current()
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		var ids []map[string]string
		for res, err := range v.LookupResources(r.Context(), engine.LookupResourcesRequest{ResourceType: e.Resource.Type,
			Permission: e.Action.Name, Subject: fromSubject(e.subject()), Context: e.Context, After: e.Page.Token, Limit: 6}) {
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			ids = append(ids, map[string]string{"type": e.Resource.Type, "id": res.ID})
		}
		next := ""
		if len(ids) == 6 {
			ids = ids[:5]
			next = ids[4]["id"]
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"results": ids, "page": map[string]string{"next_token": next}})
	})
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	c.AuthZEN = NewAuthZENClient(hs.URL, "", 4)
}

// TestAuthZENOpsNeedTheEndpoint: without --authzen the AuthZEN runs fail
// loudly instead of reporting nothing.
func TestAuthZENOpsNeedTheEndpoint(t *testing.T) {
	w := workload.MustNew("deep", workload.Small, 1)
	c := loaded(t, &fake{}, w)
	r, err := Run(context.Background(), c, w, short(OpAuthZENEvaluation))
	if err != nil {
		t.Fatal(err)
	}
	if r.OK || r.Errors == 0 || !strings.Contains(strings.Join(r.ErrorSamples, " "), "AuthZEN HTTP endpoint") {
		t.Fatalf("run without an AuthZEN endpoint: %+v", r)
	}
}
