package api_test

// Attacks on a node's memory through the API (issue 16, items 3 and 6), each
// against a real server on loopback. Every attack must end with
// ResourceExhausted, DeadlineExceeded or a bounded response, while the server
// keeps answering a normal Check within 100 ms.

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/ambit-authz/ambit/api"
	ambitv1 "github.com/ambit-authz/ambit/proto/ambit/v1"
)

// importRels loads rels in one ImportBulkRelationships (one revision when
// they fit in one import chunk).
func (e *env) importRels(rels []*v1.Relationship) {
	e.t.Helper()
	imp, err := e.perms.ImportBulkRelationships(e.ctx())
	if err != nil {
		e.t.Fatal(err)
	}
	for len(rels) > 0 {
		n := min(500, len(rels))
		if err := imp.Send(&v1.ImportBulkRelationshipsRequest{Relationships: rels[:n]}); err != nil {
			e.t.Fatal(err)
		}
		rels = rels[n:]
	}
	if _, err := imp.CloseAndRecv(); err != nil {
		e.t.Fatalf("import: %v", err)
	}
}

// publicDocs returns n documents everyone may view, with ids of about
// idLen characters so that results are large.
func publicDocs(n, idLen int) []*v1.Relationship {
	pad := strings.Repeat("x", max(0, idLen-8))
	out := make([]*v1.Relationship, n)
	for i := range out {
		out[i] = rel(fmt.Sprintf("document:%s%07d#viewer@user:*", pad, i))
	}
	return out
}

// answersCheck polls until a normal Check is answered within 100 ms, and
// fails the test if none is in 50 tries.
func (e *env) answersCheck(t *testing.T) {
	t.Helper()
	var err error
	for range 50 {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_, err = e.perms.CheckPermission(ctx, &v1.CheckPermissionRequest{Resource: obj("document:probe"), Permission: "view", Subject: subj("user:probe")})
		cancel()
		if err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the server answered no Check within 100 ms in 50 tries; last error: %v", err)
}

// slowClient is a second connection whose flow-control windows stay at
// 64 KiB (a fixed window turns off gRPC's dynamic window), as a client that
// stops reading would leave them.
func (e *env) slowClient(t *testing.T) v1.PermissionsServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return v1.NewPermissionsServiceClient(conn)
}

// TestSecurityExportAndReadLimits: optional_limit above --max-read-limit is
// refused on every read, delete and export; export pages stay under
// --max-response-bytes and resume with their cursor.
func TestSecurityExportAndReadLimits(t *testing.T) {
	const maxBytes = 16 << 10
	e := newEnv(t, func(o *envOptions) { o.limits.MaxReadLimit = 500; o.limits.MaxResponseBytes = maxBytes })
	e.writeSchema(testSchema)
	e.importRels(publicDocs(1500, 150))

	_, err := drain(t, recvOf(e.perms.ExportBulkRelationships(e.ctx(), &v1.ExportBulkRelationshipsRequest{OptionalLimit: 4e9})))
	wantCode(t, err, codes.InvalidArgument, "optional_limit", "4000000000", "500", "--max-read-limit")
	_, err = drain(t, recvOf(e.perms.ReadRelationships(e.ctx(), &v1.ReadRelationshipsRequest{
		RelationshipFilter: &v1.RelationshipFilter{ResourceType: "document"}, OptionalLimit: 4e9})))
	wantCode(t, err, codes.InvalidArgument, "optional_limit", "--max-read-limit")
	_, err = e.perms.DeleteRelationships(e.ctx(), &v1.DeleteRelationshipsRequest{
		RelationshipFilter: &v1.RelationshipFilter{ResourceType: "document", OptionalRelation: "banned"}, OptionalLimit: 4e9})
	wantCode(t, err, codes.InvalidArgument, "optional_limit", "--max-read-limit")

	for _, limit := range []uint32{0, 500} {
		pages, err := drain(t, recvOf(e.perms.ExportBulkRelationships(e.ctx(), &v1.ExportBulkRelationshipsRequest{OptionalLimit: limit})))
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for i, p := range pages {
			if n := proto.Size(p); n > maxBytes {
				t.Fatalf("limit %d: page %d is %d bytes, more than %d", limit, i, n, maxBytes)
			}
			if n := len(p.GetRelationships()); n > 500 || n == 0 {
				t.Fatalf("limit %d: page %d has %d relationships", limit, i, n)
			}
			for _, r := range p.GetRelationships() {
				seen[r.GetResource().GetObjectId()] = true
			}
		}
		if len(seen) != 1500 || len(pages) < 3 {
			t.Fatalf("limit %d: %d distinct relationships in %d pages, want 1500 in several", limit, len(seen), len(pages))
		}
		// Resuming after the second page yields exactly the rest.
		rest, err := drain(t, recvOf(e.perms.ExportBulkRelationships(e.ctx(), &v1.ExportBulkRelationshipsRequest{OptionalLimit: limit, OptionalCursor: pages[1].GetAfterResultCursor()})))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, p := range rest {
			for _, r := range p.GetRelationships() {
				got[r.GetResource().GetObjectId()] = true
			}
		}
		for _, p := range pages[:2] {
			for _, r := range p.GetRelationships() {
				if got[r.GetResource().GetObjectId()] {
					t.Fatalf("limit %d: resumed export repeats %s", limit, r.GetResource().GetObjectId())
				}
			}
		}
		if want := 1500 - len(pages[0].GetRelationships()) - len(pages[1].GetRelationships()); len(got) != want {
			t.Fatalf("limit %d: resumed export has %d relationships, want %d", limit, len(got), want)
		}
	}
	e.answersCheck(t)
}

// recvOf adapts a stream call's (stream, error) to drain's recv.
func recvOf[T any](s grpc.ServerStreamingClient[T], err error) func() (*T, error) {
	if err != nil {
		return func() (*T, error) { return nil, err }
	}
	return s.Recv
}

// TestSecurityUnreadLookupStreams: lookups whose client never reads hold
// their slots; lookups beyond --max-concurrent-heavy wait and get
// ResourceExhausted naming the limit, and a Check is still answered.
func TestSecurityUnreadLookupStreams(t *testing.T) {
	e := newEnv(t, func(o *envOptions) { o.limits.MaxConcurrentHeavy = 2; o.limits.RequestTimeout = time.Minute })
	e.writeSchema(testSchema)
	e.importRels(publicDocs(3000, 200))
	slow := e.slowClient(t)
	req := &v1.LookupResourcesRequest{ResourceObjectType: "document", Permission: "view", Subject: subj("user:mallory"), Consistency: full()}

	hctx, stopHolders := context.WithCancel(context.Background())
	defer stopHolders()
	var holders []v1.PermissionsService_LookupResourcesClient
	for range 2 {
		s, err := slow.LookupResources(hctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); err != nil { // running; never read again
			t.Fatal(err)
		}
		holders = append(holders, s)
	}
	errs := make(chan error, 10)
	for range 10 {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			s, err := slow.LookupResources(ctx, req)
			if err == nil {
				_, err = drain(t, s.Recv)
			}
			errs <- err
		}()
	}
	e.answersCheck(t)
	for range 10 {
		err := <-errs
		wantCode(t, err, codes.ResourceExhausted, "LookupResources", "2 concurrent heavy calls", "--max-concurrent-heavy")
		if d, ok := api.RetryAfter(err); !ok || d <= 0 {
			t.Errorf("a call refused for want of a heavy slot carries no RetryInfo: %v", err)
		}
	}
	e.answersCheck(t)
	stopHolders()
	for _, s := range holders {
		if _, err := drain(t, s.Recv); status.Code(err) != codes.Canceled {
			t.Fatalf("holder ended with %v, want Canceled", err)
		}
	}
	// The slots are free again.
	if _, err := drain(t, recvOf(e.perms.LookupResources(e.ctx(), &v1.LookupResourcesRequest{ResourceObjectType: "document", Permission: "view", Subject: subj("user:ana"), OptionalLimit: 5}))); err != nil {
		t.Fatalf("lookup after the holders left: %v", err)
	}
}

// TestSecurityUnreadLookupsHoldLittle (issue 16 item 3): lookups stream
// their results as they are proven, so a lookup over 50,000 public documents
// whose client takes the first result and never reads again holds the
// position of its walk and what gRPC's flow-control window buffers, not the
// 50,000 results it has yet to send (about 12 MB each before the lookups
// streamed). Many such lookups together stay under a loose heap bound, and
// the server still answers.
func TestSecurityUnreadLookupsHoldLittle(t *testing.T) {
	const (
		docs    = 50_000
		streams = 24
		bound   = 64 << 20 // 24 lookups that each held their results: 222 MiB
	)
	e := newEnv(t, func(o *envOptions) {
		o.limits.MaxConcurrentHeavy = streams
		o.limits.RequestTimeout = 5 * time.Minute
		o.applyTimeout = time.Minute // a 5,000-relationship chunk on a loaded machine under -race
	})
	e.writeSchema(testSchema)
	// One import with a deadline a loaded machine under -race meets.
	ictx, icancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer icancel()
	imp, err := e.perms.ImportBulkRelationships(ictx)
	if err != nil {
		t.Fatal(err)
	}
	for rels := range slices.Chunk(publicDocs(docs, 200), 500) {
		if err := imp.Send(&v1.ImportBulkRelationshipsRequest{Relationships: rels}); err != nil {
			_, err = imp.CloseAndRecv() // the server ended the stream: why
			t.Fatalf("import: %v", err)
		}
	}
	if _, err := imp.CloseAndRecv(); err != nil {
		t.Fatalf("import: %v", err)
	}
	slow := e.slowClient(t)
	req := &v1.LookupResourcesRequest{ResourceObjectType: "document", Permission: "view", Subject: subj("user:mallory"), Consistency: full()}
	heap := func() int64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	base := heap()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var held []v1.PermissionsService_LookupResourcesClient
	for range streams {
		s, err := slow.LookupResources(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		first, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if id := first.GetResourceObjectId(); !strings.HasSuffix(id, "0000000") {
			t.Fatalf("first result %s, want the smallest id", id)
		}
		held = append(held, s)
	}
	e.answersCheck(t)
	grew := heap() - base
	t.Logf("%d lookups read once: the heap grew by %d MiB", streams, grew>>20)
	if grew > bound {
		t.Errorf("%d lookups that were read once hold %d MiB of heap, more than %d MiB", streams, grew>>20, bound>>20)
	}
	stop()
	for _, s := range held {
		if _, err := drain(t, s.Recv); status.Code(err) != codes.Canceled {
			t.Fatalf("held lookup ended with %v, want Canceled", err)
		}
	}
	// Read on, a lookup gives the documents once each, in order.
	const read = 5000
	rctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	got, err := drain(t, recvOf(e.perms.LookupResources(rctx, &v1.LookupResourcesRequest{ResourceObjectType: "document", Permission: "view", Subject: subj("user:ana"), OptionalLimit: read})))
	if err != nil || len(got) != read {
		t.Fatalf("a lookup read to its limit: %d results, %v", len(got), err)
	}
	for i := 1; i < len(got); i++ {
		if got[i-1].GetResourceObjectId() >= got[i].GetResourceObjectId() {
			t.Fatalf("results %d and %d out of order", i-1, i)
		}
	}
}

// TestSecurityMemoryHighWater: above the heap high-water mark every heavy
// call is refused with ResourceExhausted naming the limit, and light calls
// are answered.
func TestSecurityMemoryHighWater(t *testing.T) {
	e := newEnv(t, func(o *envOptions) { o.limits.MemoryHighWater = 1; o.limits.HeavyBulkChecks = 3 })
	e.writeSchema(testSchema)
	e.write(opTouch, "document:a#viewer@user:ana")
	ctx := e.ctx()
	bulk := func(n int) *v1.CheckBulkPermissionsRequest {
		r := &v1.CheckBulkPermissionsRequest{}
		for range n {
			r.Items = append(r.Items, &v1.CheckBulkPermissionsRequestItem{Resource: obj("document:a"), Permission: "view", Subject: subj("user:ana")})
		}
		return r
	}
	heavy := map[string]func() error{
		"LookupResources": func() error {
			_, err := drain(t, recvOf(e.perms.LookupResources(ctx, &v1.LookupResourcesRequest{ResourceObjectType: "document", Permission: "view", Subject: subj("user:ana")})))
			return err
		},
		"LookupSubjects": func() error {
			_, err := drain(t, recvOf(e.perms.LookupSubjects(ctx, &v1.LookupSubjectsRequest{Resource: obj("document:a"), Permission: "view", SubjectObjectType: "user"})))
			return err
		},
		"ExportBulkRelationships": func() error {
			_, err := drain(t, recvOf(e.perms.ExportBulkRelationships(ctx, &v1.ExportBulkRelationshipsRequest{})))
			return err
		},
		"ExpandPermissionTree": func() error {
			_, err := e.perms.ExpandPermissionTree(ctx, &v1.ExpandPermissionTreeRequest{Resource: obj("document:a"), Permission: "view"})
			return err
		},
		"CheckBulkPermissions": func() error {
			_, err := e.perms.CheckBulkPermissions(ctx, bulk(4))
			return err
		},
		"ResourceAccess": func() error {
			s, err := ambitv1.NewAccessServiceClient(e.conn).ResourceAccess(ctx, &ambitv1.ResourceAccessRequest{Resource: aobj("document", "a"), RankedPermissions: []string{"view"}, SubjectObjectType: "user"})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		},
		"Explain": func() error {
			_, err := ambitv1.NewAccessServiceClient(e.conn).Explain(ctx, &ambitv1.ExplainRequest{Resource: aobj("document", "a"), Permission: "view", Subject: asubj("user", "ana")})
			return err
		},
	}
	for name, call := range heavy {
		err := call()
		wantCode(t, err, codes.ResourceExhausted, name, "high-water mark", "--memory-limit")
		if _, ok := api.RetryAfter(err); !ok {
			t.Errorf("%s refused above the high-water mark carries no RetryInfo: %v", name, err)
		}
	}
	if _, err := e.perms.CheckBulkPermissions(ctx, bulk(3)); err != nil {
		t.Fatalf("a small CheckBulkPermissions is not heavy: %v", err)
	}
	if _, err := drain(t, recvOf(e.perms.ReadRelationships(ctx, &v1.ReadRelationshipsRequest{RelationshipFilter: &v1.RelationshipFilter{ResourceType: "document"}}))); err != nil {
		t.Fatalf("ReadRelationships is not heavy: %v", err)
	}
	e.answersCheck(t)
}

// TestSecurityRequestTimeout: a call whose client sets no deadline and stops
// reading ends with DeadlineExceeded at --request-timeout, even while it is
// blocked sending, and gives up its heavy slot then; Watch is exempt.
func TestSecurityRequestTimeout(t *testing.T) {
	const timeout = 2 * time.Second
	e := newEnv(t, func(o *envOptions) { o.limits.RequestTimeout = timeout; o.limits.MaxConcurrentHeavy = 1 })
	start := e.writeSchema(testSchema)
	e.importRels(publicDocs(2000, 200))
	slow := e.slowClient(t)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := e.watch.Watch(ctx, &v1.WatchRequest{OptionalStartCursor: start})
	if err != nil {
		t.Fatal(err)
	}
	s, err := slow.LookupResources(ctx, &v1.LookupResourcesRequest{ResourceObjectType: "document", Permission: "view", Subject: subj("user:mallory")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil { // it holds the only heavy slot and is never read again
		t.Fatal(err)
	}
	// Another lookup, started once the unread one is past its deadline (it
	// waits at most its own), gets the slot.
	time.Sleep(timeout)
	next, err := drain(t, recvOf(e.perms.LookupResources(e.ctx(), &v1.LookupResourcesRequest{ResourceObjectType: "document", Permission: "view", Subject: subj("user:ana"), OptionalLimit: 3})))
	if err != nil || len(next) != 3 {
		t.Fatalf("a lookup after the unread one: %d results, %v", len(next), err)
	}
	e.answersCheck(t)
	_, err = drain(t, s.Recv)
	wantCode(t, err, codes.DeadlineExceeded) // gRPC's own message when the deadline cuts a blocked send
	// The watch outlived the request timeout and still delivers.
	e.write(opTouch, "document:late#viewer@user:ana")
	for {
		resp, err := w.Recv()
		if err != nil {
			t.Fatalf("watch after the request timeout: %v", err)
		}
		if u := resp.GetUpdates(); len(u) > 0 && u[len(u)-1].GetRelationship().GetResource().GetObjectId() == "late" {
			break
		}
	}
}

// TestSecurityWatchSplitsLargeRevision: a revision larger than
// --max-response-bytes reaches a client with a small receive limit in
// several responses, and a watch resumed from any token it delivered
// yields exactly the rest.
// 600 relationships fit one piece of the store's change feed; 2,500 span
// three, so the responses also cross the store's pieces.
func TestSecurityWatchSplitsLargeRevision(t *testing.T) {
	for _, n := range []int{600, 2500} {
		t.Run(fmt.Sprint(n), func(t *testing.T) { watchSplitsLargeRevision(t, n) })
	}
}

func watchSplitsLargeRevision(t *testing.T, n int) {
	const maxBytes = 16 << 10
	e := newEnv(t, func(o *envOptions) { o.limits.MaxResponseBytes = maxBytes })
	start := e.writeSchema(testSchema)
	e.importRels(publicDocs(n, 100))
	del, err := e.perms.DeleteRelationships(e.ctx(), &v1.DeleteRelationshipsRequest{RelationshipFilter: &v1.RelationshipFilter{ResourceType: "document"}})
	if err != nil || del.GetRelationshipsDeletedCount() != uint64(n) {
		t.Fatalf("delete: %v, %v", del, err)
	}
	end := del.GetDeletedAt()

	// watchFrom collects every update after from up to the delete's token.
	type piece struct {
		updates []string
		token   *v1.ZedToken
	}
	watchFrom := func(from *v1.ZedToken) []piece {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		w, err := e.watch.Watch(ctx, &v1.WatchRequest{OptionalStartCursor: from}, grpc.MaxCallRecvMsgSize(maxBytes))
		if err != nil {
			t.Fatal(err)
		}
		var out []piece
		for {
			resp, err := w.Recv()
			if err != nil {
				t.Fatalf("watch from %s after %d responses: %v", from.GetToken(), len(out), err)
			}
			if n := proto.Size(resp); n > maxBytes {
				t.Fatalf("a watch response is %d bytes, more than %d", n, maxBytes)
			}
			p := piece{token: resp.GetChangesThrough()}
			for _, u := range resp.GetUpdates() {
				p.updates = append(p.updates, u.GetOperation().String()+" "+u.GetRelationship().GetResource().GetObjectId())
			}
			out = append(out, p)
			if proto.Equal(resp.GetChangesThrough(), end) {
				return out
			}
		}
	}
	all := watchFrom(start)
	var flat []string
	for _, p := range all {
		flat = append(flat, p.updates...)
	}
	if len(flat) != 2*n || len(all) < 4 {
		t.Fatalf("%d updates in %d responses, want %d in several per revision", len(flat), len(all), 2*n)
	}
	// Resume from every token delivered: the rest is exactly what followed.
	done := 0
	for i, p := range all[:len(all)-1] {
		done += len(p.updates)
		var rest []string
		for _, q := range watchFrom(p.token) {
			rest = append(rest, q.updates...)
		}
		if fmt.Sprint(rest) != fmt.Sprint(flat[done:]) {
			t.Fatalf("resumed after response %d: %d updates, want the %d that followed it", i, len(rest), len(flat)-done)
		}
		// Every token is also a valid consistency.
		if _, err := e.perms.CheckPermission(e.ctx(), &v1.CheckPermissionRequest{Consistency: fresh(p.token), Resource: obj("document:a"), Permission: "view", Subject: subj("user:ana")}); err != nil {
			t.Fatalf("token of response %d as at_least_as_fresh: %v", i, err)
		}
	}
	e.answersCheck(t)
}

// TestSecurityRequestTimeoutCoversAccessService: --request-timeout also
// bounds ambit.v1's calls. A ResourceAccess whose client sets no deadline
// and stops reading ends with DeadlineExceeded and frees its heavy slot,
// as an authzed v1 lookup does.
func TestSecurityRequestTimeoutCoversAccessService(t *testing.T) {
	const timeout = 2 * time.Second
	e := newEnv(t, func(o *envOptions) { o.limits.RequestTimeout = timeout; o.limits.MaxConcurrentHeavy = 1 })
	e.writeSchema(testSchema)
	pad := strings.Repeat("x", 190)
	var rels []*v1.Relationship
	for i := range 3000 { // ~600 KB of answers: far more than the slow client's window
		rels = append(rels, rel(fmt.Sprintf("document:many#viewer@user:%s%05d", pad, i)))
	}
	e.importRels(rels)
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := &ambitv1.ResourceAccessRequest{Resource: aobj("document", "many"), RankedPermissions: []string{"view"}, SubjectObjectType: "user"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := ambitv1.NewAccessServiceClient(conn).ResourceAccess(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil { // it holds the only heavy slot and is never read again
		t.Fatal(err)
	}
	time.Sleep(timeout)
	small := &ambitv1.ResourceAccessRequest{Resource: aobj("document", "many"), RankedPermissions: []string{"view"}, SubjectObjectType: "user", OptionalLimit: 3}
	next, err := drain(t, recvOf(ambitv1.NewAccessServiceClient(e.conn).ResourceAccess(e.ctx(), small)))
	if err != nil || len(next) != 3 {
		t.Fatalf("a ResourceAccess after the unread one: %d answers, %v", len(next), err)
	}
	_, err = drain(t, s.Recv)
	wantCode(t, err, codes.DeadlineExceeded)
}
