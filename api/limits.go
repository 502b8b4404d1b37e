package api

import (
	"context"
	"fmt"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// Request limits that protect the node as a whole rather than one request's
// size: a default deadline for every authzed v1 and ambit.v1 call, a cap on concurrent
// heavy calls, and a memory high-water mark above which heavy calls are
// refused. A heavy call is one whose cost grows with the data rather than
// with the request (lookups, exports, expands, large bulk checks).

// heavyMethods are always heavy. CheckBulkPermissions is heavy when it has
// more than Limits.HeavyBulkChecks items. Watch is not: it would hold a slot
// for its whole life, and it holds one revision at a time and sends
// responses of at most Limits.MaxResponseBytes.
var heavyMethods = map[string]bool{
	"/authzed.api.v1.PermissionsService/LookupResources":         true,
	"/authzed.api.v1.PermissionsService/LookupSubjects":          true,
	"/authzed.api.v1.PermissionsService/ExportBulkRelationships": true,
	"/authzed.api.v1.PermissionsService/ExpandPermissionTree":    true,
	// ResourceAccess walks every subject of a resource; Explain evaluates
	// every route without the result cache.
	"/ambit.v1.AccessService/ResourceAccess": true,
	"/ambit.v1.AccessService/Explain":        true,
}

// untimed methods are long-lived by design and get no default deadline:
// Watch follows the log for as long as the client wants, an import lasts as
// long as the client streams (each chunk is bounded by ImportChunk).
var untimed = map[string]bool{
	"/authzed.api.v1.WatchService/Watch":                         true,
	"/authzed.api.v1.PermissionsService/ImportBulkRelationships": true,
	"/ambit.v1.AuditService/TailAudit":                           true, // --follow runs until the client leaves
}

// gate admits heavy calls: at most cap at once, none while the Go heap is
// above highWater bytes.
type gate struct {
	slots     chan struct{}
	highWater uint64
}

func newGate(l Limits) *gate {
	g := &gate{slots: make(chan struct{}, l.MaxConcurrentHeavy)}
	if l.MemoryHighWater > 0 {
		g.highWater = uint64(l.MemoryHighWater)
	}
	return g
}

// heapBytes is the memory held by live and not-yet-swept heap objects.
func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// enter waits for a slot until ctx ends and returns its release function.
// It answers ResourceExhausted, naming the limit, when the heap is above the
// high-water mark or no slot frees up before the request's deadline.
func (g *gate) enter(ctx context.Context, method string) (func(), error) {
	if err := g.memoryOK(method); err != nil {
		return nil, err
	}
	start := time.Now()
	select {
	case g.slots <- struct{}{}:
	default:
		// Give up before the deadline (by a fifth of the time left, at most
		// a second), so that the client hears why rather than its own
		// DeadlineExceeded, even from a loaded server.
		var expire <-chan time.Time
		if dl, ok := ctx.Deadline(); ok {
			left := time.Until(dl)
			t := time.NewTimer(left - min(time.Second, left/5))
			defer t.Stop()
			expire = t.C
		}
		select {
		case g.slots <- struct{}{}:
		case <-expire:
			return nil, g.full(method, start)
		case <-ctx.Done():
			return nil, g.full(method, start)
		}
	}
	// Memory may have grown while this call waited.
	if err := g.memoryOK(method); err != nil {
		<-g.slots
		return nil, err
	}
	return func() { <-g.slots }, nil
}

func (g *gate) full(method string, start time.Time) error {
	return overloadedf("%s: the server is running its limit of %d concurrent heavy calls (lookups, exports, expands, large bulk checks; --max-concurrent-heavy) and none finished in the %v this request waited; retry later",
		method, cap(g.slots), time.Since(start).Round(time.Millisecond))
}

func (g *gate) memoryOK(method string) error {
	if g.highWater == 0 {
		return nil
	}
	if h := heapBytes(); h > g.highWater {
		return overloadedf("%s: the server's Go heap (%d MiB) is above its high-water mark of %d MiB (--memory-limit, --memory-high-water-percent); heavy calls are refused until it drops, retry later",
			method, h>>20, g.highWater>>20)
	}
	return nil
}

// heavy reports whether a call is heavy; req is nil for streams.
func (s *Server) heavy(method string, req any) bool {
	if heavyMethods[method] {
		return true
	}
	if b, ok := req.(*v1.CheckBulkPermissionsRequest); ok {
		return len(b.GetItems()) > s.limits.HeavyBulkChecks
	}
	return false
}

// withTimeout applies Limits.RequestTimeout to ctx when the client set no
// deadline or a later one: to the authzed v1 and ambit.v1 methods that are
// not untimed (the cluster's own service, health and reflection have their
// own).
func (s *Server) withTimeout(ctx context.Context, method string) (context.Context, context.CancelFunc) {
	d := s.limits.RequestTimeout
	if d <= 0 || untimed[method] || !(strings.HasPrefix(method, "/authzed.api.v1.") || strings.HasPrefix(method, "/ambit.v1.")) {
		return ctx, func() {}
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

// timeoutCancel keys the cancel function of the deadline tapTimeout set.
type timeoutCancel struct{}

// tapTimeout sets the default deadline on the transport's own stream
// context, before any handler runs. A deadline set later, in an
// interceptor, would reach the handler but not gRPC's flow control: a
// handler blocked sending to a client that stopped reading would wait past
// it for as long as the client liked, holding its heavy slot. With the
// deadline on the transport stream, that send fails when it passes.
func (s *Server) tapTimeout(ctx context.Context, info *tap.Info) (context.Context, error) {
	ctx, cancel := s.withTimeout(ctx, info.FullMethodName)
	return context.WithValue(ctx, timeoutCancel{}, cancel), nil
}

// limitUnary applies the default deadline (already set by tapTimeout when
// the server has it), then admits heavy calls through the gate, and maps
// the handler's error to a status (toStatus) before judging whether the
// deadline ended the call.
func (s *Server) limitUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if c, ok := ctx.Value(timeoutCancel{}).(context.CancelFunc); ok {
		defer c()
	}
	ctx, cancel := s.withTimeout(ctx, info.FullMethod)
	defer cancel()
	if s.heavy(info.FullMethod, req) {
		release, err := s.gate.enter(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		defer release()
	}
	resp, err := h(ctx, req)
	if err != nil {
		resp, err = nil, toStatus(s.log, info.FullMethod, err)
	}
	return resp, s.timedOut(ctx, err)
}

// admit runs the heavy-call gate for a call that does not pass through the
// gRPC interceptors (the AuthZEN front end calls the handlers in process),
// and returns the function that releases its slot (a no-op for a light
// call).
func (s *Server) admit(ctx context.Context, method string, req any) (release func(), err error) {
	if !s.heavy(method, req) {
		return func() {}, nil
	}
	return s.gate.enter(ctx, method)
}

// limitStream is limitUnary for streams.
func (s *Server) limitStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if c, ok := ss.Context().Value(timeoutCancel{}).(context.CancelFunc); ok {
		defer c()
	}
	ctx, cancel := s.withTimeout(ss.Context(), info.FullMethod)
	defer cancel()
	if s.heavy(info.FullMethod, nil) {
		release, err := s.gate.enter(ctx, info.FullMethod)
		if err != nil {
			return err
		}
		defer release()
	}
	return s.timedOut(ctx, h(srv, ctxStream{ss, ctx}))
}

// timedOut replaces the error of a call that failed because its deadline
// passed with DeadlineExceeded, naming the server's limit. (When the
// deadline strikes a send blocked on a client that stopped reading, gRPC
// writes its own DeadlineExceeded status at once, and that is what the
// client sees.)
func (s *Server) timedOut(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != context.DeadlineExceeded {
		return err
	}
	if status.Code(err) == codes.ResourceExhausted {
		return err
	}
	if s.limits.RequestTimeout > 0 {
		return status.Errorf(codes.DeadlineExceeded, "the call ran out of time (the server's --request-timeout is %v; a client may set a shorter deadline, not a longer one): %v", s.limits.RequestTimeout, status.Convert(err).Message())
	}
	return status.Errorf(codes.DeadlineExceeded, "the call ran out of time: %v", status.Convert(err).Message())
}

// ctxStream replaces a stream's context.
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (c ctxStream) Context() context.Context { return c.ctx }

// ParseMemoryLimit parses a --memory-limit value: bytes with an optional
// KiB, MiB, GiB or TiB suffix, a percentage of the memory available to the
// process (its cgroup limit, else physical memory), or 0 / "off" / "none"
// (or empty) for none.
func ParseMemoryLimit(s string) (int64, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "", "0", "off", "none":
		return 0, nil
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || f <= 0 || f > 100 {
			return 0, fmt.Errorf("memory limit %q: a percentage must be in (0, 100]", s)
		}
		total := AvailableMemory()
		if total == 0 {
			return 0, fmt.Errorf("memory limit %q: cannot tell how much memory this process may use; give bytes instead", s)
		}
		return int64(float64(total) * f / 100), nil
	}
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(v), u.m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("memory limit %q: want bytes (optionally with KiB, MiB, GiB or TiB), a percentage, or 0 for none", s)
	}
	return n * mult, nil
}

// AvailableMemory returns the memory this process may use: its cgroup's
// limit (v2, then v1) when it has one, else the machine's physical memory;
// 0 when neither is known.
func AvailableMemory() uint64 {
	phys := physicalMemory()
	for _, path := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil { // "max": no limit
			continue
		}
		if phys == 0 || v < phys { // cgroup v1 reports a huge number for none
			return v
		}
	}
	return phys
}

// physicalMemory reads MemTotal from /proc/meminfo (Linux); 0 elsewhere.
func physicalMemory() uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
