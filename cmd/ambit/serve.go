package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"

	"github.com/ambit-authz/ambit/api"
	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/raft"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
	"github.com/ambit-authz/ambit/validation"
)

// serveConfig is everything `ambit serve` is configured with.
type serveConfig struct {
	dataDir         string
	grpcAddr        string
	httpAddr        string
	pprof           bool
	keys            []string
	insecureNoAuth  bool
	cluster         clusterAuth
	tlsCert         string
	tlsKey          string
	nodeID          string
	raftAddr        string
	raftAdvertise   string
	grpcAdvertise   string
	raftLogStore    string
	raftSegmentMiB  int
	bootstrap       bool
	join            []string
	bootstrapFile   string
	clusterID       string
	limits          api.Limits
	memoryLimit     string
	memoryHighPct   int
	memoryReturnMiB int64
	bulkGCPercent   int
	resultCacheMiB  int64
	readCacheMiB    int64
	memory          memoryPlan    // from --memory-limit (applyMemoryLimit)
	budgets         engine.Config // request budgets (README "Request budgets")
	logLevel        string
	logFormat       string
	shutdownTimeout time.Duration
	authzen         api.AuthZENOptions
	logs            logsConfig // tokenserve.go
	scim            scimConfig
	diskProbe       time.Duration
	diskFaultLinger time.Duration
	diskMinFreeMiB  int64
	console         consoleOptions
	replica         replicaFlags // replica.go
}

func newServeCmd() *cobra.Command {
	var c serveConfig
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the authorization server (authzed v1 gRPC API) on an embedded, raft-replicated store",
		Long: `serve opens (or creates) the store under --data-dir, starts a raft node
(a single-node cluster bootstrapped on first start unless --join is given)
and serves the authzed v1 gRPC API (SpiceDB-compatible: zed and every
SpiceDB client library work) on --grpc-addr, and /metrics, /healthz and
/readyz on --http-addr.

Every flag can also be set from the environment as AMBIT_<FLAG>, e.g.
AMBIT_PRESHARED_KEY (comma-separated for several keys) or AMBIT_DATA_DIR.
Without a preshared key the server only listens on a loopback address,
unless --insecure-no-auth is given. A non-loopback --raft-addr needs a
cluster secret shared by every member (--cluster-secret-file or
AMBIT_CLUSTER_SECRET), unless --insecure-cluster is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), c, cmd.ErrOrStderr(), nil)
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.dataDir, "data-dir", "./ambit-data", "directory of the store and the raft log")
	f.StringVar(&c.grpcAddr, "grpc-addr", "127.0.0.1:50051", "gRPC listen address (the authzed v1 API and cluster traffic)")
	f.StringVar(&c.httpAddr, "http-addr", "127.0.0.1:8080", "HTTP listen address for /metrics, /healthz and /readyz (no auth) and the AuthZEN API (--preshared-key); empty disables")
	f.BoolVar(&c.pprof, "pprof", false, "also serve Go's profiler under /debug/pprof/ on --http-addr (behind the preshared keys, as the API; no cmdline)")
	f.StringArrayVar(&c.keys, "preshared-key", nil, "bearer key clients must send (repeatable; any one is accepted)")
	f.BoolVar(&c.insecureNoAuth, "insecure-no-auth", false, "allow serving without a preshared key on a non-loopback address")
	c.cluster.flags(f)
	f.StringVar(&c.tlsCert, "tls-cert", "", "TLS certificate file for the gRPC port and the HTTP listener (--http-addr then serves HTTPS)")
	f.StringVar(&c.tlsKey, "tls-key", "", "TLS key file for the gRPC port and the HTTP listener")
	f.StringVar(&c.nodeID, "node-id", "node-1", "raft node id; unique in the cluster and stable across restarts")
	f.StringVar(&c.raftAddr, "raft-addr", "127.0.0.1:50061", "raft listen address")
	f.StringVar(&c.raftAdvertise, "raft-advertise", "", "raft address peers dial (default: the bound --raft-addr)")
	f.StringVar(&c.grpcAdvertise, "grpc-advertise", "", "gRPC address other members dial to forward writes and read indexes to this one (default: the bound --grpc-addr)")
	f.StringVar(&c.raftLogStore, "raft-log-store", raft.DefaultLogStore, "raft log store of a new data dir: wal or bolt (a data dir keeps the one it has)")
	f.IntVar(&c.raftSegmentMiB, "raft-log-segment-mib", raft.DefaultLogSegmentSize>>20, "size of each raft-wal log segment file in MiB, allocated when the segment is created")
	c.replica.flags(f)
	f.BoolVar(&c.bootstrap, "bootstrap", false, "form a new single-node cluster on an empty data dir (the default without --join)")
	f.StringArrayVar(&c.join, "join", nil, "gRPC address of a cluster member to join on an empty data dir (repeatable)")
	f.StringVar(&c.bootstrapFile, "bootstrap-file", "", "validation YAML whose schema and relationships are loaded into an empty store at start")
	f.StringVar(&c.clusterID, "cluster-id", "", "cluster id bound into ZedTokens (default: generated on first start, or with --join learned from the member joined, and kept in DATA_DIR/cluster-id; a joining node given another id is refused)")
	f.DurationVar(&c.limits.RevisionQuantum, "revision-quantum", api.DefaultRevisionQuantum, "minimize_latency reads stay at one revision this long while writes advance it, so checks share cache entries (negative: always the latest)")
	f.IntVar(&c.limits.MaxUpdatesPerWrite, "max-updates-per-write", api.DefaultMaxUpdatesPerWrite, "most updates in one WriteRelationships")
	f.IntVar(&c.limits.MaxPreconditions, "max-preconditions", api.DefaultMaxPreconditions, "most preconditions in one write or delete")
	f.IntVar(&c.limits.MaxChecksPerBulk, "max-checks-per-bulk", api.DefaultMaxChecksPerBulk, "most items in one CheckBulkPermissions")
	f.IntVar(&c.limits.MaxLookupResults, "max-lookup-results", api.DefaultMaxLookupResults, "most results of a lookup without a limit")
	f.IntVar(&c.limits.MaxReadLimit, "max-read-limit", api.DefaultMaxReadLimit, "largest optional_limit of ReadRelationships, DeleteRelationships and ExportBulkRelationships (larger is InvalidArgument)")
	f.IntVar(&c.limits.MaxResponseBytes, "max-response-bytes", api.DefaultMaxResponseBytes, "largest export page or Watch response in bytes (a larger revision is split across Watch responses)")
	f.DurationVar(&c.limits.RequestTimeout, "request-timeout", api.DefaultRequestTimeout, "deadline of a call whose client sets none or a later one (Watch and imports excepted; negative disables)")
	f.IntVar(&c.limits.MaxConcurrentHeavy, "max-concurrent-heavy", api.DefaultMaxConcurrentHeavy(), "heavy calls (lookups, exports, expands, large bulk checks) run at once; more wait until their deadline, then get ResourceExhausted")
	f.IntVar(&c.limits.MaxWatches, "max-watches", api.DefaultMaxWatches, "Watch streams open at once (the console's live page long-polls through Watch); more are refused as busy (ResourceExhausted with RetryInfo)")
	f.IntVar(&c.limits.HeavyBulkChecks, "heavy-bulk-checks", api.DefaultHeavyBulkChecks, "a CheckBulkPermissions with more items than this counts as heavy")
	f.StringVar(&c.memoryLimit, "memory-limit", "75%", "Go memory limit (GOMEMLIMIT): bytes (KiB, MiB, GiB suffixes), a percentage of the cgroup's or machine's memory, or 0 for none")
	f.IntVar(&c.memoryHighPct, "memory-high-water-percent", 90, "heavy calls are refused with ResourceExhausted while the Go heap is above this percentage of --memory-limit")
	f.Int64Var(&c.memoryReturnMiB, "memory-return-after-mib", 16, "after this many MiB of applied log entries (a bulk import, a catch-up), once applying pauses for two seconds, return the Go heap's free memory to the OS, and again 5 s later while applying stays paused (at most every 5 s); 0 disables")
	f.IntVar(&c.bulkGCPercent, "bulk-gc-percent", 50, "GOGC while log entries are applied at a bulk rate (1 MiB/s or more: imports, catch-ups), so the heap stays nearer its live size; restored when applying pauses (after the second return of --memory-return-after-mib); 0 leaves GOGC alone")
	f.IntVar(&c.limits.ImportChunk, "import-chunk", api.DefaultImportChunk, "relationships per replicated import command")
	f.Int64Var(&c.resultCacheMiB, "result-cache-mib", 0, "MiB of check and sub-problem results kept per revision (0: a share of --memory-limit, at most 64; negative disables)")
	f.Int64Var(&c.readCacheMiB, "read-cache-mib", 0, "MiB of relationship sets (one resource's relation) kept per revision for checks (0: a share of --memory-limit, at most 64; negative disables)")
	f.IntVar(&c.budgets.MaxDispatches, "max-dispatches", 100_000, "sub-problems one check may evaluate (each bulk item and lookup candidate is one check); more is ResourceExhausted; 0 = default")
	f.IntVar(&c.budgets.MaxReads, "max-reads", 1_000_000, "relationships one check may read; more is ResourceExhausted")
	f.Int64Var(&c.budgets.MaxCaveatCost, "max-caveat-cost", 1_000_000, "CEL cost of the caveats one check may evaluate, summed (each evaluation is also capped at 100,000); more is ResourceExhausted")
	f.IntVar(&c.budgets.MaxExpandNodes, "max-expand-nodes", 100_000, "nodes of one ExpandPermissionTree answer, counted as sent; more is ResourceExhausted")
	f.Int64Var(&c.budgets.MaxExpandBytes, "max-expand-bytes", 64<<20, "approximate bytes of one ExpandPermissionTree answer; more is ResourceExhausted")
	f.IntVar(&c.budgets.LeopardMaxEdges, "leopard-max-edges", 1_000_000, "nesting edges (group#member in group#member) the nested-group index holds; past it the index empties and checks walk nested groups; negative disables the index")
	f.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&c.logFormat, "log-format", "text", "text or json")
	f.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long shutdown waits for in-flight requests; closing the store and raft gets what is left, at least 3s more, then the process exits anyway")
	f.DurationVar(&c.diskProbe, "disk-probe-interval", time.Second, "how often to check that the data dir is still there and writable (write and fsync a small file); 0 disables")
	c.logs.flags(f)
	f.Int64Var(&c.diskMinFreeMiB, "disk-min-free-mib", 64, "free MiB the data dir's filesystem must keep; less is a disk fault (badger's memory-mapped log cannot fail a write cleanly on a full disk); 0 disables")
	f.DurationVar(&c.diskFaultLinger, "disk-fault-linger", 2*time.Second, "after a disk fault, how long the node goes on answering (not ready, writes refused) before it shuts down and exits with status 3")
	f.Int64Var(&c.authzen.MaxBodyBytes, "authzen-max-body", api.DefaultAuthZENMaxBody, "largest AuthZEN request body in bytes (on --http-addr)")
	f.DurationVar(&c.authzen.Timeout, "authzen-timeout", api.DefaultAuthZENTimeout, "budget of each AuthZEN request")
	c.console.flags(f)
	addSCIMFlags(f, &c.scim)
	return cmd
}

// flagsFromEnv sets every flag not given on the command line from
// AMBIT_<NAME> (dashes become underscores); list flags split on commas; a
// variable set to "" counts as unset. Every command calls it (newRoot).
func flagsFromEnv(fs *pflag.FlagSet) error {
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		name := "AMBIT_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v, ok := os.LookupEnv(name)
		if !ok || v == "" { // set but empty: as if unset
			return
		}
		vals := []string{v}
		if f.Value.Type() == "stringArray" {
			vals = strings.Split(v, ",")
		}
		for _, s := range vals {
			if err := fs.Set(f.Name, strings.TrimSpace(s)); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
			}
		}
	})
	return errors.Join(errs...)
}

// applyMemoryLimit sets the Go memory limit from --memory-limit and the
// heap high-water mark above which the API refuses heavy calls.
func applyMemoryLimit(c *serveConfig, log *slog.Logger) error {
	limit, err := api.ParseMemoryLimit(c.memoryLimit)
	if err != nil {
		return fmt.Errorf("--memory-limit: %w", err)
	}
	if c.memoryHighPct == 0 {
		c.memoryHighPct = 90
	}
	if c.memoryHighPct < 0 || c.memoryHighPct > 100 {
		return fmt.Errorf("--memory-high-water-percent %d is outside 1..100", c.memoryHighPct)
	}
	if c.memoryReturnMiB < 0 {
		return fmt.Errorf("--memory-return-after-mib %d is negative (0 disables)", c.memoryReturnMiB)
	}
	if c.bulkGCPercent < 0 {
		return fmt.Errorf("--bulk-gc-percent %d is negative (0 leaves GOGC alone)", c.bulkGCPercent)
	}
	c.memory = planMemory(limit)
	if limit == 0 {
		return nil
	}
	debug.SetMemoryLimit(limit)
	c.limits.MemoryHighWater = limit/100*int64(c.memoryHighPct) + limit%100*int64(c.memoryHighPct)/100
	log.Info("memory limit", "bytes", limit, "heavy_calls_refused_above", c.limits.MemoryHighWater, "caches_at_most", c.memory.total())
	return nil
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", format)
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// clusterID returns the cluster id for the node: the one kept in the data
// dir (the configured one must match it), else the configured one. With
// neither, a node that joins gets "" (raft learns the id from the member it
// joins; keepClusterID stores it), and any other node generates one and keeps
// it. stored reports that the data dir already holds the result.
func clusterID(dir, configured string, joining bool) (id string, stored bool, err error) {
	path := filepath.Join(dir, "cluster-id")
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		stored := strings.TrimSpace(string(data))
		if configured != "" && configured != stored {
			return "", false, fmt.Errorf("--cluster-id %q differs from %q stored in %s", configured, stored, path)
		}
		return stored, true, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", false, err
	}
	if joining {
		return configured, false, nil
	}
	id = configured
	if id == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", false, err
		}
		id = hex.EncodeToString(b[:])
	}
	return id, true, keepClusterID(dir, id)
}

// keepClusterID stores the cluster id in the data dir.
func keepClusterID(dir, id string) error {
	path := filepath.Join(dir, "cluster-id")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// serveAddrs reports the bound addresses once the server is ready (tests).
type serveAddrs struct{ grpc, http string }

// serve runs the server until ctx is done, then drains in-flight requests.
// serve runs `ambit serve` until ctx ends or the node fails: it checks the
// configuration, then runs the start steps in order (open the store, start
// raft, start the gRPC API, start the HTTP listener, load the bootstrap
// file), announces the addresses, waits, and shuts down. Whatever a step
// opened is closed in reverse order, each close with a deadline, whether the
// start failed or the server ran.
func serve(ctx context.Context, c serveConfig, logOut io.Writer, ready func(serveAddrs)) (err error) {
	log, err := newLogger(logOut, c.logLevel, c.logFormat)
	if err != nil {
		return err
	}
	if err := checkServeConfig(&c, log); err != nil {
		return err
	}
	s := &server{c: c, log: log}
	defer func() {
		if cerr := s.close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	for _, step := range []func(context.Context) error{s.openStore, s.openLogs, s.startRaft, s.startAPI, s.startHTTP} {
		if err := step(watchCtx); err != nil {
			return err
		}
	}
	if err := s.loadBootstrap(ctx); err != nil {
		return err
	}
	log.Info("ambit serving", "grpc_addr", s.grpcAddr, "http_addr", s.httpAddr, "node_id", c.nodeID, "raft_addr", s.node.RaftAddr(),
		"data_dir", c.dataDir, "auth", len(c.keys) > 0, "tls", c.tlsCert != "", "cluster_auth", s.secret != nil)
	if ready != nil {
		ready(serveAddrs{grpc: s.grpcAddr, http: s.httpAddr})
	}
	return s.run(ctx)
}

// checkServeConfig refuses a configuration that is unsafe or inconsistent
// before anything is opened, and fills in defaults.
func checkServeConfig(c *serveConfig, log *slog.Logger) error {
	c.join = selfJoin(c.join, c.grpcAdvertise) // replica.go
	if len(c.keys) == 0 && !c.insecureNoAuth && !isLoopback(c.grpcAddr) {
		return fmt.Errorf("refusing to serve on %s without authentication: give --preshared-key (or AMBIT_PRESHARED_KEY), or --insecure-no-auth to allow it", c.grpcAddr)
	}
	if err := checkKeys(c.keys); err != nil {
		return err
	}
	if c.pprof && len(c.keys) == 0 && !c.insecureNoAuth && c.httpAddr != "" && !isLoopback(c.httpAddr) {
		return fmt.Errorf("refusing to serve --pprof on %s without authentication: give --preshared-key, or --insecure-no-auth to allow it", c.httpAddr)
	}
	if err := c.scim.check(); err != nil {
		return err
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return errors.New("--tls-cert and --tls-key must be given together")
	}
	if c.raftSegmentMiB < 1 || c.raftSegmentMiB > raft.MaxLogSegmentSize>>20 {
		return fmt.Errorf("--raft-log-segment-mib %d is outside 1..%d", c.raftSegmentMiB, raft.MaxLogSegmentSize>>20)
	}
	for _, b := range []struct {
		flag string
		v    int64
	}{{"--max-dispatches", int64(c.budgets.MaxDispatches)}, {"--max-reads", int64(c.budgets.MaxReads)}, {"--max-caveat-cost", c.budgets.MaxCaveatCost},
		{"--max-expand-nodes", int64(c.budgets.MaxExpandNodes)}, {"--max-expand-bytes", c.budgets.MaxExpandBytes}} {
		if b.v < 0 { // 0 takes the engine's default
			return fmt.Errorf("%s must not be negative (%d): every request has a budget", b.flag, b.v)
		}
	}
	if c.limits.MaxUpdatesPerWrite <= 0 {
		c.limits.MaxUpdatesPerWrite = api.DefaultMaxUpdatesPerWrite
	}
	if c.limits.ImportChunk <= 0 {
		c.limits.ImportChunk = api.DefaultImportChunk
	}
	return applyMemoryLimit(c, log)
}

// drain stops the gRPC server, letting calls in flight finish until
// deadline; then it cancels them, and waits for the server at most a second
// more (a handler stuck in the store must not hold the process).
func drain(g *grpc.Server, deadline time.Time, log *slog.Logger) {
	stopped := make(chan struct{})
	go func() { g.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
		return
	case <-time.After(time.Until(deadline)):
	}
	log.Warn("shutdown timeout: closing remaining streams")
	g.Stop()
	select {
	case <-stopped:
	case <-time.After(time.Second):
		log.Error("shutdown: gRPC calls still running after they were canceled; abandoned")
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// readiness lists what a node needs to take traffic: not shutting down, no
// disk fault, a state machine that has not halted, a leader known and
// everything committed applied here, and the bootstrap file (if any) loaded. Add a condition with one Require line.
func readiness(node *raft.Node, bootstrapFile bool, replica replicaFlags) (r *api.Readiness, shuttingDown, bootstrapped *atomic.Bool) {
	r = new(api.Readiness)
	shuttingDown, bootstrapped = new(atomic.Bool), new(atomic.Bool)
	r.Require("shutdown", func(context.Context) error {
		if shuttingDown.Load() {
			return errors.New("the server is shutting down")
		}
		return nil
	})
	r.Require("disk", func(context.Context) error { return node.Fault() })
	r.Require("state machine", func(context.Context) error { return node.Halted() })
	r.Require("raft", replica.raftReady(node))
	if bootstrapFile {
		r.Require("bootstrap file", func(context.Context) error {
			if !bootstrapped.Load() {
				return errors.New("the bootstrap file is not loaded yet")
			}
			return nil
		})
	}
	return r, shuttingDown, bootstrapped
}

// loadBootstrapFile writes the schema and relationships of the first
// document of a validation file, if the store has no schema yet.
func loadBootstrapFile(ctx context.Context, node *raft.Node, st *store.Store, path string, chunk int, log *slog.Logger) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	docs, err := validation.Parse(path, data)
	if err != nil {
		return err
	}
	if len(docs) == 0 {
		return errors.New("the file has no document")
	}
	f := docs[0]
	sch, err := schema.Compile(f.Name, f.Schema)
	if err != nil {
		return err
	}
	rels := make([]tuple.Relationship, 0, len(f.Relationships))
	for _, r := range f.Relationships {
		if err := engine.ValidateRelationship(sch, r.Relationship); err != nil {
			return fmt.Errorf("%s:%d: %w", f.Name, r.Line, err)
		}
		rels = append(rels, r.Relationship)
	}
	rev, err := waitForLeader(ctx, node, log, 10*time.Second)
	if err != nil {
		return err
	}
	if text, at, err := st.ReadSchema(rev); err != nil {
		return err
	} else if text != "" || at != 0 {
		log.Info("bootstrap file ignored: the store already has a schema", "file", path, "schema_revision", uint64(at))
		return nil
	}
	if err := proposePatiently(ctx, node, raft.SchemaCommand(f.Schema), log); err != nil {
		return fmt.Errorf("writing the schema: %w", err)
	}
	for i := 0; i < len(rels); i += chunk {
		if err := proposePatiently(ctx, node, raft.ImportCommand(rels[i:min(i+chunk, len(rels))]), log); err != nil {
			return fmt.Errorf("importing relationships %d and on: %w", i, err)
		}
	}
	log.Info("bootstrap file loaded", "file", path, "relationships", len(rels))
	return nil
}

// cacheBytes turns a --*-cache-mib flag into an engine cache budget:
// negative disables the cache, 0 leaves the engine's default.
func cacheBytes(mib, planned int64) int64 {
	switch {
	case mib < 0:
		return -1
	case mib == 0:
		return planned
	}
	return mib << 20
}
