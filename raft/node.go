package raft

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"

	"github.com/ambit-authz/ambit/tuple"
)

// Config configures a Node.
//
// Timing defaults are tuned for a LAN or loopback: heartbeat and election
// timeouts of 1s and a 500ms leader lease, so a surviving majority elects a
// new leader in about two to three seconds, while a busy machine (fsync
// stalls, CPU contention) does not lose its leader spuriously (250ms leases
// did, under load); CommitTimeout 5ms so followers learn the commit index
// quickly when the leader is idle.
type Config struct {
	NodeID        string // unique and stable for the life of the member
	RaftAddr      string // raft TCP bind address, e.g. "0.0.0.0:7001" or "127.0.0.1:0"
	AdvertiseAddr string // raft address peers dial; default: the bound RaftAddr
	GRPCAddr      string // gRPC address of this node as peers dial it
	Dir           string // data directory; raft state lives in Dir/raft
	// Bootstrap forms a new single-node cluster on an empty Dir. A node with
	// neither Bootstrap nor Join also bootstraps. Ignored once Dir has raft
	// state.
	Bootstrap bool
	// Join lists gRPC addresses of existing members; on an empty Dir the node
	// asks them (any member, forwarded to the leader) to add it as a voter.
	// Ignored once Dir has raft state, except by a read replica (which
	// joins again at every start: it leaves the cluster when it closes).
	Join []string
	// ReadReplica joins the cluster as a raft non-voter (replica.go): it
	// receives the log and snapshots and serves reads, never votes and never
	// leads, and leaves the cluster when closed. It needs Join.
	ReadReplica bool
	// ClusterSecret keys the cluster: with it, raft traffic runs over the
	// authenticated, encrypted stream layer (streamlayer.go) and nodes
	// authenticate their cluster calls with a credential derived from it. It
	// must pass CheckClusterSecret. Without it raft traffic is plain TCP that
	// anyone reaching RaftAddr can write to: only for loopback.
	ClusterSecret []byte
	// ClusterPKI, with ClusterSecret, adds mutual TLS with a cluster CA to
	// the raft stream layer (see ClusterPKI).
	ClusterPKI *ClusterPKI
	// PresharedKeys are also accepted on cluster calls (the CLI's `cluster`
	// commands send one); without a ClusterSecret, the node sends the first
	// on its own calls. No key may be empty. With neither a secret nor keys,
	// cluster calls are not authenticated: only for loopback.
	PresharedKeys []string
	// StatusAuth, when set, is asked about a cluster Status call whose
	// credential is neither the cluster credential nor a preshared key: the
	// call's authorization value ("Bearer ..."). admin true serves the
	// member list; false refuses it with PermissionDenied; an error refuses
	// it as unauthenticated. The server wires it to the API's
	// Authenticator, so that a managed API token with the admin scope can
	// list the members (the web console's Live page). Every other cluster
	// call (Forward, ReadIndex, Join, Remove, ClusterID) still takes only
	// the cluster credential or a preshared key.
	StatusAuth func(authorization string) (admin bool, err error)
	// ClusterID is the cluster's identity (the server binds it into
	// ZedTokens); the node reports it to joining nodes. With Join, on an
	// empty Dir or when ClusterID is empty, NewNode asks the member it joins
	// for the id: an empty ClusterID takes the member's, a different one is
	// refused with ErrBadConfig before anything joins. Read it back with
	// Node.ClusterID.
	ClusterID string
	// ApplyTimeout bounds a write (and a wait for a leader) when the caller's
	// context has no earlier deadline. Default 5s.
	ApplyTimeout time.Duration
	// PeerTLS, when set, is the TLS configuration of the node's calls to
	// other members' gRPC ports (forwarding, join, read index): set it when
	// members serve gRPC over TLS. nil calls them in plaintext.
	PeerTLS *tls.Config
	// SchemaGuard is called inside Apply before every schema write
	// (required: OrphanGuard). It is installed here, once, so that it
	// guards the log's replay at start-up as well as new writes.
	SchemaGuard SchemaGuard
	// ForwardValidator checks a command another node forwarded before the
	// leader proposes it (see ForwardValidator); nil proposes it as it came.
	ForwardValidator ForwardValidator
	// LogCacheBytes bounds the in-memory cache of recent log entries;
	// default DefaultLogCacheBytes.
	LogCacheBytes int
	// OnApplied, when set, sees every applied command entry in log order,
	// replay at start-up included (see OnApplied).
	OnApplied OnApplied

	HeartbeatTimeout   time.Duration // default 1s
	ElectionTimeout    time.Duration // default 1s
	LeaderLeaseTimeout time.Duration // default 500ms
	CommitTimeout      time.Duration // default 5ms
	MaxAppendEntries   int           // default 256 (raft's maximum is 1024)
	SnapshotThreshold  uint64        // log entries between snapshots; default 8192
	SnapshotInterval   time.Duration // how often to check the threshold; default 30s
	TrailingLogs       uint64        // entries kept after a snapshot; default 10240
	// LogStore is raft's log and stable store for a new Dir: LogStoreWAL
	// ("wal", hashicorp/raft-wal under Dir/raft/wal) or LogStoreBolt
	// ("bolt", hashicorp/raft-boltdb, Dir/raft/raft.db); default
	// DefaultLogStore. A Dir that already holds either keeps it whatever is
	// set here (the log and the vote live in it); a Dir holding both is
	// refused.
	LogStore string
	// LogSegmentSize is the size in bytes of each raft-wal segment file.
	// raft-wal allocates a segment's whole size when it creates it and
	// starts the next one when it is full, so this is the disk a new node's
	// log takes. Default DefaultLogSegmentSize; at least MinLogSegmentSize.
	// A segment holds at least one entry, however large. LogStoreBolt
	// ignores it.
	LogSegmentSize int
	// NoSync skips fsync in the raft log. Unsafe; for tests only.
	NoSync bool

	Logger *slog.Logger

	// transport, when set (package tests and benchmarks), replaces the TCP
	// transport, e.g. with raft's in-memory one.
	transport closingTransport
}

// closingTransport is a raft transport the node closes.
type closingTransport interface {
	hraft.Transport
	Close() error
}

func (c *Config) setDefaults() {
	if c.ApplyTimeout <= 0 {
		c.ApplyTimeout = 5 * time.Second
	}
	if c.HeartbeatTimeout <= 0 {
		c.HeartbeatTimeout = time.Second
	}
	if c.ElectionTimeout <= 0 {
		c.ElectionTimeout = time.Second
	}
	if c.LeaderLeaseTimeout <= 0 {
		c.LeaderLeaseTimeout = 500 * time.Millisecond
	}
	if c.CommitTimeout <= 0 {
		c.CommitTimeout = 5 * time.Millisecond
	}
	if c.MaxAppendEntries <= 0 {
		c.MaxAppendEntries = 256
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.SnapshotInterval <= 0 {
		c.SnapshotInterval = 30 * time.Second
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 10240
	}
	if c.LogStore == "" {
		c.LogStore = DefaultLogStore
	}
	if c.LogSegmentSize == 0 {
		c.LogSegmentSize = DefaultLogSegmentSize
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func (c *Config) validate() error {
	var missing []string
	if c.NodeID == "" {
		missing = append(missing, "NodeID")
	}
	if c.RaftAddr == "" {
		missing = append(missing, "RaftAddr")
	}
	if c.GRPCAddr == "" {
		missing = append(missing, "GRPCAddr")
	}
	if c.Dir == "" {
		missing = append(missing, "Dir")
	}
	if c.SchemaGuard == nil {
		missing = append(missing, "SchemaGuard")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s must be set", ErrBadConfig, strings.Join(missing, ", "))
	}
	if c.ReadReplica && len(c.Join) == 0 {
		return fmt.Errorf("%w: a read replica joins an existing cluster: give Join (a replica cannot bootstrap one)", ErrBadConfig)
	}
	if c.Bootstrap && len(c.Join) > 0 {
		return fmt.Errorf("%w: Bootstrap and Join are exclusive (bootstrap forms a new cluster, join enters an existing one)", ErrBadConfig)
	}
	if c.LogStore != LogStoreWAL && c.LogStore != LogStoreBolt {
		return fmt.Errorf("%w: LogStore %q is neither %q nor %q", ErrBadConfig, c.LogStore, LogStoreWAL, LogStoreBolt)
	}
	if c.LogSegmentSize < MinLogSegmentSize || c.LogSegmentSize > MaxLogSegmentSize {
		return fmt.Errorf("%w: LogSegmentSize %d is outside [%d, %d] bytes", ErrBadConfig, c.LogSegmentSize, MinLogSegmentSize, MaxLogSegmentSize)
	}
	for i, k := range c.PresharedKeys {
		if k == "" {
			return fmt.Errorf("%w: preshared key %d of %d is empty; an empty key would let any caller in", ErrBadConfig, i+1, len(c.PresharedKeys))
		}
	}
	if c.ClusterSecret != nil {
		if err := CheckClusterSecret(c.ClusterSecret); err != nil {
			return err
		}
	}
	if c.ClusterPKI != nil && (c.ClusterSecret == nil || c.ClusterPKI.CAs == nil) {
		return fmt.Errorf("%w: ClusterPKI needs a ClusterSecret and CAs (mutual TLS comes on top of the secret's proof)", ErrBadConfig)
	}
	if c.MaxAppendEntries > 1024 {
		return fmt.Errorf("%w: MaxAppendEntries %d exceeds raft's maximum of 1024", ErrBadConfig, c.MaxAppendEntries)
	}
	return nil
}

// Role is a node's raft state, for Status and a metrics gauge.
type Role uint8

// Roles.
const (
	RoleUnknown Role = iota
	RoleFollower
	RoleCandidate
	RoleLeader
	RoleShutdown
)

func (r Role) String() string {
	switch r {
	case RoleFollower:
		return "follower"
	case RoleCandidate:
		return "candidate"
	case RoleLeader:
		return "leader"
	case RoleShutdown:
		return "shutdown"
	}
	return "unknown"
}

// Member is one cluster member as Status reports it.
type Member struct {
	ID       string
	RaftAddr string
	GRPCAddr string
	Role     string // "leader", "follower", "candidate" or "unknown"
	Voter    bool
}

// Node is one member of an ambit raft cluster.
type Node struct {
	cfg    Config
	logger *slog.Logger
	fsm    *FSM
	raft   *hraft.Raft
	trans  closingTransport
	stream *secureStream // nil without a cluster secret
	logs   logStore
	// entries reads the log through its cache (LogEntry).
	entries hraft.LogStore
	// callKey is the cluster-call credential derived from ClusterSecret
	// (nil without one).
	callKey   []byte
	validator atomic.Pointer[ForwardValidator]
	peers     *Client

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu          sync.Mutex
	leaderReady chan struct{} // closed once this term's no-op has applied; nil when not leader

	closeOnce sync.Once
	closeErr  error

	fault faultLatch // the first disk fault (diskfault.go)
}

// NewNode opens (or creates) the raft state under cfg.Dir/raft and starts
// the node over the store b. On an empty directory it bootstraps a
// single-node cluster or, with cfg.Join, joins an existing one (blocking until
// the leader has added it, or ctx is done). On a directory with raft state it
// ignores Bootstrap and Join and rejoins with the membership it has.
func NewNode(ctx context.Context, cfg Config, b Backend) (_ *Node, err error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	raftDir := filepath.Join(cfg.Dir, "raft")
	if err := os.MkdirAll(raftDir, 0o750); err != nil {
		return nil, fmt.Errorf("raft: creating %s: %w", raftDir, err)
	}
	hl := newHCLogger(cfg.Logger)

	n := &Node{cfg: cfg, logger: cfg.Logger.With("node", cfg.NodeID)}
	n.fault.init()
	n.ctx, n.cancel = context.WithCancel(context.Background())
	var closers []func() error
	defer func() {
		if err != nil {
			n.cancel()
			for i := len(closers) - 1; i >= 0; i-- {
				_ = closers[i]()
			}
		}
	}()

	kind, err := chooseLogStore(raftDir, cfg.LogStore)
	if err != nil {
		return nil, err
	}
	if n.logs, err = openLogStore(kind, raftDir, cfg.LogSegmentSize, cfg.NoSync, hl); err != nil {
		return nil, fmt.Errorf("raft: opening the %s log store: %w", kind, err)
	}
	if kind != cfg.LogStore {
		n.logger.Info("raft: log store", "store", kind, "configured", cfg.LogStore, "note", "the data dir already holds a "+kind+" log, which it keeps")
	} else {
		n.logger.Info("raft: log store", "store", kind)
	}
	closers = append(closers, n.logs.Close)
	snaps, err := hraft.NewFileSnapshotStoreWithLogger(raftDir, 2, hl)
	if err != nil {
		return nil, fmt.Errorf("raft: opening snapshot store: %w", err)
	}
	advertise, err := advertiseAddr(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.transport != nil {
		n.trans = cfg.transport
	} else if n.trans, n.stream, err = newTransport(cfg, advertise, hl, n.logger); err != nil {
		return nil, err
	}
	closers = append(closers, n.trans.Close)

	n.fsm, err = NewFSM(b, filepath.Join(raftDir, "members.bin"), n.logger)
	if err != nil {
		return nil, err
	}
	n.fsm.SetSchemaGuard(cfg.SchemaGuard)
	n.fsm.SetOnApplied(cfg.OnApplied)
	n.SetForwardValidator(cfg.ForwardValidator)
	halted := make(chan struct{}, 1)
	n.fsm.setOnHalt(func(error) { // once per halt; a restored snapshot clears one
		select {
		case halted <- struct{}{}:
		default:
		}
	})

	// The store is durable, so raft does not restore the newest snapshot on
	// start (NoSnapshotRestoreOnStart) and replay skips what the store holds.
	// A store that is behind the newest snapshot (a fresh or in-memory store)
	// is restored here first, because raft will only replay entries after it.
	if metas, err := snaps.List(); err != nil {
		return nil, fmt.Errorf("raft: listing snapshots: %w", err)
	} else if len(metas) > 0 && metas[0].Index > uint64(b.AppliedRevision()) {
		_, rc, err := snaps.Open(metas[0].ID)
		if err != nil {
			return nil, fmt.Errorf("raft: opening snapshot %s: %w", metas[0].ID, err)
		}
		if err := n.fsm.Restore(rc); err != nil {
			return nil, err
		}
	}

	hasState, err := hraft.HasExistingState(n.logs, n.logs, snaps)
	if err != nil {
		return nil, fmt.Errorf("raft: reading existing state: %w", err)
	}
	// Entries at or below the store's revision are skipped, so a store with
	// data under an empty raft directory holds writes this cluster never
	// committed; applying on top of it would silently diverge.
	if err := checkStoreNotAhead(b.AppliedRevision(), hasState, n.logs, snaps, raftDir, n.logger); err != nil {
		return nil, err
	}
	n.peers = n.newPeerClient()
	closers = append(closers, n.peers.close)
	if len(cfg.Join) > 0 && (!hasState || cfg.ClusterID == "") {
		if err := n.learnClusterID(ctx); err != nil {
			return nil, err
		}
	}
	watched := faultingLogStore{n.logs, n.Fail} // a failed write is a disk fault
	logCache := newLogCache(watched, cfg.LogCacheBytes)
	n.entries = logCache
	notify := make(chan bool, 16)
	rc := hraft.DefaultConfig()
	rc.LocalID = hraft.ServerID(cfg.NodeID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.MaxAppendEntries = cfg.MaxAppendEntries
	rc.BatchApplyCh = true
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	rc.NoSnapshotRestoreOnStart = true
	rc.NotifyCh = notify
	rc.Logger = hl
	n.raft, err = hraft.NewRaft(rc, n.fsm, logCache, watched, snaps, n.trans)
	if err != nil {
		return nil, fmt.Errorf("raft: starting: %w", err)
	}
	closers = append(closers, func() error { return n.raft.Shutdown().Error() })

	n.wg.Add(1)
	go n.watchLeadership(notify)
	n.wg.Add(1)
	go n.watchHalt(halted)

	switch {
	case hasState && cfg.ReadReplica && n.inConfiguration():
		// Still a member (a crash, or promoted since): join again in the
		// background, which changes nothing or updates its addresses. Not
		// blocking: a promoted replica may be the voter an election needs,
		// and may win it, before anyone could answer its join.
		n.logger.Info("raft: read replica restarting as a member; joining again in the background", "applied", uint64(b.AppliedRevision()))
		n.wg.Add(1)
		go n.rejoin()
	case hasState && cfg.ReadReplica:
		n.logger.Info("raft: read replica restarting after it left; joining again", "applied", uint64(b.AppliedRevision()))
		if err := n.joinCluster(ctx); err != nil {
			return nil, err
		}
	case hasState:
		n.logger.Info("raft: restarting with existing state; Bootstrap and Join ignored", "applied", uint64(b.AppliedRevision()))
		n.wg.Add(1)
		go n.refreshOwnMember()
	case len(cfg.Join) == 0:
		conf := hraft.Configuration{Servers: []hraft.Server{{Suffrage: hraft.Voter, ID: rc.LocalID, Address: n.trans.LocalAddr()}}}
		if err := n.raft.BootstrapCluster(conf).Error(); err != nil {
			return nil, fmt.Errorf("raft: bootstrapping: %w", err)
		}
		n.logger.Info("raft: bootstrapped a single-node cluster", "raft_addr", string(n.trans.LocalAddr()))
	default:
		if err := n.joinCluster(ctx); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func checkStoreNotAhead(rev tuple.Revision, hasState bool, logs hraft.LogStore, snaps hraft.SnapshotStore, raftDir string, logger *slog.Logger) error {
	if rev == 0 {
		return nil
	}
	if !hasState {
		return fmt.Errorf("%w: the store is at revision %d but %s holds no raft state; refusing to bootstrap or join over existing data (start from an empty store, or restore the raft directory)", ErrBadConfig, rev, raftDir)
	}
	// With raft state, a store ahead of the log is legitimate right after a
	// snapshot install: the store snapshot is taken after raft's snapshot
	// index, so it may hold entries the log has not received yet (they are
	// skipped when they arrive). Only note it.
	last, err := logs.LastIndex()
	if err != nil {
		return fmt.Errorf("raft: reading the log's last index: %w", err)
	}
	if metas, err := snaps.List(); err == nil && len(metas) > 0 {
		last = max(last, metas[0].Index)
	}
	if uint64(rev) > last {
		logger.Warn("raft: the store is ahead of the raft log; entries up to its revision will be skipped", "store_revision", uint64(rev), "log_last_index", last)
	}
	return nil
}

// nameAddr is an advertised raft address whose host is a DNS name: the
// cluster's configuration keeps the name, and peers resolve it at every
// dial, so a member whose IP changes across restarts (a Kubernetes pod)
// keeps its address.
type nameAddr string

func (a nameAddr) Network() string { return "tcp" }
func (a nameAddr) String() string  { return string(a) }

// advertiseAddr is cfg.AdvertiseAddr as the transport advertises it: a
// host name is kept as a name on the authenticated stream layer (it dials
// by name); raft's plain TCP transport needs an IP, so there it is
// resolved once, now.
func advertiseAddr(cfg Config) (net.Addr, error) {
	if cfg.AdvertiseAddr == "" {
		return nil, nil
	}
	host, port, err := net.SplitHostPort(cfg.AdvertiseAddr)
	if err == nil && (host == "" || port == "" || port == "0") {
		err = errors.New("needs a host and a port")
	}
	if err != nil {
		return nil, fmt.Errorf("%w: AdvertiseAddr %q: %v", ErrBadConfig, cfg.AdvertiseAddr, err)
	}
	if net.ParseIP(host) == nil && cfg.ClusterSecret != nil {
		return nameAddr(cfg.AdvertiseAddr), nil
	}
	a, err := net.ResolveTCPAddr("tcp", cfg.AdvertiseAddr)
	if err != nil {
		return nil, fmt.Errorf("%w: AdvertiseAddr %q: %v", ErrBadConfig, cfg.AdvertiseAddr, err)
	}
	return a, nil
}

// RaftAddr is the raft address this node advertises.
func (n *Node) RaftAddr() string { return string(n.trans.LocalAddr()) }

// ID is the node id.
func (n *Node) ID() string { return n.cfg.NodeID }

// learnClusterID asks the members in cfg.Join, in turn, for the cluster id,
// retrying until ctx is done (a member may be starting): it takes the id if
// none is configured and refuses a different one.
func (n *Node) learnClusterID(ctx context.Context) error {
	var lastErr error
	backoff := 50 * time.Millisecond
	for {
		for _, addr := range n.cfg.Join {
			cctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
			id, err := n.peers.clusterID(cctx, addr)
			cancel()
			switch {
			case err == nil && id == "":
				return fmt.Errorf("%w: the member at %s reports no cluster id; give this node the cluster's id", ErrBadConfig, addr)
			case err == nil && n.cfg.ClusterID != "" && id != n.cfg.ClusterID:
				return fmt.Errorf("%w: this node's cluster id is %q but the member at %s belongs to cluster %q; refusing to join another cluster (give its id, or none to adopt it, on an empty data dir)",
					ErrBadConfig, n.cfg.ClusterID, addr, id)
			case err == nil:
				if n.cfg.ClusterID == "" {
					n.logger.Info("raft: learned the cluster id from a member", "cluster_id", id, "from", addr)
				}
				n.cfg.ClusterID = id
				return nil
			case errors.Is(err, ErrUnauthenticated) || errors.Is(err, ErrBadConfig):
				return fmt.Errorf("raft: asking %s for the cluster id: %w", addr, err)
			}
			lastErr = fmt.Errorf("via %s: %w", addr, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("raft: asking %s for the cluster id: %w (last error: %v)", strings.Join(n.cfg.Join, ", "), ctx.Err(), lastErr)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// ClusterID is the cluster's id: the configured one or, for a node that
// joined without one, the one its member reported.
func (n *Node) ClusterID() string { return n.cfg.ClusterID }

// joinCluster asks the members in cfg.Join, in turn, to add this node,
// retrying until ctx is done (a member may be mid-election).
func (n *Node) joinCluster(ctx context.Context) error {
	self := MemberInfo{ID: n.cfg.NodeID, RaftAddr: n.RaftAddr(), GRPCAddr: n.cfg.GRPCAddr}
	var lastErr error
	backoff := 50 * time.Millisecond
	for {
		for _, addr := range n.cfg.Join {
			cctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
			err := n.peers.joinAs(cctx, addr, self, !n.cfg.ReadReplica)
			cancel()
			if err == nil {
				// Return once this node has caught up, so a caller sees a
				// working member (its configuration includes itself).
				if err := n.catchUp(ctx); err != nil {
					return fmt.Errorf("raft: joined via %s but could not catch up: %w", addr, err)
				}
				n.logger.Info("raft: joined cluster", "via", addr)
				return nil
			}
			if errors.Is(err, ErrNodeExists) || errors.Is(err, ErrUnauthenticated) || errors.Is(err, ErrBadConfig) {
				return fmt.Errorf("raft: joining via %s: %w", addr, err)
			}
			lastErr = fmt.Errorf("via %s: %w", addr, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("raft: joining %s: %w (last error: %v)", strings.Join(n.cfg.Join, ", "), ctx.Err(), lastErr)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// catchUp waits until this node has applied a linearizable revision, for
// as long as ctx allows: each attempt is bounded by ApplyTimeout, but a
// large snapshot takes longer to install, and its install goes on between
// attempts.
func (n *Node) catchUp(ctx context.Context) error {
	for {
		_, err := n.LinearizableRevision(ctx)
		if err == nil || ctx.Err() != nil || errors.Is(err, ErrHalted) || errors.Is(err, ErrClosed) {
			return err
		}
		n.logger.Info("raft: joined; still catching up", "applied", uint64(n.fsm.Applied()), "last_attempt", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// watchLeadership reacts to leadership changes: on winning an election the
// node commits a KindNoop command (so every entry of earlier terms is applied
// and the commit index is reachable by WaitApplied) and records its own
// metadata in the member table.
func (n *Node) watchLeadership(notify <-chan bool) {
	defer n.wg.Done()
	var term termState
	defer term.end()
	for {
		select {
		case <-n.ctx.Done():
			return
		case isLeader := <-notify:
			term.end()
			n.mu.Lock()
			n.leaderReady = nil
			if isLeader {
				n.leaderReady = make(chan struct{})
			}
			ready := n.leaderReady
			n.mu.Unlock()
			if isLeader {
				n.wg.Add(1)
				go n.establishLeadership(term.begin(n.ctx), ready)
			}
		}
	}
}

// watchHalt hands leadership off when the state machine halts: a halted
// leader would go on committing entries it cannot apply, so no write could
// be acknowledged until another member leads.
func (n *Node) watchHalt(halted <-chan struct{}) {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-halted:
			n.handOffHalted()
		}
	}
}

// handOffHalted transfers leadership away from this node if it leads and its
// state machine has halted.
func (n *Node) handOffHalted() {
	if n.fsm.Halted() == nil || n.raft.State() != hraft.Leader {
		return
	}
	n.logger.Warn("raft: handing leadership off: this node's state machine has halted", "err", n.fsm.Halted())
	if err := n.raft.LeadershipTransfer().Error(); err != nil {
		n.logger.Warn("raft: leadership transfer from a halted node failed", "err", err)
	}
}

// Halted returns nil while the node's state machine applies the log, and
// the reason once it has halted (errors.Is(err, ErrHalted); the message
// names the log index and how to recover). A halted node refuses writes and
// linearizable reads; it cannot become correct again without a restart (an
// I/O failure), an upgrade (an entry of a newer version) or a rebuild from a
// snapshot (a corrupt entry). Readiness checks and metrics read it.
func (n *Node) Halted() error { return n.fsm.Halted() }

// termState holds the cancel function of the current leadership term.
type termState struct{ cancel context.CancelFunc }

func (t *termState) begin(parent context.Context) context.Context {
	ctx, cancel := context.WithCancel(parent)
	t.cancel = cancel
	return ctx
}

func (t *termState) end() {
	if t.cancel != nil {
		t.cancel()
		t.cancel = nil
	}
}

func (n *Node) establishLeadership(ctx context.Context, ready chan struct{}) {
	defer n.wg.Done()
	for ctx.Err() == nil {
		actx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
		_, err, _ := n.applyLocal(actx, NoopCommand())
		cancel()
		if err == nil {
			break
		}
		if errors.Is(err, ErrHalted) {
			n.handOffHalted()
			return
		}
		if errors.Is(err, ErrNotLeader) || errors.Is(err, ErrLeadershipLost) || errors.Is(err, ErrClosed) {
			n.logger.Warn("raft: leader no-op failed", "err", err)
			return
		}
		n.logger.Warn("raft: leader no-op failed; retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	if ctx.Err() != nil {
		return
	}
	close(ready)
	n.logger.Info("raft: leader ready", "applied", uint64(n.fsm.Applied()))
	self := MemberInfo{ID: n.cfg.NodeID, RaftAddr: n.RaftAddr(), GRPCAddr: n.cfg.GRPCAddr}
	if m, ok := n.fsm.Member(self.ID); !ok || m != self {
		actx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
		defer cancel()
		if _, err, _ := n.applyLocal(actx, Command{Kind: KindSetMember, Member: self}); err != nil {
			n.logger.Warn("raft: recording own member metadata failed", "err", err)
		}
	}
}

// refreshOwnMember runs after a restart: once the node has caught up with
// the leader, if the member table does not hold this node's current
// addresses (say its gRPC port changed), it re-joins, which updates them. A
// leader does the same for itself in establishLeadership.
func (n *Node) refreshOwnMember() {
	defer n.wg.Done()
	self := MemberInfo{ID: n.cfg.NodeID, RaftAddr: n.RaftAddr(), GRPCAddr: n.cfg.GRPCAddr}
	backoff := 100 * time.Millisecond
	for n.ctx.Err() == nil {
		ctx, cancel := context.WithTimeout(n.ctx, n.cfg.ApplyTimeout)
		var err error
		if _, err = n.LinearizableRevision(ctx); err == nil {
			if m, ok := n.fsm.Member(self.ID); ok && m == self {
				cancel()
				return
			}
			if err = n.Join(ctx, self.ID, self.RaftAddr, self.GRPCAddr); err == nil {
				cancel()
				n.logger.Info("raft: updated own member metadata", "grpc_addr", self.GRPCAddr)
				return
			}
		}
		cancel()
		if errors.Is(err, ErrNodeExists) || errors.Is(err, ErrUnauthenticated) {
			n.logger.Error("raft: cannot update own member metadata", "err", err)
			return
		}
		select {
		case <-n.ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// Close stops the node: raft, its transport and log store. It does not close
// the store. A leader first hands its leadership to the most up-to-date
// voter, so the others do not wait out an election timeout.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.handOffLeadership()
		n.leaveAsReplica()
		n.cancel()
		var errs []error
		if err := n.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("raft shutdown: %w", err))
		}
		if err := n.trans.Close(); err != nil {
			errs = append(errs, fmt.Errorf("raft transport: %w", err))
		}
		n.wg.Wait()
		if err := n.logs.Close(); err != nil {
			errs = append(errs, fmt.Errorf("raft log store: %w", err))
		}
		_ = n.peers.close()
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// handOffLeadership transfers leadership away from this node if it leads a
// cluster with other voters. Raft refuses new writes during the transfer
// (callers retry on the new leader) and gives up after an election timeout.
func (n *Node) handOffLeadership() {
	if n.raft.State() != hraft.Leader || n.otherVoters() == 0 {
		return
	}
	if err := n.raft.LeadershipTransfer().Error(); err != nil {
		n.logger.Warn("raft: leadership transfer before shutdown failed; the other members elect a leader after their election timeout", "err", err)
		return
	}
	n.logger.Info("raft: handed leadership over before shutdown")
}

// otherVoters counts the voters of the current configuration other than
// this node (0 when the configuration cannot be read).
func (n *Node) otherVoters() int {
	cf := n.raft.GetConfiguration()
	if cf.Error() != nil {
		return 0
	}
	others := 0
	for _, s := range cf.Configuration().Servers {
		if s.Suffrage == hraft.Voter && string(s.ID) != n.cfg.NodeID {
			others++
		}
	}
	return others
}

// SetOnApplied installs (or, with nil, removes) the applied-entry hook.
func (n *Node) SetOnApplied(fn OnApplied) { n.fsm.SetOnApplied(fn) }

// opContext bounds ctx by the apply timeout and by Close.
func (n *Node) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
	stop := context.AfterFunc(n.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// Propose replicates cmd and returns the revision it was applied at. It may
// be called on any node: a follower forwards to the leader over gRPC. A domain
// failure is returned as an error wrapping the store's sentinel (errors.Is(err,
// store.ErrPreconditionFailed) works) or ErrSchemaRefused.
func (n *Node) Propose(ctx context.Context, cmd Command) (tuple.Revision, error) {
	res, err := n.Apply(ctx, cmd)
	return res.Revision, err
}

// Apply is Propose returning the whole Result (deleted count, partial flag).
// Errors: ErrNoLeader (nothing proposed; retryable), ErrTimeout,
// ErrLeadershipLost and ErrForward (the outcome is unknown), domain failures.
func (n *Node) Apply(ctx context.Context, cmd Command) (Result, error) {
	if n.ctx.Err() != nil {
		return Result{}, ErrClosed
	}
	if err := n.fsm.Halted(); err != nil { // nothing proposed: this node could not apply it
		return Result{}, err
	}
	if err := n.fault.get(); err != nil {
		return Result{}, err
	}
	if err := checkProposable(cmd); err != nil { // refuse bad input before anything moves
		return Result{}, err
	}
	ctx, cancel := n.opContext(ctx)
	defer cancel()
	backoff := 10 * time.Millisecond
	var lastErr error
	for {
		if n.raft.State() == hraft.Leader {
			res, err, retry := n.applyLocal(ctx, cmd)
			if !retry {
				return res, err
			}
			lastErr = err
		} else if id, addr := n.Leader(); addr != "" {
			res, err := n.forwardToLeader(ctx, id, addr, cmd)
			if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrNoLeader) {
				if errors.Is(err, ErrForward) {
					err = fmt.Errorf("to leader %s at %s: %w", id, addr, err)
				}
				return res, err
			}
			lastErr = err
		} else if id != "" {
			lastErr = fmt.Errorf("%w: leader %s has no known gRPC address yet", ErrNoLeader, id)
		}
		select {
		case <-ctx.Done():
			if lastErr == nil {
				lastErr = ErrNoLeader
			}
			return Result{}, fmt.Errorf("%w: no leader accepted the write within the deadline (the cluster may have lost quorum); last attempt: %s",
				ErrNoLeader, strings.TrimPrefix(lastErr.Error(), ErrNoLeader.Error()+": "))
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// checkProposable refuses what a client may not propose: commands that do not
// encode or exceed MaxCommandBytes, and member-table commands, which only
// Join and Remove write.
func checkProposable(cmd Command) error {
	if cmd.Kind == KindSetMember || cmd.Kind == KindForgetMember {
		return fmt.Errorf("%w: %s commands are written by Join and Remove, not proposed", ErrBadCommand, cmd.Kind)
	}
	data, err := Encode(cmd)
	if err == nil && len(data) > MaxCommandBytes {
		err = fmt.Errorf("%w: the %s command encodes to %d bytes, more than one raft entry's limit of %d; split it (for imports, a smaller chunk)",
			ErrBadCommand, cmd.Kind, len(data), MaxCommandBytes)
	}
	return err
}

// applyLocal applies cmd through this node's raft, which must be the
// leader. retry reports that nothing was proposed because this node is not
// the leader.
func (n *Node) applyLocal(ctx context.Context, cmd Command) (res Result, err error, retry bool) {
	cmd.Now = time.Now().UTC() // the leader stamps the time every replica applies
	data, err := Encode(cmd)
	if err != nil {
		return Result{}, err, false
	}
	timeout := n.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	f := n.raft.Apply(data, timeout)
	done := make(chan struct{})
	go func() { _ = f.Error(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return Result{}, fmt.Errorf("%w: write not committed in time, outcome unknown (leader %s may have lost quorum): %w", ErrTimeout, n.cfg.NodeID, ctx.Err()), false
	}
	if err := f.Error(); err != nil {
		return Result{}, n.mapRaftErr(err), errors.Is(err, hraft.ErrNotLeader)
	}
	r, ok := f.Response().(*Result)
	if !ok || r == nil {
		return Result{}, fmt.Errorf("raft: unexpected apply response %T", f.Response()), false
	}
	return *r, r.Err, false
}

func (n *Node) mapRaftErr(err error) error {
	switch {
	case errors.Is(err, hraft.ErrNotLeader):
		return fmt.Errorf("%w: %s", ErrNotLeader, n.cfg.NodeID)
	case errors.Is(err, hraft.ErrLeadershipLost):
		return fmt.Errorf("%w (node %s)", ErrLeadershipLost, n.cfg.NodeID)
	case errors.Is(err, hraft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: the leader's apply queue is full: %v", ErrTimeout, err)
	case errors.Is(err, hraft.ErrRaftShutdown):
		return ErrClosed
	case errors.Is(err, hraft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: leadership transfer in progress", ErrNotLeader)
	}
	return fmt.Errorf("raft: %w", err)
}

// WaitApplied blocks until the applied revision is at least rev, ctx is done
// or the node is closed.
func (n *Node) WaitApplied(ctx context.Context, rev tuple.Revision) error {
	if n.fsm.Applied() >= rev {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(n.ctx, cancel)
	defer stop()
	return n.fsm.WaitApplied(ctx, rev)
}

// LatestRevision is the last revision applied on this node (possibly stale).
func (n *Node) LatestRevision() tuple.Revision { return n.fsm.Applied() }

// LinearizableRevision returns a revision that includes every write
// acknowledged before the call, and waits until this node has applied it.
// The leader confirms its leadership with a quorum and uses its commit index;
// a follower asks the leader for that index over gRPC.
func (n *Node) LinearizableRevision(ctx context.Context) (tuple.Revision, error) {
	if err := n.fsm.Halted(); err != nil {
		return 0, err
	}
	ctx, cancel := n.opContext(ctx)
	defer cancel()
	backoff := 10 * time.Millisecond
	for {
		var rev tuple.Revision
		var err error
		if n.raft.State() == hraft.Leader {
			rev, err = n.readIndexLocal(ctx)
		} else if _, addr := n.Leader(); addr != "" {
			rev, err = n.peers.readIndex(ctx, addr)
		} else {
			err = ErrNoLeader
		}
		if err == nil {
			if err := n.WaitApplied(ctx, rev); err != nil {
				return 0, err
			}
			return rev, nil
		}
		if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrNoLeader) {
			return 0, err
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%w: no leader confirmed a read index within the deadline: %v", ErrNoLeader, err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// readIndexLocal is the leader's read index: after this term's no-op has
// applied, confirm leadership with a quorum and return the commit index.
func (n *Node) readIndexLocal(ctx context.Context) (tuple.Revision, error) {
	n.mu.Lock()
	ready := n.leaderReady
	n.mu.Unlock()
	if ready == nil {
		return 0, fmt.Errorf("%w: %s", ErrNotLeader, n.cfg.NodeID)
	}
	select {
	case <-ready:
	case <-ctx.Done():
		return 0, fmt.Errorf("%w: new leader %s has not committed its first entry: %w", ErrTimeout, n.cfg.NodeID, ctx.Err())
	}
	f := n.raft.VerifyLeader()
	done := make(chan struct{})
	go func() { _ = f.Error(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return 0, fmt.Errorf("%w: leader %s could not confirm leadership with a quorum: %w", ErrTimeout, n.cfg.NodeID, ctx.Err())
	}
	if err := f.Error(); err != nil {
		return 0, n.mapRaftErr(err)
	}
	return tuple.Revision(n.raft.CommitIndex()), nil
}

// IsLeader reports whether this node is the leader.
func (n *Node) IsLeader() bool { return n.raft.State() == hraft.Leader }

// Leader returns the current leader's id and gRPC address ("" when unknown).
func (n *Node) Leader() (id, grpcAddr string) {
	_, lid := n.raft.LeaderWithID()
	if lid == "" {
		return "", ""
	}
	m, _ := n.fsm.Member(string(lid))
	return string(lid), m.GRPCAddr
}

// State is this node's raft role.
func (n *Node) State() Role {
	switch n.raft.State() {
	case hraft.Leader:
		return RoleLeader
	case hraft.Follower:
		return RoleFollower
	case hraft.Candidate:
		return RoleCandidate
	case hraft.Shutdown:
		return RoleShutdown
	}
	return RoleUnknown
}

// Status lists the members of the raft configuration as this node knows it.
func (n *Node) Status() ([]Member, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, n.mapRaftErr(err)
	}
	_, leaderID := n.raft.LeaderWithID()
	var out []Member
	for _, s := range f.Configuration().Servers {
		m := Member{ID: string(s.ID), RaftAddr: string(s.Address), Voter: s.Suffrage == hraft.Voter}
		if info, ok := n.fsm.Member(m.ID); ok {
			m.GRPCAddr = info.GRPCAddr
		}
		switch {
		case s.ID == leaderID:
			m.Role = RoleLeader.String()
		case !m.Voter:
			m.Role = RoleReplica
		case m.ID == n.cfg.NodeID:
			m.Role = n.State().String()
		case leaderID != "":
			m.Role = RoleFollower.String()
		default:
			m.Role = RoleUnknown.String()
		}
		out = append(out, m)
	}
	return out, nil
}

// Join adds a voter (on the leader; forwarded otherwise). A re-join with the
// same id and addresses succeeds and changes nothing; an id or address used
// by another member is refused with ErrNodeExists.
func (n *Node) Join(ctx context.Context, nodeID, raftAddr, grpcAddr string) error {
	m := MemberInfo{ID: nodeID, RaftAddr: raftAddr, GRPCAddr: grpcAddr}
	if nodeID == "" || raftAddr == "" || grpcAddr == "" {
		return fmt.Errorf("%w: join needs a node id, a raft address and a gRPC address (got %q, %q, %q)", ErrBadConfig, nodeID, raftAddr, grpcAddr)
	}
	return n.onLeader(ctx, func(ctx context.Context) error { return n.joinLocal(ctx, m, true) },
		func(ctx context.Context, addr string) error { return n.peers.joinHop(ctx, addr, m, true, true) })
}

// Remove removes a member (on the leader; forwarded otherwise).
func (n *Node) Remove(ctx context.Context, nodeID string) error {
	return n.onLeader(ctx, func(ctx context.Context) error { return n.removeLocal(ctx, nodeID) },
		func(ctx context.Context, addr string) error { return n.peers.remove(ctx, addr, nodeID) })
}

// onLeader runs local on the leader or remote against the leader's gRPC
// address, waiting for a leader until ctx (bounded by ApplyTimeout) is done.
func (n *Node) onLeader(ctx context.Context, local func(context.Context) error, remote func(context.Context, string) error) error {
	ctx, cancel := n.opContext(ctx)
	defer cancel()
	backoff := 10 * time.Millisecond
	for {
		var err error
		if n.raft.State() == hraft.Leader {
			err = local(ctx)
		} else if _, addr := n.Leader(); addr != "" {
			err = remote(ctx, addr)
		} else {
			err = ErrNoLeader
		}
		if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrNoLeader) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: no leader within the deadline: %v", ErrNoLeader, err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// joinLocal adds m as a voter (or, voter false, a non-voter). A member
// already in the configuration at the same address keeps its suffrage:
// promote and demote change it.
func (n *Node) joinLocal(ctx context.Context, m MemberInfo, voter bool) error {
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return n.mapRaftErr(err)
	}
	present := false
	for _, s := range cf.Configuration().Servers {
		switch {
		case string(s.ID) == m.ID && string(s.Address) == m.RaftAddr:
			present = true
		case string(s.ID) == m.ID:
			return fmt.Errorf("%w: node id %q is already a member with raft address %s (remove it first)", ErrNodeExists, m.ID, s.Address)
		case string(s.Address) == m.RaftAddr:
			return fmt.Errorf("%w: raft address %s is already used by member %q", ErrNodeExists, m.RaftAddr, s.ID)
		}
	}
	for id, other := range n.fsm.Members() {
		if id != m.ID && other.GRPCAddr == m.GRPCAddr {
			return fmt.Errorf("%w: gRPC address %s is already used by member %q", ErrNodeExists, m.GRPCAddr, id)
		}
	}
	if cur, ok := n.fsm.Member(m.ID); !ok || cur != m {
		if _, err, _ := n.applyLocal(ctx, Command{Kind: KindSetMember, Member: m}); err != nil {
			return err
		}
	}
	if present {
		return nil
	}
	add, what := n.raft.AddVoter, "voter"
	if !voter {
		add, what = n.raft.AddNonvoter, "read replica (non-voter)"
	}
	if err := add(hraft.ServerID(m.ID), hraft.ServerAddress(m.RaftAddr), 0, n.cfg.ApplyTimeout).Error(); err != nil {
		return fmt.Errorf("adding %s %s: %w", what, m.ID, n.mapRaftErr(err))
	}
	n.logger.Info("raft: added "+what, "id", m.ID, "raft_addr", m.RaftAddr, "grpc_addr", m.GRPCAddr)
	return nil
}

func (n *Node) removeLocal(ctx context.Context, id string) error {
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return n.mapRaftErr(err)
	}
	found := false
	for _, s := range cf.Configuration().Servers {
		found = found || string(s.ID) == id
	}
	if !found {
		return fmt.Errorf("%w: %q", ErrUnknownNode, id)
	}
	if _, err, _ := n.applyLocal(ctx, Command{Kind: KindForgetMember, Member: MemberInfo{ID: id}}); err != nil {
		return err
	}
	if err := n.raft.RemoveServer(hraft.ServerID(id), 0, n.cfg.ApplyTimeout).Error(); err != nil {
		return fmt.Errorf("removing %s: %w", id, n.mapRaftErr(err))
	}
	n.logger.Info("raft: removed member", "id", id)
	return nil
}

// Snapshot asks raft to take a snapshot now (and compact the log).
func (n *Node) Snapshot() error {
	if err := n.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("raft: snapshot: %w", err)
	}
	return nil
}

// hclog bridge: raft logs through hclog; lines go to slog at their level.
func newHCLogger(l *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Info, Output: slogWriter{l}, DisableTime: true})
}

type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	switch {
	case strings.HasPrefix(line, "[ERROR]"):
		level = slog.LevelError
	case strings.HasPrefix(line, "[WARN]"):
		level = slog.LevelWarn
	case strings.HasPrefix(line, "[DEBUG]"), strings.HasPrefix(line, "[TRACE]"):
		level = slog.LevelDebug
	}
	if i := strings.Index(line, "]"); i >= 0 {
		line = strings.TrimSpace(line[i+1:])
	}
	w.l.Log(context.Background(), level, line)
	return len(p), nil
}
