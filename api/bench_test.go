package api_test

import (
	"fmt"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
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
