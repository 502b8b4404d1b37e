package api_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"

	"github.com/ambit-authz/ambit/api"
)

func recvUpdates(t *testing.T, w v1.WatchService_WatchClient, n int) ([]string, *v1.ZedToken) {
	t.Helper()
	var out []string
	var last *v1.ZedToken
	for len(out) < n {
		resp, err := w.Recv()
		if err != nil {
			t.Fatalf("watch recv after %v: %v", out, err)
		}
		if resp.GetIsCheckpoint() {
			continue
		}
		for _, u := range resp.GetUpdates() {
			r := u.GetRelationship()
			out = append(out, fmt.Sprintf("%s %s:%s#%s@%s:%s", u.GetOperation(), r.GetResource().GetObjectType(), r.GetResource().GetObjectId(), r.GetRelation(),
				r.GetSubject().GetObject().GetObjectType(), r.GetSubject().GetObject().GetObjectId()))
		}
		last = resp.GetChangesThrough()
	}
	return out, last
}

func TestWatch(t *testing.T) {
	e := newEnv(t)
	start := e.writeSchema(testSchema)
	e.write(opTouch, "document:a#viewer@user:ana")
	e.write(opTouch, "group:g#member@user:bob")

	// From a start cursor, past revisions are replayed in order.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := e.watch.Watch(ctx, &v1.WatchRequest{OptionalStartCursor: start})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := recvUpdates(t, w, 2)
	if want := []string{"OPERATION_TOUCH document:a#viewer@user:ana", "OPERATION_TOUCH group:g#member@user:bob"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("replay = %v, want %v", got, want)
	}
	// Live updates follow; a delete is a DELETE.
	e.write(opDelete, "document:a#viewer@user:ana")
	got, through := recvUpdates(t, w, 1)
	if want := "OPERATION_DELETE document:a#viewer@user:ana"; len(got) != 1 || got[0] != want {
		t.Fatalf("live = %v, want [%s]", got, want)
	}
	cancel()

	// Resuming from the last changes_through sees only what came after.
	e.write(opTouch, "document:b#viewer@user:cat")
	e.write(opTouch, "group:g#member@user:dan")
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	w, err = e.watch.Watch(ctx2, &v1.WatchRequest{OptionalStartCursor: through})
	if err != nil {
		t.Fatal(err)
	}
	got, _ = recvUpdates(t, w, 2)
	if want := []string{"OPERATION_TOUCH document:b#viewer@user:cat", "OPERATION_TOUCH group:g#member@user:dan"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("resumed = %v, want %v", got, want)
	}

	// Filtered by object type: only groups arrive.
	w, err = e.watch.Watch(ctx2, &v1.WatchRequest{OptionalStartCursor: through, OptionalObjectTypes: []string{"group"}})
	if err != nil {
		t.Fatal(err)
	}
	got, _ = recvUpdates(t, w, 1)
	e.write(opTouch, "document:c#viewer@user:eve", "group:h#member@user:fay")
	more, _ := recvUpdates(t, w, 1)
	if want := []string{"OPERATION_TOUCH group:g#member@user:dan", "OPERATION_TOUCH group:h#member@user:fay"}; fmt.Sprint(append(got, more...)) != fmt.Sprint(want) {
		t.Fatalf("filtered = %v, want %v", append(got, more...), want)
	}

	// Without a start cursor, only new changes arrive.
	w, err = e.watch.Watch(ctx2, &v1.WatchRequest{OptionalUpdateKinds: []v1.WatchKind{v1.WatchKind_WATCH_KIND_INCLUDE_RELATIONSHIP_UPDATES, v1.WatchKind_WATCH_KIND_INCLUDE_CHECKPOINTS}})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := w.Recv(); err != nil || !resp.GetIsCheckpoint() {
		t.Fatalf("first message = %v, %v; want a checkpoint", resp, err)
	}
	e.write(opTouch, "document:z#viewer@user:zed")
	got, _ = recvUpdates(t, w, 1)
	if want := "OPERATION_TOUCH document:z#viewer@user:zed"; got[0] != want {
		t.Fatalf("new-only watch = %v, want [%s]", got, want)
	}
}

// Watch streams are bounded (Limits.MaxWatches): past the limit a new one is
// refused as busy, with RetryInfo, and once one closes another is admitted.
func TestWatchStreamsBounded(t *testing.T) {
	e := newEnv(t, func(o *envOptions) { o.limits.MaxWatches = 2 })
	e.writeSchema(testSchema)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	open := func() (context.CancelFunc, error) {
		wctx, wcancel := context.WithCancel(ctx)
		w, err := e.watch.Watch(wctx, &v1.WatchRequest{OptionalUpdateKinds: []v1.WatchKind{v1.WatchKind_WATCH_KIND_INCLUDE_CHECKPOINTS}})
		if err == nil {
			_, err = w.Recv() // the first checkpoint: the stream is open on the server
		}
		if err != nil {
			wcancel()
		}
		return wcancel, err
	}
	var closers []context.CancelFunc
	for i := range 2 {
		c, err := open()
		if err != nil {
			t.Fatalf("watch %d of 2: %v", i+1, err)
		}
		closers = append(closers, c)
	}
	_, err := open()
	wantCode(t, err, codes.ResourceExhausted, "Watch", "2 watch streams", "--max-watches")
	if _, ok := api.RetryAfter(err); !ok {
		t.Errorf("a watch refused at the limit carries no RetryInfo: %v", err)
	}
	closers[0]()
	// The server notices the closed stream soon; poll for a free slot.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := open()
		if err == nil {
			c()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no watch admitted after one closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	closers[1]()
}
