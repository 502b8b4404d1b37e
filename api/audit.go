package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ambit-authz/ambit/api/apitoken"
	ambitv1 "github.com/ambit-authz/ambit/proto/ambit/v1"
	"github.com/ambit-authz/ambit/raft"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// The audit log: one JSON line per change this node applies, in revision
// order, written by one goroutine from the raft OnApplied hook (which only
// queues). Every member writes its own, complete log: the leader's and each
// follower's list the same revisions, each once, because each applies the
// same entries, and the caller's token id travels in the command (Actor). A
// leader failover changes nothing in them; a node that restarts skips the
// revisions its file already has.
//
// Memory: the hook copies each entry into the queue only while the queue
// holds less than AuditOptions.MaxQueueBytes. Past that (an audit disk slower
// than the writes), it queues the entry's index and refusal alone, and the
// writer reads the command back from the raft log when it gets there
// (SetEntryReader): the hook never waits and no line is dropped, unless the
// writer falls so far behind that raft has compacted the entry away, which
// it reports as a write error naming the revision.
//
// Durability: each batch of lines is written and fsynced before the next
// (group commit). A line is lost only if the process dies between applying
// an entry and writing its line; when the machine crashed, the store is
// rebuilt from the raft log and the entries replay into the audit log.

// AuditOptions configure an AuditLog.
type AuditOptions struct {
	Path string
	// MaxBytes rotates the file at this size (default 100 MiB); Keep
	// rotated files are kept (default 10).
	MaxBytes int64
	Keep     int
	// NoSync skips the fsync after each batch (tests, or a file on a
	// filesystem that is itself replicated).
	NoSync bool
	// MaxRelationships bounds the relationships listed in a write's or
	// an import's entry (default 100); the counts are always complete.
	MaxRelationships int
	// MaxQueueBytes bounds the entry data the hook copies into the queue
	// (default 64 MiB); past it, entries are read back from the raft log.
	MaxQueueBytes int64
	// TokenName returns the name of a token id, for entries whose command
	// carries one ("" if unknown).
	TokenName func(id string) string
	Logger    *slog.Logger
}

// AuditLog writes the audit log. Applied is its raft.OnApplied hook.
type AuditLog struct {
	o    AuditOptions
	file *lineFile

	mu      sync.Mutex
	queue   []queued
	queued  int64 // bytes of entry data in queue
	spilled uint64
	read    func(index uint64) ([]byte, error) // SetEntryReader
	wake    chan struct{}                      // signalled when queue gains entries
	closed  bool
	last    tuple.Revision // last revision written
	ring    []auditLine    // recent lines, for followers of Tail
	evicted tuple.Revision // newest revision dropped from ring
	written chan struct{}  // closed and replaced after each batch
	errs    uint64
	lines   uint64

	done  chan struct{}
	names map[string]string // token id -> name (names never change)
}

type queued struct {
	index uint64
	data  []byte // nil when spilled: read back from the raft log
	err   error
	spill bool
}

type auditLine struct {
	rev  tuple.Revision
	json []byte
}

const auditRing = 4096

// OpenAuditLog opens (appends to) the audit log and starts its writer. The
// revision of the file's last line is where it resumes.
func OpenAuditLog(o AuditOptions) (*AuditLog, error) {
	if o.MaxBytes <= 0 {
		o.MaxBytes = 100 << 20
	}
	if o.Keep <= 0 {
		o.Keep = 10
	}
	if o.MaxRelationships <= 0 {
		o.MaxRelationships = 100
	}
	if o.MaxQueueBytes <= 0 {
		o.MaxQueueBytes = 64 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.TokenName == nil {
		o.TokenName = func(string) string { return "" }
	}
	last, err := lastAuditRevision(o.Path)
	if err != nil {
		return nil, fmt.Errorf("audit log %s: %w", o.Path, err)
	}
	f, err := openLineFile(o.Path, o.MaxBytes, o.Keep)
	if err != nil {
		return nil, err
	}
	a := &AuditLog{o: o, file: f, wake: make(chan struct{}, 1), last: last, evicted: last, written: make(chan struct{}),
		done: make(chan struct{}), names: map[string]string{}}
	go a.run()
	return a, nil
}

// SetEntryReader gives the log a way to read an applied entry's command
// back from the raft log (raft.Node.LogEntry), so that past MaxQueueBytes
// the hook can queue entries without their data. Until it is set, every
// entry is copied.
func (a *AuditLog) SetEntryReader(read func(index uint64) ([]byte, error)) {
	a.mu.Lock()
	a.read = read
	a.mu.Unlock()
}

// Applied is the raft.OnApplied hook: it queues a copy of the entry, or,
// past MaxQueueBytes, its index alone.
func (a *AuditLog) Applied(e raft.AppliedEntry) {
	a.mu.Lock()
	if !a.closed {
		q := queued{index: e.Index, err: e.Err}
		if a.read != nil && a.queued+int64(len(e.Data)) > a.o.MaxQueueBytes {
			q.spill = true
			a.spilled++
		} else {
			q.data = slices.Clone(e.Data)
			a.queued += int64(len(e.Data))
		}
		a.queue = append(a.queue, q)
	}
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// Register adds the audit log's metrics to reg.
func (a *AuditLog) Register(reg prometheus.Registerer) error {
	read := func(f func() float64) func() float64 {
		return func() float64 { a.mu.Lock(); defer a.mu.Unlock(); return f() }
	}
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ambit_audit_lag", Help: "Applied changes waiting to be written to the audit log."},
			read(func() float64 { return float64(len(a.queue)) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ambit_audit_revision", Help: "Revision of the last line written to the audit log."},
			read(func() float64 { return float64(a.last) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ambit_audit_lines_total", Help: "Lines written to the audit log."},
			read(func() float64 { return float64(a.lines) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ambit_audit_queue_bytes", Help: "Entry data queued for the audit log (bounded by its queue limit)."},
			read(func() float64 { return float64(a.queued) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ambit_audit_spilled_total", Help: "Entries queued without their data because the audit queue was full, read back from the raft log when written."},
			read(func() float64 { return float64(a.spilled) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ambit_audit_write_errors_total", Help: "Failed audit log writes (each loses its lines; the server log says why)."},
			read(func() float64 { return float64(a.errs) })),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Close writes what is queued and closes the file. Call it after the raft
// node is closed.
func (a *AuditLog) Close() error {
	a.mu.Lock()
	already := a.closed
	a.closed = true
	a.mu.Unlock()
	if !already {
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}
	<-a.done
	return nil
}

func (a *AuditLog) run() {
	defer close(a.done)
	var buf []byte
	for range a.wake {
		a.mu.Lock()
		batch, closed, last, read := a.queue, a.closed, a.last, a.read
		a.queue, a.queued = nil, 0
		a.mu.Unlock()
		var out []auditLine
		for _, q := range batch {
			rev := tuple.Revision(q.index)
			if rev <= last {
				continue // already in the file (a restart replayed it)
			}
			if q.spill {
				data, err := read(q.index)
				if err != nil {
					a.fail(fmt.Errorf("revision %d: queued past the audit queue's bound and no longer readable from the raft log: %w", rev, err))
					continue
				}
				q.data = data
			}
			line, ok := a.entry(q, buf[:0])
			if !ok {
				continue
			}
			if err := a.file.write(line); err != nil {
				a.fail(err)
				continue
			}
			last = rev
			out = append(out, auditLine{rev: rev, json: slices.Clone(line)})
			buf = line
		}
		var err error
		if a.o.NoSync {
			err = a.file.flush()
		} else {
			err = a.file.sync()
		}
		if err != nil {
			a.fail(err)
		}
		a.mu.Lock()
		a.last = last
		a.lines += uint64(len(out))
		a.ring = append(a.ring, out...)
		if n := len(a.ring) - auditRing; n > 0 {
			a.evicted = a.ring[n-1].rev
			a.ring = slices.Delete(a.ring, 0, n)
		}
		close(a.written)
		a.written = make(chan struct{})
		a.mu.Unlock()
		if closed {
			a.mu.Lock()
			empty := len(a.queue) == 0
			a.mu.Unlock()
			if empty {
				if err := a.file.close(); err != nil {
					a.fail(err)
				}
				return
			}
		}
	}
}

func (a *AuditLog) fail(err error) {
	a.mu.Lock()
	a.errs++
	a.mu.Unlock()
	a.o.Logger.Error("audit log: write failed", "path", a.o.Path, "err", err)
}

// auditEntry is one line. Revision comes first so that readers can find
// it without decoding the rest.
type auditEntry struct {
	Revision  uint64         `json:"revision"`
	Time      string         `json:"time"`
	Op        string         `json:"op"`
	TokenID   string         `json:"token_id,omitempty"`
	TokenName string         `json:"token_name,omitempty"`
	RequestID string         `json:"request_id,omitempty"`
	Caller    string         `json:"caller"`
	Outcome   string         `json:"outcome"`
	Summary   map[string]any `json:"summary,omitempty"`
	Rels      []string       `json:"relationships,omitempty"`
	Truncated bool           `json:"relationships_truncated,omitempty"`
}

// entry formats one applied command; ok is false for entries that change
// nothing (the leader's no-op after an election).
func (a *AuditLog) entry(q queued, buf []byte) ([]byte, bool) {
	e := auditEntry{Revision: q.index, Outcome: "applied", Caller: "preshared key"}
	cmd, err := raft.Decode(q.data)
	if err != nil {
		e.Op, e.Outcome, e.Time = "undecodable", "applied", time.Now().UTC().Format(time.RFC3339Nano)
		e.Summary = map[string]any{"error": err.Error()}
		b, _ := json.Marshal(e)
		return append(buf, b...), true
	}
	if cmd.Kind == raft.KindNoop {
		return nil, false
	}
	e.Time = cmd.Now.UTC().Format(time.RFC3339Nano)
	if q.err != nil {
		e.Outcome = "refused: " + q.err.Error()
	}
	e.RequestID = cmd.RequestID
	if cmd.Actor != "" {
		e.TokenID, e.Caller = cmd.Actor, "token"
		name, ok := a.names[cmd.Actor]
		if !ok {
			name = a.o.TokenName(cmd.Actor)
			if name != "" {
				a.names[cmd.Actor] = name
			}
		}
		e.TokenName = name
	}
	rels := func(rs []tuple.Relationship, prefix func(int) string) {
		for i, r := range rs {
			if i == a.o.MaxRelationships {
				e.Truncated = true
				return
			}
			e.Rels = append(e.Rels, prefix(i)+r.String())
		}
	}
	switch cmd.Kind {
	case raft.KindWrite, raft.KindRecords:
		e.Op = "write"
		counts := map[string]int{}
		rs := make([]tuple.Relationship, len(cmd.Updates))
		for i, u := range cmd.Updates {
			counts[strings.ToLower(u.Op.String())]++
			rs[i] = u.Rel
		}
		e.Summary = map[string]any{}
		if len(cmd.Updates) > 0 {
			e.Summary["updates"] = counts
		}
		if len(cmd.Preconditions) > 0 {
			e.Summary["preconditions"] = len(cmd.Preconditions)
		}
		rels(rs, func(i int) string { return opSign(cmd.Updates[i].Op) })
		if cmd.Kind == raft.KindRecords {
			e.Op = a.recordsOp(cmd, e.Summary)
		}
	case raft.KindDelete:
		e.Op = "delete"
		e.Summary = map[string]any{"filter": filterText(cmd.Filter), "limit": cmd.Limit, "allow_partial": cmd.AllowPartial}
		if len(cmd.Preconditions) > 0 {
			e.Summary["preconditions"] = len(cmd.Preconditions)
		}
	case raft.KindSchema:
		e.Op = "schema"
		e.Summary = map[string]any{"bytes": len(cmd.Schema), "hash": schema.DigestOf(cmd.Schema).String()}
	case raft.KindImport:
		e.Op = "import"
		e.Summary = map[string]any{"relationships": len(cmd.Relationships)}
		rels(cmd.Relationships, func(int) string { return "+" })
	case raft.KindSetMember:
		e.Op = "cluster.set-member"
		e.Summary = map[string]any{"member": cmd.Member.ID, "raft_addr": cmd.Member.RaftAddr, "grpc_addr": cmd.Member.GRPCAddr}
	case raft.KindForgetMember:
		e.Op = "cluster.forget-member"
		e.Summary = map[string]any{"member": cmd.Member.ID}
	default:
		e.Op = cmd.Kind.String()
	}
	b, _ := json.Marshal(e) // strings, numbers and maps of them
	return append(buf, b...), true
}

// recordsOp names a records command by what it changes: a token created or
// revoked (never its salt or hash), SCIM records, or records of another
// space; the summary gets the details.
func (a *AuditLog) recordsOp(cmd raft.Command, summary map[string]any) string {
	spaces := map[string]int{}
	op := "records"
	for _, r := range cmd.Records {
		spaces[r.Space]++
		switch {
		case r.Space == apitoken.Space:
			op = a.tokenOp(cmd, r, summary)
		case strings.HasPrefix(r.Space, "scim"):
			op = "scim"
		}
	}
	summary["records"] = spaces
	return op
}

func (a *AuditLog) tokenOp(cmd raft.Command, r store.RecordOp, summary map[string]any) string {
	if r.Value == nil {
		summary["token"] = map[string]any{"id": r.Key}
		return "token.delete"
	}
	rec, err := apitoken.DecodeRecord(r.Value)
	if err != nil {
		summary["token"] = map[string]any{"id": r.Key, "error": err.Error()}
		return "token.put"
	}
	a.names[rec.ID] = rec.Name
	scopes := make([]string, len(rec.Scopes))
	for i, s := range rec.Scopes {
		scopes[i] = string(s)
	}
	t := map[string]any{"id": rec.ID, "name": rec.Name, "scopes": scopes}
	if !rec.Expires.IsZero() {
		t["expires"] = rec.Expires.UTC().Format(time.RFC3339)
	}
	summary["token"] = t
	created := true
	for _, c := range cmd.RecordConds {
		if c.Space == r.Space && c.Key == r.Key && c.Value != nil {
			created = false
		}
	}
	switch {
	case !rec.Revoked.IsZero():
		return "token.revoke"
	case created:
		return "token.create"
	}
	return "token.update"
}

func opSign(op store.Op) string {
	switch op {
	case store.OpCreate:
		return "+"
	case store.OpTouch:
		return "~"
	}
	return "-"
}

func filterText(f tuple.Filter) string {
	var b strings.Builder
	b.WriteString(f.ResourceType)
	if len(f.ResourceIDs) > 0 {
		b.WriteString(":" + strings.Join(f.ResourceIDs, ","))
	} else if f.ResourceIDPrefix != "" {
		b.WriteString(":" + f.ResourceIDPrefix + "*")
	}
	if f.Relation != "" {
		b.WriteString("#" + f.Relation)
	}
	if s := f.Subject; s != nil {
		b.WriteString("@" + s.Type)
		if len(s.IDs) > 0 {
			b.WriteString(":" + strings.Join(s.IDs, ","))
		}
		if s.Relation != nil && *s.Relation != "" {
			b.WriteString("#" + *s.Relation)
		}
	}
	return b.String()
}

// RegisterAudit registers ambit.v1.AuditService on g, serving a's lines
// (a nil a: every call is FailedPrecondition, the node keeps no audit
// log). A following tail ends when the server stops (Stop).
func (s *Server) RegisterAudit(g *grpc.Server, a *AuditLog) {
	ambitv1.RegisterAuditServiceServer(g, auditService{s: s, a: a})
}

type auditService struct {
	ambitv1.UnimplementedAuditServiceServer
	s *Server
	a *AuditLog
}

// TailAudit implements ambitv1.AuditServiceServer.
func (x auditService) TailAudit(req *ambitv1.TailAuditRequest, stream grpc.ServerStreamingServer[ambitv1.TailAuditResponse]) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	go func() {
		select {
		case <-x.s.stopping:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := x.a.Tail(ctx, tuple.Revision(req.GetAfterRevision()), req.GetFollow(), func(rev tuple.Revision, line []byte) error {
		return stream.Send(&ambitv1.TailAuditResponse{Revision: uint64(rev), Json: string(line)})
	})
	switch {
	case errors.Is(err, ErrNoAuditLog):
		return status.Error(codes.FailedPrecondition, err.Error())
	case err != nil && stream.Context().Err() == nil && ctx.Err() != nil:
		return status.Error(codes.Unavailable, "the server is shutting down; resume the tail from the last revision received")
	}
	return err
}

// ErrNoAuditLog: this node was started without --audit-log.
var ErrNoAuditLog = errors.New("this node keeps no audit log (start it with --audit-log FILE)")

// Tail sends the audit log's lines after revision after, in order: the
// rotated files and the current one, then, with follow, new lines as they
// are written, until ctx ends.
func (a *AuditLog) Tail(ctx context.Context, after tuple.Revision, follow bool, send func(tuple.Revision, []byte) error) error {
	if a == nil {
		return ErrNoAuditLog
	}
	sent, err := a.tailFiles(after, send)
	if err != nil || !follow {
		return err
	}
	for {
		a.mu.Lock()
		written := a.written
		var lines []auditLine
		reread := a.evicted > sent
		if !reread {
			i, _ := slices.BinarySearchFunc(a.ring, sent+1, func(l auditLine, r tuple.Revision) int { return int64Cmp(int64(l.rev), int64(r)) })
			lines = slices.Clone(a.ring[i:])
		}
		a.mu.Unlock()
		if reread { // the follower fell more than the ring behind
			if sent, err = a.tailFiles(sent, send); err != nil {
				return err
			}
			continue
		}
		for _, l := range lines {
			if err := send(l.rev, l.json); err != nil {
				return err
			}
			sent = l.rev
		}
		if len(lines) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-written:
		}
	}
}

func int64Cmp(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// tailFiles sends the lines of the files after revision after and returns
// the last revision sent (after if none).
func (a *AuditLog) tailFiles(after tuple.Revision, send func(tuple.Revision, []byte) error) (tuple.Revision, error) {
	// Oldest first. A rotation while this reads can hide the lines of the
	// file being renamed; a follower gets them from the ring.
	paths := []string{}
	for i := a.o.Keep; i >= 1; i-- {
		paths = append(paths, fmt.Sprintf("%s.%d", a.o.Path, i))
	}
	paths = append(paths, a.o.Path)
	sent := after
	for _, p := range paths {
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return sent, err
		}
		err = scanAudit(f, func(rev tuple.Revision, line []byte) error {
			if rev <= sent {
				return nil
			}
			sent = rev
			return send(rev, line)
		})
		f.Close()
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// scanAudit calls fn with each complete line of r and its revision; a line
// being written (no newline yet) or one without a revision is skipped.
func scanAudit(r io.Reader, fn func(tuple.Revision, []byte) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			return nil // an incomplete last line is not sent
		}
		if err != nil {
			return err
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		if rev, ok := auditRevision(line); ok {
			if err := fn(rev, line); err != nil {
				return err
			}
		}
	}
}

func auditRevision(line []byte) (tuple.Revision, bool) {
	var h struct {
		Revision uint64 `json:"revision"`
	}
	if json.Unmarshal(line, &h) != nil || h.Revision == 0 {
		return 0, false
	}
	return tuple.Revision(h.Revision), true
}

// lastAuditRevision is the revision of the last complete line of the
// audit log (or, if it is empty, of its newest rotated file).
func lastAuditRevision(path string) (tuple.Revision, error) {
	for _, p := range []string{path, path + ".1"} {
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return 0, err
		}
		const tail = 1 << 20 // a line is far shorter
		off := max(fi.Size()-tail, 0)
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			return 0, err
		}
		var last tuple.Revision
		err = scanAudit(f, func(rev tuple.Revision, _ []byte) error { last = max(last, rev); return nil })
		f.Close()
		if err != nil {
			return 0, err
		}
		if last > 0 {
			return last, nil
		}
	}
	return 0, nil
}
