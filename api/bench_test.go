package api_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/ambit-authz/ambit/api"
)

// BenchmarkCheckPermission measures one CheckPermission round trip over
// loopback gRPC (minimize_latency, warm cache after the first iteration on
// each document).
func BenchmarkCheckPermission(b *testing.B) {
	e := newEnv(b)
	e.writeSchema(testSchema)
	var rels []string
	for i := range 100 {
		rels = append(rels, fmt.Sprintf("document:d%d#viewer@group:g%d#member", i, i%10), fmt.Sprintf("group:g%d#member@user:u%d", i%10, i))
	}
	e.write(opTouch, rels...)
	ctx := e.ctx()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			_, err := e.perms.CheckPermission(ctx, &v1.CheckPermissionRequest{Resource: obj(fmt.Sprintf("document:d%d", i%100)), Permission: "view", Subject: subj(fmt.Sprintf("user:u%d", i%100))})
			if err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkWriteRelationships measures one single-update write (raft commit
// and badger apply; raft log fsync off, store fsync off in this setup).
func BenchmarkWriteRelationships(b *testing.B) {
	e := newEnv(b)
	e.writeSchema(testSchema)
	ctx := e.ctx()
	b.ResetTimer()
	for i := range b.N {
		_, err := e.perms.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{update(opTouch, fmt.Sprintf("document:w%d#viewer@user:u%d", i, i))}})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthZENEvaluation is BenchmarkCheckPermission's checks sent to
// POST /access/v1/evaluation over loopback HTTP/1.1 with keep-alive.
func BenchmarkAuthZENEvaluation(b *testing.B) {
	e := newEnv(b)
	e.writeSchema(testSchema)
	var rels []string
	for i := range 100 {
		rels = append(rels, fmt.Sprintf("document:d%d#viewer@group:g%d#member", i, i%10), fmt.Sprintf("group:g%d#member@user:u%d", i%10, i))
	}
	e.write(opTouch, rels...)
	hs := httptest.NewServer(e.srv.AuthZENHandler(api.AuthZENOptions{}))
	b.Cleanup(hs.Close)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			body := fmt.Sprintf(`{"subject":{"type":"user","id":"u%d"},"action":{"name":"view"},"resource":{"type":"document","id":"d%d"}}`, i%100, i%100)
			resp, err := c.Post(hs.URL+api.AuthZENEvaluation, "application/json", strings.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
			i++
		}
	})
}

// nopWriter is a ResponseWriter that keeps nothing but the status.
type nopWriter struct {
	h    http.Header
	code int
}

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(code int)        { w.code = code }

// BenchmarkAuthZENHandler is one evaluation through the AuthZEN handler in
// process (no network, no HTTP server: decoding, translation, the check,
// encoding), next to CheckInProcess, the same check through the gRPC
// handler in process: their difference is the AuthZEN layer's cost.
func BenchmarkAuthZENHandler(b *testing.B) {
	e := newEnv(b)
	e.writeSchema(testSchema)
	var rels []string
	for i := range 100 {
		rels = append(rels, fmt.Sprintf("document:d%d#viewer@group:g%d#member", i, i%10), fmt.Sprintf("group:g%d#member@user:u%d", i%10, i))
	}
	e.write(opTouch, rels...)
	bodies := make([]string, 100)
	reqs := make([]*v1.CheckPermissionRequest, 100)
	for i := range bodies {
		bodies[i] = fmt.Sprintf(`{"subject":{"type":"user","id":"u%d"},"action":{"name":"view"},"resource":{"type":"document","id":"d%d"}}`, i, i)
		reqs[i] = &v1.CheckPermissionRequest{Resource: obj(fmt.Sprintf("document:d%d", i)), Permission: "view", Subject: subj(fmt.Sprintf("user:u%d", i)),
			Consistency: &v1.Consistency{Requirement: &v1.Consistency_MinimizeLatency{MinimizeLatency: true}}}
	}
	h := e.srv.AuthZENHandler(api.AuthZENOptions{})
	b.Run("evaluation", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			r, _ := http.NewRequest(http.MethodPost, api.AuthZENEvaluation, strings.NewReader(bodies[i%100]))
			w := &nopWriter{h: http.Header{}}
			h.ServeHTTP(w, r)
			if w.code != 0 && w.code != 200 {
				b.Fatalf("status %d", w.code)
			}
			i++
		}
	})
	b.Run("CheckInProcess", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := e.srv.CheckPermission(e.ctx(), reqs[i%100]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
