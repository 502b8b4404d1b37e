package api_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ambit-authz/ambit/store"
)

// Relationship writes race schema changes that add and remove the relation
// they write: a write is validated against the schema it read, and the
// state machine refuses it if another schema was stored in between. Whichever
// way each race goes, no relationship is ever stored under a schema that does
// not define its relation, and every write either succeeds or fails with a
// retryable precondition or an invalid-argument error.
func TestWritesRacingSchemaChangesStoreOnlyValidRelationships(t *testing.T) {
	e := newEnv(t)
	const withEditor = "definition user {}\ndefinition doc {\n\trelation viewer: user\n\trelation editor: user\n}"
	const withoutEditor = "definition user {}\ndefinition doc {\n\trelation viewer: user\n}"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := e.schema.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: withEditor}); err != nil {
		t.Fatal(err)
	}
	update := func(op v1.RelationshipUpdate_Operation, id string) *v1.WriteRelationshipsRequest {
		return &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{{Operation: op, Relationship: &v1.Relationship{
			Resource: &v1.ObjectReference{ObjectType: "doc", ObjectId: id}, Relation: "editor",
			Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "ana"}}}}}}
	}
	var written, refused, raced, flips atomic.Int64
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var unexpected []string
	fail := func(format string, args ...any) {
		errMu.Lock()
		unexpected = append(unexpected, fmt.Sprintf(format, args...))
		errMu.Unlock()
	}
	deadline := time.Now().Add(1500 * time.Millisecond)
	for w := range 2 {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				id := fmt.Sprintf("d%d-%d", w, i)
				_, err := e.perms.WriteRelationships(ctx, update(v1.RelationshipUpdate_OPERATION_TOUCH, id))
				switch status.Code(err) {
				case codes.OK:
					written.Add(1)
				case codes.FailedPrecondition, codes.InvalidArgument:
					refused.Add(1)
					if strings.Contains(err.Error(), "retry") {
						raced.Add(1) // validated, then the schema changed
					}
					continue
				default:
					fail("TOUCH %s: %v", id, err)
					return
				}
				// The relationship exists, so the schema keeps editor and
				// the delete validates.
				if _, err := e.perms.WriteRelationships(ctx, update(v1.RelationshipUpdate_OPERATION_DELETE, id)); err != nil {
					fail("DELETE %s: %v", id, err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for time.Now().Before(deadline) {
			// Removing editor is refused while an editor relationship exists.
			_, err := e.schema.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: withoutEditor})
			switch status.Code(err) {
			case codes.OK:
				flips.Add(1)
			case codes.FailedPrecondition:
			default:
				fail("schema without editor: %v", err)
				return
			}
			if _, err := e.schema.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: withEditor}); err != nil {
				fail("schema with editor: %v", err)
				return
			}
		}
	})
	wg.Wait()
	for _, u := range unexpected {
		t.Error(u)
	}
	t.Logf("%d editor relationships written, %d writes refused (%d of them after the schema changed under them), %d schema changes removed editor",
		written.Load(), refused.Load(), raced.Load(), flips.Load())
	if written.Load() == 0 || flips.Load() == 0 {
		t.Fatalf("the race never ran both ways (%d writes, %d removals of editor)", written.Load(), flips.Load())
	}
	// Replay the change feed: every stored editor relationship was written
	// while the schema in force defined editor.
	hasEditor, touches := false, 0
	for c, err := range e.store.Changes(ctx, 0) {
		if err != nil {
			t.Fatal(err)
		}
		if c.Schema != nil {
			hasEditor = strings.Contains(*c.Schema, "relation editor")
		}
		for _, u := range c.Updates {
			if u.Op == store.OpTouch && u.Rel.Relation == "editor" {
				touches++
				if !hasEditor {
					t.Errorf("revision %d stored %s under a schema without editor", c.Revision, u.Rel)
				}
			}
		}
	}
	if touches != int(written.Load()) {
		t.Errorf("the change feed holds %d editor writes, the clients saw %d succeed", touches, written.Load())
	}
}
