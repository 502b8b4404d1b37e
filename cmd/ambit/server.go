package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"

	"github.com/ambit-authz/ambit/api"
	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/raft"
	"github.com/ambit-authz/ambit/store"
)

// The steps of `ambit serve` (serve, in serve.go, runs them in order).

// server is a running `ambit serve`: what its start steps opened, in order.
type server struct {
	c   serveConfig
	log *slog.Logger

	// closers undo the steps in reverse order (close); closeBy is their
	// deadline once shutdown has begun (zero: a failed start, which gets
	// --shutdown-timeout from the moment it closes).
	closers []closeStep
	closeBy time.Time

	// cluster credentials (startRaft)
	secret []byte
	cid    string

	// openStore
	st         *store.Store
	storeFault chan error

	// startRaft
	node      *raft.Node
	memReturn *memoryReturner // memory.go

	// startAPI
	eng      *engine.Engine
	reg      *prometheus.Registry
	srv      *api.Server
	auth     *api.Authenticator
	g        *grpc.Server
	health   *health.Server
	grpcAddr string
	grpcDone chan error
	lis      net.Listener

	readyz                     *api.Readiness
	shuttingDown, bootstrapped *atomic.Bool

	logs serveLogs // tokenserve.go

	// startHTTP
	hs       *http.Server
	httpAddr string
}

func (s *server) onClose(what string, fn func() error) {
	s.closers = append(s.closers, closeStep{what, fn})
}

// close runs the close steps (see closeSteps).
func (s *server) close() error {
	if s.closeBy.IsZero() {
		s.closeBy = time.Now().Add(s.c.shutdownTimeout)
	}
	return closeSteps(s.closers, s.closeBy, s.log)
}

// openStore opens the data directory, the cluster id and the store.
//
// The raft log is the durability point: the store runs without synchronous
// writes behind a guard that rebuilds it from the raft snapshot and log if
// the machine went down while it was open (raft/doc.go, "Durability").
// Without a boot id to tell reboots apart, it fsyncs.
func (s *server) openStore(context.Context) error {
	c := s.c
	if err := os.MkdirAll(c.dataDir, 0o750); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	storeDir := filepath.Join(c.dataDir, "store")
	guard, err := raft.GuardStore(c.dataDir, storeDir, s.log)
	switch {
	case errors.Is(err, raft.ErrNoBootID):
		s.log.Info("store runs with synchronous writes", "reason", err)
	case err != nil:
		return err
	}
	s.storeFault = make(chan error, 1)
	st, err := store.Open(store.Options{Dir: storeDir, SyncWrites: guard == nil, Logger: s.log,
		MemTableSize: c.memory.memTable, MemTables: c.memory.memTables, BlockCacheSize: c.memory.blockCache,
		OnFault: func(err error) { s.storeFault <- err }}) // called at most once
	if err != nil {
		return err
	}
	s.st = st
	s.onClose("the store", func() error {
		if s.node != nil {
			if fault := s.node.Fault(); fault != nil {
				// Closing flushes memtables to the failing disk: it hangs
				// (a directory gone) or, on a full one, badger's mmapped
				// table takes a SIGBUS. Left open, the store is as after a
				// crash: it replays its own log at restart, and raft the rest.
				s.log.Warn("shutdown: the store is left unclosed after a disk fault; it recovers at restart", "fault", fault)
				return nil
			}
		}
		if err := st.Close(); err != nil || guard == nil {
			return err
		}
		return guard.Closed()
	})
	return nil
}

// startRaft loads the cluster credentials, opens the gRPC listener (its
// address is what other members dial) and starts the raft node over the
// store.
func (s *server) startRaft(ctx context.Context) error {
	c := s.c
	secret, err := c.cluster.load(c.raftAddr, c.raftAdvertise)
	if err != nil {
		return err
	}
	s.secret = secret
	peerTLS, err := c.cluster.peerTLS(c.tlsCert)
	if err != nil {
		return err
	}
	pki, err := c.cluster.pki(secret)
	if err != nil {
		return err
	}
	cid, cidStored, err := clusterID(c.dataDir, c.clusterID, len(c.join) > 0)
	if err != nil {
		return fmt.Errorf("cluster id: %w", err)
	}
	lis, err := net.Listen("tcp", c.grpcAddr)
	if err != nil {
		return fmt.Errorf("gRPC listener: %w", err)
	}
	s.lis = lis
	s.onClose("the gRPC listener", func() error { _ = lis.Close(); return nil })
	s.grpcAddr = lis.Addr().String()
	advertised := s.grpcAddr // what other members dial
	if c.grpcAdvertise != "" {
		advertised = c.grpcAdvertise
	}
	s.memReturn = newMemoryReturner(c.memoryReturnMiB<<20, c.bulkGCPercent)
	go s.memReturn.run(ctx)
	node, err := raft.NewNode(ctx, raft.Config{
		NodeID: c.nodeID, RaftAddr: c.raftAddr, AdvertiseAddr: c.raftAdvertise, GRPCAddr: advertised, Dir: c.dataDir, LogStore: c.raftLogStore,
		LogSegmentSize: c.raftSegmentMiB << 20, LogCacheBytes: c.memory.raftLogCache,
		Bootstrap: c.bootstrap, Join: c.join, ReadReplica: c.replica.readReplica, PresharedKeys: c.keys, ClusterSecret: secret, ClusterPKI: pki, PeerTLS: peerTLS, ClusterID: cid, SchemaGuard: raft.OrphanGuard(s.st), Logger: s.log,
		OnApplied: s.onApplied(), StatusAuth: s.statusAuth,
	}, s.st)
	if err != nil {
		return err
	}
	s.node = node
	if s.logs.audit != nil {
		s.logs.audit.SetEntryReader(node.LogEntry)
	}
	s.onClose("the raft node", node.Close)
	go diskWatch(ctx, node, s.storeFault, c.dataDir, c.diskProbe, uint64(max(c.diskMinFreeMiB, 0))<<20)
	if !cidStored {
		cid = node.ClusterID()
		if err := keepClusterID(c.dataDir, cid); err != nil {
			return fmt.Errorf("cluster id: %w", err)
		}
	}
	s.cid = cid
	return nil
}

// startAPI builds the engine, the metrics and the API, and serves gRPC on
// the listener startRaft opened.
func (s *server) startAPI(ctx context.Context) error {
	c := s.c
	ecfg := c.budgets
	ecfg.MaxBulkChecks, ecfg.CacheMaxCost, ecfg.ReadCacheMaxCost = c.limits.MaxChecksPerBulk, cacheBytes(c.resultCacheMiB, c.memory.resultCache), cacheBytes(c.readCacheMiB, c.memory.readCache)
	eng, err := engine.New(ecfg)
	if err != nil {
		return err
	}
	s.eng = eng
	s.onClose("the engine", func() error { eng.Close(); return nil })

	node, st := s.node, s.st
	s.reg = prometheus.NewRegistry()
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ambit_raft_rejected_peers_total",
		Help: "Raft connections refused because they failed cluster authentication."}, func() float64 { return float64(node.RejectedPeers()) }))
	metrics, err := api.NewMetrics(s.reg, func() float64 { return float64(st.AppliedRevision()) }, func() float64 { return float64(node.State()) })
	if err != nil {
		return err
	}
	s.srv, err = api.New(api.Config{Store: st, Node: node, Engine: eng, ClusterID: s.cid, Limits: c.limits, Logger: s.log, Metrics: metrics, DecisionLog: s.logs.decisions})
	if err != nil {
		return err
	}
	if lm := s.srv.LeopardMetrics(); lm != nil {
		s.reg.MustRegister(lm)
	}
	s.auth = api.NewAuthenticator(c.keys)
	opts := s.srv.ServerOptions(api.ServeOptions{Version: version, Authenticator: s.auth})
	replicaOpts, err := replicaWiring(s.reg, node, st, c.replica)
	if err != nil {
		return err
	}
	opts = append(opts, replicaOpts...)
	if c.tlsCert != "" {
		creds, err := credentials.NewServerTLSFromFile(c.tlsCert, c.tlsKey)
		if err != nil {
			return fmt.Errorf("TLS: %w", err)
		}
		opts = append(opts, grpc.Creds(creds))
	}
	s.g = grpc.NewServer(opts...)
	s.health = s.srv.Register(s.g)
	if err := s.startTokens(); err != nil {
		return err
	}
	s.readyz, s.shuttingDown, s.bootstrapped = readiness(node, c.bootstrapFile != "", c.replica)
	s.readyz.Publish(ctx, s.health, 500*time.Millisecond)
	raft.RegisterService(s.g, node)
	s.grpcDone = make(chan error, 1)
	go func() { s.grpcDone <- s.g.Serve(s.lis) }()
	// A start that fails after this stops the server at once (run drains it
	// on a normal shutdown; a second Stop is harmless).
	s.onClose("the gRPC server", func() error { s.g.Stop(); return nil })
	return nil
}

// startHTTP serves metrics, health, readiness and the HTTP front ends on
// --http-addr, if set.
func (s *server) startHTTP(ctx context.Context) error {
	c := s.c
	if c.httpAddr == "" {
		return nil
	}
	hl, err := net.Listen("tcp", c.httpAddr)
	if err == nil {
		hl, err = httpsListener(hl, c.tlsCert, c.tlsKey)
	}
	if err != nil {
		return fmt.Errorf("HTTP listener: %w", err)
	}
	s.httpAddr = hl.Addr().String()
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		rctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		if err := s.readyz.Check(rctx); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		id, _ := s.node.Leader()
		fmt.Fprintf(w, "ready: %s, leader %s, applied revision %d\n", s.node.State(), id, s.st.AppliedRevision())
	})
	s.mountFrontEnds(ctx, mux)
	if err := mountSCIM(mux, s.srv, s.auth, c, s.httpAddr, s.log); err != nil {
		hl.Close()
		return err
	}
	if c.pprof {
		mux.Handle("/debug/pprof/", pprofHandler(s.auth))
	}
	s.hs = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	// Closed last, so /readyz says why the node is not ready until the end.
	s.closers = append([]closeStep{{"the HTTP server", func() error {
		sctx, cancel := context.WithTimeout(context.Background(), time.Until(s.closeBy))
		defer cancel()
		return s.hs.Shutdown(sctx)
	}}}, s.closers...)
	go func() {
		if err := s.hs.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("HTTP server", "err", err)
		}
	}()
	return nil
}

// mountFrontEnds mounts the HTTP front ends (AuthZEN, the web console, ...) on mux. Each
// authenticates with the gRPC API's credentials; without keys they are
// served only on a loopback address (as gRPC) unless --insecure-no-auth.
func (s *server) mountFrontEnds(ctx context.Context, mux *http.ServeMux) {
	c := s.c
	if len(c.keys) == 0 && !c.insecureNoAuth && !isLoopback(s.httpAddr) {
		s.log.Warn("HTTP front ends off (AuthZEN, web console): --http-addr is not loopback and no --preshared-key is set", "http_addr", s.httpAddr)
		return
	}
	c.authzen.Auth = s.auth
	az := s.srv.AuthZENHandler(c.authzen)
	mux.Handle("/access/v1/", az)
	mux.Handle(api.AuthZENConfiguration, az)
	mountConsole(ctx, mux, c, s.auth, s.grpcAddr, s.cid, s.reg, s.log)
}

// loadBootstrap loads --bootstrap-file, if set, before the node reports
// ready.
func (s *server) loadBootstrap(ctx context.Context) error {
	c := s.c
	if c.bootstrapFile == "" {
		return nil
	}
	if err := loadBootstrapFile(ctx, s.node, s.st, c.bootstrapFile, c.limits.ImportChunk, s.log); err != nil {
		s.shuttingDown.Store(true)
		if fault := s.node.Fault(); fault != nil {
			return codedError{code: exitDiskFault, err: fmt.Errorf("--bootstrap-file: %w", err)}
		}
		return fmt.Errorf("--bootstrap-file: %w", err)
	}
	// A minimize_latency read made during the load pins a revision for up
	// to a quantum: wait it out, so no read after ready misses data.
	if q := c.limits.RevisionQuantum; q > 0 {
		time.Sleep(q)
	}
	s.bootstrapped.Store(true)
	return nil
}

// run waits for the end (ctx, the gRPC server failing, or a disk fault),
// then shuts down: not ready, Watch streams ended, calls in flight drained
// until --shutdown-timeout; the close steps get the rest.
func (s *server) run(ctx context.Context) error {
	c, log := s.c, s.log
	var fault error
	select {
	case <-ctx.Done():
	case err := <-s.grpcDone:
		s.shuttingDown.Store(true)
		return fmt.Errorf("gRPC server stopped: %w", err)
	case <-s.node.Faulted():
		fault = s.node.Fault()
		log.Error("disk fault: not ready, refusing writes; shutting down", "err", fault, "after", c.diskFaultLinger)
		select {
		case <-ctx.Done():
		case <-time.After(c.diskFaultLinger):
		}
	}
	s.shuttingDown.Store(true)
	deadline := time.Now().Add(c.shutdownTimeout)
	log.Info("shutting down: draining in-flight requests", "timeout", c.shutdownTimeout)
	s.health.Shutdown() // NOT_SERVING for every service
	s.srv.Stop()        // end Watch streams; unary calls in flight finish
	drain(s.g, deadline, log)
	// The close steps get what is left, at least closeGrace, and never more
	// than closeGrace past the deadline.
	drained := time.Now()
	if drained.After(deadline) {
		drained = deadline
	}
	s.closeBy = later(deadline, drained.Add(closeGrace))
	if fault != nil {
		return codedError{code: exitDiskFault, err: fmt.Errorf("stopped after a disk fault (restart it once the data directory is writable again): %w", fault)}
	}
	log.Info("stopped")
	return nil
}
