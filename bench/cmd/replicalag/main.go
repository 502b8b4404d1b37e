// Command replicalag measures how far read replicas trail the leader while
// something else loads it (bench/scripts/replicas.sh runs it next to
// `ambit bench write`):
//
//   - lag in revisions: every --interval it asks --leader for every
//     member's progress (the cluster service's Replication call, what
//     `ambit cluster status` prints) and records each replica's lag;
//   - read-your-write delay: every --probe-interval it writes one
//     relationship on --leader and at once checks it on --replica with
//     at_least_as_fresh of the write's ZedToken, recording the check's
//     latency next to that of a minimize_latency check of the same
//     relationship (the difference is the wait for the replica to apply).
//
// It prints one JSON object of quantiles. The workload must define
// group#member@user (collab does).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"slices"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/ambit-authz/ambit/raft"
)

func main() {
	leader := flag.String("leader", "127.0.0.1:50051", "leader gRPC address")
	replica := flag.String("replica", "", "read replica gRPC address (for the read-your-write probes)")
	token := flag.String("token", "", "preshared key")
	dur := flag.Duration("d", 20*time.Second, "how long to sample")
	interval := flag.Duration("interval", 10*time.Millisecond, "lag sampling interval")
	probe := flag.Duration("probe-interval", 50*time.Millisecond, "read-your-write probe interval (0: none)")
	flag.Parse()
	if err := run(*leader, *replica, *token, *dur, *interval, *probe); err != nil {
		log.Fatal(err)
	}
}

func quantiles(xs []float64) map[string]float64 {
	if len(xs) == 0 {
		return nil
	}
	slices.Sort(xs)
	q := func(p float64) float64 { return xs[min(len(xs)-1, int(p*float64(len(xs))))] }
	return map[string]float64{"n": float64(len(xs)), "p50": q(0.50), "p90": q(0.90), "p99": q(0.99), "max": xs[len(xs)-1]}
}

func run(leader, replica, token string, dur, interval, probe time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	cl := raft.NewClient(token)
	defer cl.Close()
	lags := map[string][]float64{}
	done := make(chan map[string]any, 1)
	go func() { done <- probes(ctx, leader, replica, token, probe) }()
	t := time.NewTicker(interval)
	defer t.Stop()
	for ctx.Err() == nil {
		ps, err := cl.Replication(ctx, leader)
		if err == nil {
			for _, p := range ps {
				if !p.Voter && p.Err == "" {
					lags[p.ID] = append(lags[p.ID], float64(p.Lag))
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	out := map[string]any{"lag_revisions": map[string]any{}}
	for id, xs := range lags {
		out["lag_revisions"].(map[string]any)[id] = quantiles(xs)
	}
	for k, v := range <-done {
		out[k] = v
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func probes(ctx context.Context, leader, replica, token string, every time.Duration) map[string]any {
	if replica == "" || every <= 0 {
		return nil
	}
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	dial := func(addr string) v1.PermissionsServiceClient {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			log.Fatal(err)
		}
		return v1.NewPermissionsServiceClient(conn)
	}
	lc, rc := dial(leader), dial(replica)
	var fresh, latency []float64
	stale, errs := 0, 0
	for i := 0; ctx.Err() == nil; i++ {
		rel := &v1.Relationship{Resource: &v1.ObjectReference{ObjectType: "group", ObjectId: fmt.Sprintf("lagprobe%d", i)}, Relation: "member",
			Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "lagprobe"}}}
		w, err := lc.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{{Operation: v1.RelationshipUpdate_OPERATION_TOUCH, Relationship: rel}}})
		if err != nil {
			if ctx.Err() == nil {
				errs++
			}
			continue
		}
		check := func(c *v1.Consistency) (time.Duration, bool, error) {
			start := time.Now()
			r, err := rc.CheckPermission(ctx, &v1.CheckPermissionRequest{Consistency: c, Resource: rel.Resource, Permission: "member", Subject: rel.Subject})
			return time.Since(start), r.GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION, err
		}
		d, ok, err := check(&v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: w.GetWrittenAt()}})
		if err != nil {
			if ctx.Err() == nil {
				errs++
			}
			continue
		}
		if !ok {
			stale++
		}
		fresh = append(fresh, float64(d.Microseconds())/1e3)
		if d, _, err := check(&v1.Consistency{Requirement: &v1.Consistency_MinimizeLatency{MinimizeLatency: true}}); err == nil {
			latency = append(latency, float64(d.Microseconds())/1e3)
		}
		select {
		case <-ctx.Done():
		case <-time.After(every):
		}
	}
	return map[string]any{"fresh_check_ms": quantiles(fresh), "latency_check_ms": quantiles(latency), "stale_fresh_reads": stale, "probe_errors": errs}
}
