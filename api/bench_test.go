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
