package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"

	"github.com/ambit-authz/ambit/api"
	"github.com/ambit-authz/ambit/raft"
)

// Read replicas (README "Scaling"): `ambit serve --join ADDR --read-replica`
// joins as a raft non-voter; this file holds its flags, its readiness, the
// replication-lag metric and the header that marks answers given without a
// leader.

// staleHeader is the response header a node sets while it knows no raft
// leader: its answers are from what it applied before it lost contact.
const staleHeader = "ambit-stale"

// replicaFlags configure read replicas.
type replicaFlags struct {
	readReplica bool
	maxLag      uint64
	// maxConnAge makes clients reconnect (and re-resolve DNS) now and
	// then, so that replicas added later get their share of the calls.
	maxConnAge time.Duration
}

func (r *replicaFlags) flags(f *pflag.FlagSet) {
	f.BoolVar(&r.readReplica, "read-replica", false, "with --join: join as a read replica (a raft non-voter that serves reads, forwards writes, never votes, and leaves the cluster when it stops)")
	f.Uint64Var(&r.maxLag, "max-replica-lag", 1000, "a read replica is not ready (/readyz, gRPC health) while it is more than this many committed revisions behind")
	f.DurationVar(&r.maxConnAge, "grpc-max-connection-age", 5*time.Minute, "ask gRPC clients to reconnect after this long (calls in flight finish), so a client balancing over DNS finds members added since; 0 never")
}

// raftReady is the readiness condition of the raft node. A voter is ready
// once it knows a leader and has applied what is committed (CaughtUp). A
// read replica is ready once it has heard from a leader since it started
// and is at most --max-replica-lag revisions behind the commit index it
// last learned; it stays ready when the cluster loses its leader, serving
// minimize_latency reads marked with the ambit-stale header, because reads
// are what it is for.
func (r replicaFlags) raftReady(node *raft.Node) func(context.Context) error {
	if !r.readReplica {
		return node.CaughtUp
	}
	return func(context.Context) error { return replicaReady(node.LastContact(), node.LocalLag(), r.maxLag) }
}

// replicaReady is a read replica's readiness given when it last heard from
// a leader (zero: never since it started) and how many committed revisions
// it has not applied.
func replicaReady(lastContact time.Time, lag, maxLag uint64) error {
	if lastContact.IsZero() {
		return errors.New("this read replica has not heard from a leader since it started")
	}
	if lag > maxLag {
		return fmt.Errorf("this read replica is %d revisions behind the commit index (--max-replica-lag %d)", lag, maxLag)
	}
	return nil
}

// staleness says why a node's answers may be stale ("" while it knows a
// leader).
func staleness(node *raft.Node, applied func() uint64) string {
	if id, _ := node.Leader(); id != "" {
		return ""
	}
	since := "never since it started"
	if t := node.LastContact(); !t.IsZero() {
		since = time.Since(t).Round(time.Millisecond).String() + " ago"
	}
	return fmt.Sprintf("no raft leader known (last contact %s): answers are from applied revision %d and may be stale; fully_consistent and newer at_least_as_fresh reads fail", since, applied())
}

// staleOptions add the ambit-stale response header to every call answered
// while the node knows no leader, so a client reading from a replica of a
// cluster that lost quorum is told its answers may be stale.
func staleOptions(node *raft.Node, applied func() uint64) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if s := staleness(node, applied); s != "" {
				_ = grpc.SetHeader(ctx, metadata.Pairs(staleHeader, s))
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if s := staleness(node, applied); s != "" {
				_ = ss.SetHeader(metadata.Pairs(staleHeader, s))
			}
			return h(srv, ss)
		}),
	}
}

// replicationCollector exports ambit_replication_lag and
// ambit_replication_applied_revision per member, asking every member for
// its progress at scrape time (raft.Node.Replication, a second at most per
// member, in parallel).
type replicationCollector struct {
	node    *raft.Node
	lag     *prometheus.Desc
	applied *prometheus.Desc
}

func registerReplicationMetrics(reg prometheus.Registerer, node *raft.Node) error {
	labels := []string{"member", "voter"}
	return reg.Register(&replicationCollector{node: node,
		lag:     prometheus.NewDesc("ambit_replication_lag", "Revisions a member is behind the newest revision any member reported (members that did not answer are left out).", labels, nil),
		applied: prometheus.NewDesc("ambit_replication_applied_revision", "The revision a member has applied, as it reported it.", labels, nil),
	})
}

func (c *replicationCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.lag; ch <- c.applied }

func (c *replicationCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ps, err := c.node.Replication(ctx)
	if err != nil {
		return
	}
	for _, p := range ps {
		if p.Err != "" {
			continue
		}
		voter := strconv.FormatBool(p.Voter)
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(p.Lag), p.ID, voter)
		ch <- prometheus.MustNewConstMetric(c.applied, prometheus.GaugeValue, float64(p.Applied), p.ID, voter)
	}
}

// replicaWiring is what serve adds for scaling reads out once the node and
// the API exist: the lag metrics, the stale-answer header, and the
// keepalive settings that let clients balance over members: pings every
// 10s allowed (gRPC's default policy closes a connection pinged more often
// than every 5 minutes), and --grpc-max-connection-age.
func replicaWiring(reg prometheus.Registerer, node *raft.Node, st api.Store, r replicaFlags) ([]grpc.ServerOption, error) {
	if r.maxConnAge < 0 {
		return nil, fmt.Errorf("--grpc-max-connection-age %v is negative (0 disables it)", r.maxConnAge)
	}
	if err := registerReplicationMetrics(reg, node); err != nil {
		return nil, err
	}
	opts := staleOptions(node, func() uint64 { return uint64(st.AppliedRevision()) })
	opts = append(opts, grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}))
	if r.maxConnAge > 0 {
		opts = append(opts, grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionAge: r.maxConnAge}))
	}
	return opts, nil
}

// selfJoin lets every voter of a StatefulSet share one --join list: a node
// whose own --grpc-advertise address comes first in --join forms the
// cluster (it bootstraps on an empty data dir), and a node finding its
// address later in the list skips it. Without --grpc-advertise the list is
// used as given.
func selfJoin(join []string, advertised string) []string {
	if advertised == "" || len(join) == 0 {
		return join
	}
	if join[0] == advertised {
		return nil
	}
	var out []string
	for _, j := range join {
		if j != advertised {
			out = append(out, j)
		}
	}
	return out
}
