package api

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/ambit-authz/ambit/api/apitoken"
	"github.com/ambit-authz/ambit/raft"
	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

func auditEntryAt(t *testing.T, index uint64, cmd raft.Command) raft.AppliedEntry {
	t.Helper()
	cmd.Now = time.Date(2026, 12, 7, 20, 0, 0, 0, time.UTC)
	b, err := raft.Encode(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return raft.AppliedEntry{Index: index, Data: b}
}

func writeOf(id string) raft.Command {
	r, err := tuple.Parse("doc:" + id + "#viewer@user:ana")
	if err != nil {
		panic(err)
	}
	c := raft.WriteCommand([]store.Update{{Op: store.OpTouch, Rel: r}}, nil)
	c.Actor = "0123456789abcdef"
	return c
}

func readAudit(t *testing.T, a *AuditLog, after tuple.Revision) ([]tuple.Revision, []string) {
	t.Helper()
	var revs []tuple.Revision
	var lines []string
	err := a.Tail(context.Background(), after, false, func(rev tuple.Revision, line []byte) error {
		revs = append(revs, rev)
		lines = append(lines, string(line))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return revs, lines
}

// A node that restarts and re-applies entries (replay) writes each revision
// once; no-ops are left out; rotated files are read back in order; the
// token name is looked up once and the secret material of a token record
// (salt, hash) is not written.
func TestAuditLogOnceAcrossRestartAndRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	open := func() *AuditLog {
		a, err := OpenAuditLog(AuditOptions{Path: path, MaxBytes: 600, Keep: 50, NoSync: true,
			TokenName: func(id string) string { return "loader-" + id[:4] }})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := open()
	for i := uint64(1); i <= 5; i++ {
		a.Applied(auditEntryAt(t, i, writeOf(strings.Repeat("x", int(i)))))
	}
	a.Applied(auditEntryAt(t, 6, raft.NoopCommand()))
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a = open() // a restart replays 3..6 and goes on
	tok, _ := apitoken.New()
	rec := apitoken.Record{ID: tok.ID, Name: "ci", Scopes: []apitoken.Scope{apitoken.Check}, Salt: tok.Salt, Hash: tok.Hash, Created: time.Now()}
	for i := uint64(3); i <= 9; i++ {
		cmd := writeOf(strings.Repeat("y", int(i)))
		if i <= 5 {
			cmd = writeOf(strings.Repeat("x", int(i)))
		}
		if i == 6 {
			cmd = raft.NoopCommand()
		}
		if i == 9 {
			cmd = raft.RecordsCommand(nil, nil, []store.RecordOp{{Space: apitoken.Space, Key: rec.ID, Value: rec.Encode()}},
				[]store.RecordCond{{Space: apitoken.Space, Key: rec.ID}})
		}
		a.Applied(auditEntryAt(t, i, cmd))
	}
	defer a.Close()
	deadline := time.Now().Add(10 * time.Second)
	var revs []tuple.Revision
	var lines []string
	for time.Now().Before(deadline) {
		if revs, lines = readAudit(t, a, 0); len(revs) == 8 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := []tuple.Revision{1, 2, 3, 4, 5, 7, 8, 9}
	if len(revs) != len(want) {
		t.Fatalf("revisions %v, want %v", revs, want)
	}
	for i := range want {
		if revs[i] != want[i] {
			t.Fatalf("revisions %v, want %v", revs, want)
		}
	}
	rotated, _ := filepath.Glob(path + ".*")
	if len(rotated) == 0 {
		t.Fatal("the log did not rotate at 600 bytes")
	}
	stored := 0 // in the files themselves, not as Tail reads them
	for _, p := range append(rotated, path) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		stored += strings.Count(string(b), "\n")
	}
	if stored != len(want) {
		t.Fatalf("the files hold %d lines, want %d", stored, len(want))
	}
	if !strings.Contains(lines[0], `"token_name":"loader-0123"`) || !strings.Contains(lines[0], `"~doc:x#viewer@user:ana"`) {
		t.Errorf("first line %s", lines[0])
	}
	last := lines[len(lines)-1]
	if !strings.Contains(last, `"op":"token.create"`) || !strings.Contains(last, `"name":"ci"`) {
		t.Errorf("token line %s", last)
	}
	b, _ := os.ReadFile(path)
	for _, secret := range [][]byte{tok.Hash, tok.Salt} {
		for _, enc := range []string{string(secret), b64.EncodeToString(secret)} {
			if strings.Contains(string(b), enc) {
				t.Error("the audit log holds a token's salt or hash")
			}
		}
	}
	// Resuming after a revision.
	if revs, _ := readAudit(t, a, 7); len(revs) != 2 || revs[0] != 8 {
		t.Fatalf("after 7: %v", revs)
	}
}

// A follower of Tail gets lines written after it started, in order.
func TestAuditTailFollow(t *testing.T) {
	a, err := OpenAuditLog(AuditOptions{Path: filepath.Join(t.TempDir(), "audit.jsonl"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.Applied(auditEntryAt(t, 1, writeOf("a")))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := make(chan tuple.Revision, 10)
	done := make(chan error, 1)
	go func() {
		done <- a.Tail(ctx, 0, true, func(rev tuple.Revision, _ []byte) error { got <- rev; return nil })
	}()
	for i := uint64(2); i <= 4; i++ {
		a.Applied(auditEntryAt(t, i, writeOf("b")))
	}
	for want := tuple.Revision(1); want <= 4; want++ {
		select {
		case rev := <-got:
			if rev != want {
				t.Fatalf("got revision %d, want %d", rev, want)
			}
		case <-ctx.Done():
			t.Fatalf("revision %d never came", want)
		}
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Tail ended with %v", err)
	}
}

// Each kind of change is named in the audit log; a refused command is
// recorded as refused.
func TestAuditOps(t *testing.T) {
	a := &AuditLog{o: AuditOptions{MaxRelationships: 1, TokenName: func(string) string { return "" }}, names: map[string]string{}}
	rel, _ := tuple.Parse("doc:a#viewer@user:ana")
	rel2, _ := tuple.Parse("doc:b#viewer@user:bob")
	scimCmd := raft.RecordsCommand([]store.Update{{Op: store.OpTouch, Rel: rel}}, nil,
		[]store.RecordOp{{Space: "scim.users", Key: "u1", Value: []byte("{}")}}, nil)
	scimCmd.Actor, scimCmd.RequestID = "00000000000000aa", "req-7"
	cases := []struct {
		cmd  raft.Command
		err  error
		want []string
	}{
		{scimCmd, nil, []string{`"op":"scim"`, `"token_id":"00000000000000aa"`, `"request_id":"req-7"`, `"scim.users":1`, `"~doc:a#viewer@user:ana"`}},
		{raft.SchemaCommand("definition user {}"), nil, []string{`"op":"schema"`, `"bytes":18`, `"caller":"preshared key"`}},
		{raft.ImportCommand([]tuple.Relationship{rel, rel2}), nil, []string{`"op":"import"`, `"relationships":2`, `"relationships_truncated":true`}},
		{raft.DeleteCommand(tuple.Filter{ResourceType: "doc", Relation: "viewer"}, 10, false, nil), nil, []string{`"op":"delete"`, `"filter":"doc#viewer"`}},
		{raft.WriteCommand([]store.Update{{Op: store.OpCreate, Rel: rel}}, nil), store.ErrPreconditionFailed, []string{`"op":"write"`, `"outcome":"refused: `, `"+doc:a#viewer@user:ana"`}},
		{raft.Command{Kind: raft.KindForgetMember, Member: raft.MemberInfo{ID: "n3"}}, nil, []string{`"op":"cluster.forget-member"`, `"member":"n3"`}},
	}
	for _, c := range cases {
		e := auditEntryAt(t, 7, c.cmd)
		line, ok := a.entry(queued{index: e.Index, data: e.Data, err: c.err}, nil)
		if !ok {
			t.Fatalf("%v: no line", c.cmd.Kind)
		}
		for _, w := range c.want {
			if !strings.Contains(string(line), w) {
				t.Errorf("%v: %s lacks %s", c.cmd.Kind, line, w)
			}
		}
	}
}

// capturingNode records the command it is asked to apply.
type capturingNode struct {
	Node
	got raft.Command
}

func (c *capturingNode) Apply(_ context.Context, cmd raft.Command) (raft.Result, error) {
	c.got = cmd
	return raft.Result{}, nil
}

// TestActorNodeStampsCommands: every proposed command carries the caller's
// token id and the request id, from gRPC metadata or an HTTP front end's
// X-Request-ID, cut to the format's limit.
func TestActorNodeStampsCommands(t *testing.T) {
	long := strings.Repeat("r", raft.MaxRequestID+10)
	cases := []struct {
		name         string
		ctx          context.Context
		actor, reqID string
	}{
		{"nothing", context.Background(), "", ""},
		{"token and metadata", metadata.NewIncomingContext(WithCaller(context.Background(), Caller{TokenID: "00000000000000ab"}), metadata.Pairs("x-request-id", "abc")), "00000000000000ab", "abc"},
		{"HTTP front end", WithRequestID(context.Background(), "from-http"), "", "from-http"},
		{"too long", WithRequestID(context.Background(), long), "", long[:raft.MaxRequestID]},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := &capturingNode{}
			if _, err := (actorNode{n}).Apply(c.ctx, raft.NoopCommand()); err != nil {
				t.Fatal(err)
			}
			if n.got.Actor != c.actor || n.got.RequestID != c.reqID {
				t.Fatalf("actor %q, request id %q; want %q, %q", n.got.Actor, n.got.RequestID, c.actor, c.reqID)
			}
			if _, err := raft.Encode(n.got); err != nil {
				t.Fatalf("the stamped command does not encode: %v", err)
			}
		})
	}
}

// Past MaxQueueBytes the hook queues entries without their data and the
// writer reads them back (SetEntryReader): the queue's bytes stay within the
// bound, every revision is still written once in order with what its
// command said and its refusal, and an entry the raft log no longer holds
// is a counted write error naming the revision, not a silent gap.
func TestAuditQueueBoundedSpillsToRaftLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	// A bound smaller than any entry: every entry once the reader is set
	// is queued without its data.
	a, err := OpenAuditLog(AuditOptions{Path: path, NoSync: true, MaxQueueBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	log := map[uint64][]byte{}
	var reads int
	var mu sync.Mutex
	a.SetEntryReader(func(index uint64) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		reads++
		if index == 7 {
			return nil, raft.ErrLogEntryGone
		}
		return log[index], nil
	})
	refused := errors.New("precondition failed")
	for i := uint64(1); i <= 20; i++ {
		e := auditEntryAt(t, i, writeOf(fmt.Sprintf("d%02d", i)))
		mu.Lock()
		log[i] = e.Data
		mu.Unlock()
		if i == 4 {
			e.Err = refused
		}
		a.Applied(e)
		a.mu.Lock()
		queued := a.queued
		a.mu.Unlock()
		if queued > 1 {
			t.Fatalf("after entry %d the queue holds %d bytes of entry data, over its bound of 1", i, queued)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	var revs []tuple.Revision
	var lines []string
	for time.Now().Before(deadline) {
		if revs, lines = readAudit(t, a, 0); len(revs) == 19 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var want []tuple.Revision
	for i := tuple.Revision(1); i <= 20; i++ {
		if i != 7 {
			want = append(want, i)
		}
	}
	if !slices.Equal(revs, want) {
		t.Fatalf("revisions written %v, want %v (7 is gone from the log)", revs, want)
	}
	for i, l := range lines {
		if id := fmt.Sprintf("doc:d%02d#viewer@user:ana", want[i]); !strings.Contains(l, id) {
			t.Errorf("line of revision %d does not name %s: %s", want[i], id, l)
		}
	}
	if !strings.Contains(lines[3], `"outcome":"refused: precondition failed"`) {
		t.Errorf("the refused entry's line lost its refusal: %s", lines[3])
	}
	a.mu.Lock()
	spilled, errs := a.spilled, a.errs
	a.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if spilled != 20 || reads != 20 {
		t.Errorf("%d entries spilled and %d read back, want 20 and 20", spilled, reads)
	}
	if errs != 1 {
		t.Errorf("%d write errors, want 1 (revision 7)", errs)
	}
}
