package api_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"

	"github.com/ambit-authz/ambit/api"
	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

const (
	opCreate = v1.RelationshipUpdate_OPERATION_CREATE
	opTouch  = v1.RelationshipUpdate_OPERATION_TOUCH
	opDelete = v1.RelationshipUpdate_OPERATION_DELETE
)

func (e *env) read(f *v1.RelationshipFilter) []string {
	e.t.Helper()
	s, err := e.perms.ReadRelationships(e.ctx(), &v1.ReadRelationshipsRequest{Consistency: full(), RelationshipFilter: f})
	if err != nil {
		e.t.Fatal(err)
	}
	rs, err := drain(e.t, s.Recv)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%s:%s#%s@%s:%s", r.GetRelationship().GetResource().GetObjectType(), r.GetRelationship().GetResource().GetObjectId(),
			r.GetRelationship().GetRelation(), r.GetRelationship().GetSubject().GetObject().GetObjectType(), r.GetRelationship().GetSubject().GetObject().GetObjectId()))
	}
	slices.Sort(out)
	return out
}

func docs() *v1.RelationshipFilter { return &v1.RelationshipFilter{ResourceType: "document"} }

func TestWriteRelationshipsValidation(t *testing.T) {
	e := newEnv(t)
	e.writeSchema(testSchema)
	e.write(opCreate, "document:a#viewer@user:ana")

	cases := []struct {
		name string
		req  *v1.WriteRelationshipsRequest
		code codes.Code
		frag string
	}{
		{"unknown type", &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{update(opTouch, "folder:a#viewer@user:ana")}}, codes.FailedPrecondition, "folder"},
		{"unknown relation", &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{update(opTouch, "document:a#reader@user:ana")}}, codes.FailedPrecondition, "reader"},
		{"permission", &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{update(opTouch, "document:a#view@user:ana")}}, codes.InvalidArgument, "permission"},
		{"subject type not allowed", &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{update(opTouch, "document:a#owner@group:eng")}}, codes.InvalidArgument, "does not allow"},
		{"wildcard not allowed", &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{update(opTouch, "document:a#owner@user:*")}}, codes.InvalidArgument, "user:*"},
		{"unknown caveat", &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{update(opTouch, "document:a#viewer@user:ana[holiday]")}}, codes.InvalidArgument, "holiday"},
		{"bad id", &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{{Operation: opTouch, Relationship: &v1.Relationship{
			Resource: &v1.ObjectReference{ObjectType: "document", ObjectId: "a b"}, Relation: "viewer", Subject: subj("user:ana")}}}}, codes.InvalidArgument, "ObjectId"},
		{"no operation", &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{{Relationship: rel("document:a#viewer@user:bob")}}}, codes.InvalidArgument, "Operation"},
		{"duplicate", &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{update(opTouch, "document:b#viewer@user:bob"), update(opDelete, "document:b#viewer@user:bob")}}, codes.InvalidArgument, "updates[0]"},
		{"create existing", &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{update(opCreate, "document:b#viewer@user:bob"), update(opCreate, "document:a#viewer@user:ana")}}, codes.AlreadyExists, "document:a#viewer@user:ana"},
		{"must match fails", &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{update(opTouch, "document:b#viewer@user:bob")},
			OptionalPreconditions: []*v1.Precondition{{Operation: v1.Precondition_OPERATION_MUST_MATCH, Filter: &v1.RelationshipFilter{ResourceType: "document", OptionalResourceId: "zzz"}}}}, codes.FailedPrecondition, "MUST_MATCH"},
		{"must not match fails", &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{update(opTouch, "document:b#viewer@user:bob")},
			OptionalPreconditions: []*v1.Precondition{{Operation: v1.Precondition_OPERATION_MUST_NOT_MATCH, Filter: &v1.RelationshipFilter{ResourceType: "document", OptionalResourceId: "a"}}}}, codes.FailedPrecondition, "MUST_NOT_MATCH"},
	}
	for _, c := range cases {
		_, err := e.perms.WriteRelationships(e.ctx(), c.req)
		t.Run(c.name, func(t *testing.T) { wantCode(t, err, c.code, c.frag) })
	}
	// Nothing of any refused write was applied.
	if got, want := e.read(docs()), []string{"document:a#viewer@user:ana"}; !slices.Equal(got, want) {
		t.Fatalf("after refused writes: %v, want %v", got, want)
	}

	// A precondition that holds lets the write through.
	_, err := e.perms.WriteRelationships(e.ctx(), &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{update(opTouch, "document:b#viewer@user:bob")},
		OptionalPreconditions: []*v1.Precondition{{Operation: v1.Precondition_OPERATION_MUST_MATCH, Filter: &v1.RelationshipFilter{ResourceType: "document", OptionalResourceId: "a"}}}})
	if err != nil {
		t.Fatal(err)
	}
	// Touch is idempotent; delete of an absent relationship is a no-op.
	e.write(opTouch, "document:b#viewer@user:bob")
	e.write(opDelete, "document:a#viewer@user:ana", "document:zz#viewer@user:nobody")
	if got, want := e.read(docs()), []string{"document:b#viewer@user:bob"}; !slices.Equal(got, want) {
		t.Fatalf("after touch and delete: %v, want %v", got, want)
	}
}

func TestRequestLimits(t *testing.T) {
	e := newEnv(t, func(o *envOptions) { o.limits.MaxUpdatesPerWrite = 3; o.limits.MaxChecksPerBulk = 2 })
	e.writeSchema(testSchema)
	req := &v1.WriteRelationshipsRequest{}
	for i := range 4 {
		req.Updates = append(req.Updates, update(opTouch, fmt.Sprintf("document:d%d#viewer@user:ana", i)))
	}
	_, err := e.perms.WriteRelationships(e.ctx(), req)
	wantCode(t, err, codes.InvalidArgument, "4 updates", "limit of 3")
	item := &v1.CheckBulkPermissionsRequestItem{Resource: obj("document:a"), Permission: "view", Subject: subj("user:ana")}
	_, err = e.perms.CheckBulkPermissions(e.ctx(), &v1.CheckBulkPermissionsRequest{Items: []*v1.CheckBulkPermissionsRequestItem{item, item, item}})
	wantCode(t, err, codes.InvalidArgument, "3 checks", "limit of 2")
	// An oversized schema is refused before it reaches the log.
	big := make([]byte, 5<<20)
	for i := range big {
		big[i] = ' '
	}
	_, err = e.schema.WriteSchema(e.ctx(), &v1.WriteSchemaRequest{Schema: string(big)})
	wantCode(t, err, codes.ResourceExhausted)
}

func TestReadDeleteImportExport(t *testing.T) {
	e := newEnv(t)
	e.writeSchema(testSchema)

	// Import 2,500 relationships in three client messages.
	imp, err := e.perms.ImportBulkRelationships(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for m := range 3 {
		msg := &v1.ImportBulkRelationshipsRequest{}
		for i := range 834 {
			n := m*834 + i
			if n >= 2500 {
				break
			}
			s := fmt.Sprintf("document:doc%04d#viewer@user:u%d", n, n%7)
			want = append(want, s)
			msg.Relationships = append(msg.Relationships, rel(s))
		}
		if err := imp.Send(msg); err != nil {
			t.Fatal(err)
		}
	}
	ir, err := imp.CloseAndRecv()
	if err != nil || ir.GetNumLoaded() != 2500 {
		t.Fatalf("import: %v loaded, %v", ir.GetNumLoaded(), err)
	}
	slices.Sort(want)
	if got := e.read(docs()); !slices.Equal(got, want) {
		t.Fatalf("read after import: %d relationships, want %d", len(got), len(want))
	}

	// A duplicate import is refused with AlreadyExists.
	imp, _ = e.perms.ImportBulkRelationships(e.ctx())
	_ = imp.Send(&v1.ImportBulkRelationshipsRequest{Relationships: []*v1.Relationship{rel("document:doc0001#viewer@user:u1")}})
	_, err = imp.CloseAndRecv()
	wantCode(t, err, codes.AlreadyExists)

	// Read with limit and cursor.
	var paged []string
	var cur *v1.Cursor
	for range 100 {
		s, err := e.perms.ReadRelationships(e.ctx(), &v1.ReadRelationshipsRequest{Consistency: full(), RelationshipFilter: &v1.RelationshipFilter{ResourceType: "document",
			OptionalSubjectFilter: &v1.SubjectFilter{SubjectType: "user", OptionalSubjectId: "u3"}}, OptionalLimit: 100, OptionalCursor: cur})
		if err != nil {
			t.Fatal(err)
		}
		page, err := drain(t, s.Recv)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, r := range page {
			paged = append(paged, r.GetRelationship().GetResource().GetObjectId())
		}
		cur = page[len(page)-1].GetAfterResultCursor()
	}
	if len(paged) != 357 || len(slices.Compact(slices.Sorted(slices.Values(paged)))) != 357 {
		t.Fatalf("paged read: %d results, want 357 distinct", len(paged))
	}
	// A read cursor is not an export cursor.
	ex, _ := e.perms.ExportBulkRelationships(e.ctx(), &v1.ExportBulkRelationshipsRequest{OptionalCursor: cur})
	_, err = drain(t, ex.Recv)
	wantCode(t, err, codes.InvalidArgument, "ReadRelationships")

	// Export in batches of 1000, resuming from the first batch's cursor.
	ex, err = e.perms.ExportBulkRelationships(e.ctx(), &v1.ExportBulkRelationshipsRequest{Consistency: full(), OptionalLimit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	first, err := ex.Recv()
	if err != nil || len(first.GetRelationships()) != 1000 {
		t.Fatalf("first export batch: %d, %v", len(first.GetRelationships()), err)
	}
	// Changes after the cursor was issued are not seen by the resumed export.
	e.write(opTouch, "document:new#viewer@user:ana")
	ex, _ = e.perms.ExportBulkRelationships(e.ctx(), &v1.ExportBulkRelationshipsRequest{OptionalCursor: first.GetAfterResultCursor(), OptionalLimit: 1000})
	rest, err := drain(t, ex.Recv)
	if err != nil {
		t.Fatal(err)
	}
	n := len(first.GetRelationships())
	for _, b := range rest {
		n += len(b.GetRelationships())
	}
	if n != 2500 || len(rest) != 2 {
		t.Fatalf("export: %d relationships in %d more batches, want 2500 in 2", n, len(rest))
	}

	// Delete: over the limit without partial deletion deletes nothing.
	filter := &v1.RelationshipFilter{ResourceType: "document", OptionalSubjectFilter: &v1.SubjectFilter{SubjectType: "user", OptionalSubjectId: "u0"}}
	_, err = e.perms.DeleteRelationships(e.ctx(), &v1.DeleteRelationshipsRequest{RelationshipFilter: filter, OptionalLimit: 100})
	wantCode(t, err, codes.InvalidArgument, "optional_allow_partial_deletions")
	total := 0
	for i := 0; ; i++ {
		d, err := e.perms.DeleteRelationships(e.ctx(), &v1.DeleteRelationshipsRequest{RelationshipFilter: filter, OptionalLimit: 100, OptionalAllowPartialDeletions: true})
		if err != nil {
			t.Fatal(err)
		}
		total += int(d.GetRelationshipsDeletedCount())
		if d.GetDeletedAt().GetToken() == "" {
			t.Fatal("delete without a ZedToken")
		}
		if d.GetDeletionProgress() == v1.DeleteRelationshipsResponse_DELETION_PROGRESS_COMPLETE {
			break
		}
		if i > 10 {
			t.Fatal("partial deletion never completed")
		}
	}
	if total != 358 {
		t.Fatalf("deleted %d, want 358", total)
	}
	// Delete preconditions and the empty filter.
	_, err = e.perms.DeleteRelationships(e.ctx(), &v1.DeleteRelationshipsRequest{RelationshipFilter: docs(),
		OptionalPreconditions: []*v1.Precondition{{Operation: v1.Precondition_OPERATION_MUST_MATCH, Filter: &v1.RelationshipFilter{ResourceType: "group"}}}})
	wantCode(t, err, codes.FailedPrecondition, "MUST_MATCH")
	_, err = e.perms.DeleteRelationships(e.ctx(), &v1.DeleteRelationshipsRequest{RelationshipFilter: &v1.RelationshipFilter{}})
	wantCode(t, err, codes.InvalidArgument)
	d, err := e.perms.DeleteRelationships(e.ctx(), &v1.DeleteRelationshipsRequest{RelationshipFilter: docs()})
	if err != nil || d.GetRelationshipsDeletedCount() != 2500-358+1 {
		t.Fatalf("delete all documents: %v, %v", d, err)
	}
	if got := e.read(docs()); len(got) != 0 {
		t.Fatalf("documents left after delete: %v", got)
	}
}

// TestWriteLimitsHoldTogether: a write at both documented limits (1000
// updates, each with a caveat context of 4 KiB of JSON) is accepted, and a
// write beyond either limit is refused before it is proposed (the applied
// revision does not move: nothing entered the raft log).
func TestWriteLimitsHoldTogether(t *testing.T) {
	e := newEnv(t, func(o *envOptions) { o.applyTimeout = 2 * time.Minute })
	e.writeSchema(testSchema)
	withContext := func(id string, jsonBytes int) *v1.RelationshipUpdate {
		day := strings.Repeat("x", jsonBytes-len(`{"day":""}`))
		r := tuple.MustParse("document:" + id + "#viewer@user:u" + id + "[weekday]")
		r.Caveat.Context = map[string]any{"day": day}
		if n, err := store.CaveatContextSize(r.Caveat); err != nil || n != jsonBytes {
			t.Fatalf("context of %d bytes (%v), want %d", n, err, jsonBytes)
		}
		return &v1.RelationshipUpdate{Operation: opTouch, Relationship: v1Rel(t, r)}
	}
	atLimits := &v1.WriteRelationshipsRequest{}
	for i := range api.DefaultMaxUpdatesPerWrite {
		atLimits.Updates = append(atLimits.Updates, withContext(fmt.Sprintf("d%04d", i), tuple.MaxCaveatContextSize))
	}
	// A generous deadline: 4 MB through validation, raft and the store is
	// slow under the race detector on a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := e.perms.WriteRelationships(ctx, atLimits); err != nil {
		t.Fatalf("a write at the documented limits: %v", err)
	}
	if got := len(e.read(docs())); got != api.DefaultMaxUpdatesPerWrite {
		t.Fatalf("%d relationships stored, want %d", got, api.DefaultMaxUpdatesPerWrite)
	}
	for _, tc := range []struct {
		name string
		req  *v1.WriteRelationshipsRequest
		frag []string
	}{
		{"one update too many", &v1.WriteRelationshipsRequest{Updates: append(slices.Clip(atLimits.Updates[:api.DefaultMaxUpdatesPerWrite]), update(opTouch, "document:x#viewer@user:x"))},
			[]string{"1001 updates", "limit of 1000"}},
		{"context one byte over", &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{withContext("y", tuple.MaxCaveatContextSize+1)}},
			[]string{"updates[0].relationship.optional_caveat.context", "4097 bytes", "limit of 4096"}},
		{"import context one byte over", nil, []string{"relationships[0].optional_caveat.context", "4097 bytes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.store.AppliedRevision()
			var err error
			if tc.req != nil {
				_, err = e.perms.WriteRelationships(e.ctx(), tc.req)
			} else {
				stream, serr := e.perms.ImportBulkRelationships(e.ctx())
				if serr != nil {
					t.Fatal(serr)
				}
				_ = stream.Send(&v1.ImportBulkRelationshipsRequest{Relationships: []*v1.Relationship{withContext("z", tuple.MaxCaveatContextSize+1).Relationship}})
				_, err = stream.CloseAndRecv()
			}
			wantCode(t, err, codes.InvalidArgument, tc.frag...)
			if after := e.store.AppliedRevision(); after != before {
				t.Fatalf("applied revision moved from %d to %d: the refused write was proposed", before, after)
			}
		})
	}
}
