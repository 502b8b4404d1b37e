package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// A client that wrote the schema through a follower and then writes
// relationships under it, or reads it, through the same follower never sees
// an older schema (issue 17, item 5). 100 rounds, each adding a type and
// using it at once.
func TestFollowerSchemaWriteThenUse(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer k")
	a1, _ := startServe(t, serveConfig{keys: []string{"k"}})
	a2, _ := startServe(t, serveConfig{keys: []string{"k"}, nodeID: "n2", join: []string{a1.grpc}})
	conn := dial(t, a2.grpc) // n1 bootstrapped and leads; n2 follows
	schemas := v1.NewSchemaServiceClient(conn)
	perms := v1.NewPermissionsServiceClient(conn)

	var text strings.Builder
	text.WriteString("definition user {}\n")
	for i := range 100 {
		fmt.Fprintf(&text, "definition doc%d {\n\trelation viewer: user\n}\n", i)
		if _, err := schemas.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: text.String()}); err != nil {
			t.Fatalf("round %d: WriteSchema through the follower: %v", i, err)
		}
		read, err := schemas.ReadSchema(ctx, &v1.ReadSchemaRequest{})
		if err != nil || read.GetSchemaText() != text.String() {
			t.Fatalf("round %d: ReadSchema through the follower right after writing it: %v; got the schema of %d types", i, err,
				strings.Count(read.GetSchemaText(), "definition doc"))
		}
		_, err = perms.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{{
			Operation: v1.RelationshipUpdate_OPERATION_TOUCH,
			Relationship: &v1.Relationship{
				Resource: &v1.ObjectReference{ObjectType: fmt.Sprintf("doc%d", i), ObjectId: "x"}, Relation: "viewer",
				Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "ana"}},
			},
		}}})
		if err != nil {
			t.Fatalf("round %d: WriteRelationships of doc%d through the follower right after the schema that defines it: %v", i, i, err)
		}
	}
}

// Issue 17 item 5, as the fault campaign found it: the schema is written
// through the leader and the next relationship write goes to a follower
// that has not applied it yet. The follower must not refuse the write
// against its older schema; the leader, whose schema is the newest,
// decides.
func TestFollowerWriteRightAfterLeaderSchemaWrite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer k")
	a1, _ := startServe(t, serveConfig{keys: []string{"k"}})
	a2, _ := startServe(t, serveConfig{keys: []string{"k"}, nodeID: "n2", join: []string{a1.grpc}})
	leaderSchemas := v1.NewSchemaServiceClient(dial(t, a1.grpc))
	followerPerms := v1.NewPermissionsServiceClient(dial(t, a2.grpc))
	var text strings.Builder
	text.WriteString("definition user {}\n")
	for i := range 100 {
		fmt.Fprintf(&text, "definition doc%d {\n\trelation viewer: user\n}\n", i)
		if _, err := leaderSchemas.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: text.String()}); err != nil {
			t.Fatalf("round %d: WriteSchema through the leader: %v", i, err)
		}
		_, err := followerPerms.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{{
			Operation: v1.RelationshipUpdate_OPERATION_TOUCH,
			Relationship: &v1.Relationship{
				Resource: &v1.ObjectReference{ObjectType: fmt.Sprintf("doc%d", i), ObjectId: "x"}, Relation: "viewer",
				Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "ana"}},
			},
		}}})
		if err != nil {
			t.Fatalf("round %d: WriteRelationships of doc%d through the follower right after the leader acknowledged the schema: %v", i, i, err)
		}
	}
	// A write that the newest schema refuses is still refused, by the leader.
	_, err := followerPerms.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{{
		Operation: v1.RelationshipUpdate_OPERATION_TOUCH,
		Relationship: &v1.Relationship{
			Resource: &v1.ObjectReference{ObjectType: "nosuchtype", ObjectId: "x"}, Relation: "viewer",
			Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "ana"}},
		},
	}}})
	if status.Code(err) != codes.InvalidArgument && status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("an invalid write through the follower: %v, want a refusal", err)
	}
}
