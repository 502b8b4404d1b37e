package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// Schema is what the campaign writes before its workload.
const Schema = "definition user {}\n\ndefinition doc {\n\trelation viewer: user\n\tpermission view = viewer\n}\n"

type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return false }

// clients are the authzed v1 clients of every node, straight to its gRPC
// listener (client traffic never goes through the campaign's proxies).
type clients struct {
	conns  []*grpc.ClientConn
	perms  []v1.PermissionsServiceClient
	schema []v1.SchemaServiceClient
}

func dialAll(c *cluster) (*clients, error) {
	cl := &clients{}
	for _, n := range c.all() {
		cc, err := grpc.NewClient(n.grpcAddr,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithPerRPCCredentials(bearer(c.key)),
			// a restarted node is back within seconds: do not back off longer
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond},
				MinConnectTimeout: time.Second,
			}))
		if err != nil {
			cl.close()
			return nil, err
		}
		cl.conns = append(cl.conns, cc)
		cl.perms = append(cl.perms, v1.NewPermissionsServiceClient(cc))
		cl.schema = append(cl.schema, v1.NewSchemaServiceClient(cc))
	}
	return cl, nil
}

func (cl *clients) close() {
	for _, cc := range cl.conns {
		_ = cc.Close()
	}
}

func update(op v1.RelationshipUpdate_Operation, k *keyRec) *v1.WriteRelationshipsRequest {
	return &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{{Operation: op, Relationship: &v1.Relationship{
		Resource: &v1.ObjectReference{ObjectType: "doc", ObjectId: k.id},
		Relation: "viewer",
		Subject:  &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: k.user}},
	}}}}
}

// workload runs writers and readers against the cluster and records all
// they see in the history.
type workload struct {
	h       *History
	cl      *clients
	n       int
	timeout time.Duration // per RPC

	writes, reads atomic.Int64
	// voters is how many of the n nodes are voters; the others are read
	// replicas, whose answered reads replicaReads counts.
	voters       int
	replicaReads atomic.Int64
}

// attempt sends one write of k to node and records it.
func (w *workload) attempt(ctx context.Context, k *keyRec, del bool, node int) attempt {
	op := v1.RelationshipUpdate_OPERATION_TOUCH
	if del {
		op = v1.RelationshipUpdate_OPERATION_DELETE
	}
	cctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	a := attempt{node: node, start: time.Now()}
	resp, err := w.cl.perms[node].WriteRelationships(cctx, update(op, k))
	a.end = time.Now()
	a.out = classify(err)
	if err != nil {
		st, _ := status.FromError(err)
		a.err = fmt.Sprintf("%s: %s", st.Code(), st.Message())
		w.h.mu.Lock()
		w.h.writeErrKinds[a.out.String()+" "+errKind(err)]++
		w.h.mu.Unlock()
		// The workload starts once the schema write was acknowledged: a
		// node that validates against an older schema breaks issue 17's
		// item 5 (writes are validated against the newest schema).
		if a.out == refused && strings.Contains(st.Message(), "no schema has been written") {
			w.h.violate("stale-schema", "%s through n%d refused at %s, after the schema write was acknowledged: %s",
				k.rel(), node+1, stamp(a.end), a.err)
		}
	} else {
		a.token = resp.GetWrittenAt()
	}
	w.writes.Add(1)
	w.h.record(k, del, a)
	return a
}

// settle retries a write of k until it is acknowledged or ctx ends,
// choosing a node with pick before each attempt.
func (w *workload) settle(ctx context.Context, k *keyRec, del bool, pick func() int) bool {
	if del {
		w.h.markDeleting(k)
	}
	for ctx.Err() == nil {
		if a := w.attempt(ctx, k, del, pick()); a.out == acked {
			return true
		}
		sleep(ctx, 50*time.Millisecond)
	}
	return false
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// writer touches new keys and deletes some of its clean ones.
func (w *workload) writer(ctx context.Context, id int, seed uint64) {
	r := rand.New(rand.NewPCG(seed, uint64(id)))
	var deletable []*keyRec
	for seq := 0; ctx.Err() == nil; seq++ {
		pick := func() int { return r.IntN(w.n) }
		if len(deletable) > 0 && r.IntN(10) < 3 {
			i := r.IntN(len(deletable))
			k := deletable[i]
			deletable = append(deletable[:i], deletable[i+1:]...)
			w.settle(ctx, k, true, pick)
		} else {
			k := w.h.newKey(fmt.Sprintf("w%d_%d", id, seq), fmt.Sprintf("u%d", r.IntN(20)), false)
			if w.settle(ctx, k, false, pick) && k.clean() {
				deletable = append(deletable, k)
			}
		}
		sleep(ctx, time.Duration(r.IntN(20))*time.Millisecond)
	}
}

// reader reads back every acknowledged operation, newest first: half the
// time one operation on another node than the one that acknowledged it,
// with at_least_as_fresh its token (or fully_consistent); the other half up
// to 100 in one CheckBulkPermissions with fully_consistent on any node, so
// the readers keep up with the writers.
func (w *workload) reader(ctx context.Context, id int, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 1000+uint64(id)))
	for ctx.Err() == nil {
		if r.IntN(2) == 0 {
			if refs := w.h.nextAcks(100); len(refs) > 0 {
				if !w.bulkRead(ctx, refs, r.IntN(w.n)) {
					sleep(ctx, 50*time.Millisecond)
				}
				continue
			}
		}
		ref, ok := w.h.nextAck()
		if !ok {
			sleep(ctx, 20*time.Millisecond)
			continue
		}
		node := (ref.at.node + 1 + r.IntN(w.n-1)) % w.n
		mode := "at_least_as_fresh"
		cons := &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: ref.at.token}}
		if r.IntN(10) < 3 {
			mode = "fully_consistent"
			cons = &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}
		}
		if w.read(ctx, ref, node, mode, cons) {
			w.h.mu.Lock()
			w.h.checked++
			w.h.mu.Unlock()
		} else {
			w.h.retryAck(ref)               // on another node, likely
			sleep(ctx, 50*time.Millisecond) // a node that is down answers at once
		}
		sleep(ctx, time.Duration(r.IntN(10))*time.Millisecond)
	}
}

// bulkRead checks refs in one fully_consistent CheckBulkPermissions on node;
// the ones that could not be read go back to the queue.
func (w *workload) bulkRead(ctx context.Context, refs []ackRef, node int) (served bool) {
	cctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req := &v1.CheckBulkPermissionsRequest{Consistency: &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}}
	for _, ref := range refs {
		req.Items = append(req.Items, &v1.CheckBulkPermissionsRequestItem{
			Resource:   &v1.ObjectReference{ObjectType: "doc", ObjectId: ref.k.id},
			Permission: "view",
			Subject:    &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: ref.k.user}},
		})
	}
	start := time.Now()
	resp, err := w.cl.perms[node].CheckBulkPermissions(cctx, req)
	end := time.Now()
	w.reads.Add(1)
	pairs := resp.GetPairs()
	if err == nil && len(pairs) != len(refs) {
		err = fmt.Errorf("CheckBulkPermissions answered %d of %d items", len(pairs), len(refs))
	}
	w.h.mu.Lock()
	w.h.reads++
	if err != nil {
		w.h.readErrs++
		w.h.readErrKinds["fully_consistent bulk "+errKind(err)]++
	}
	w.h.mu.Unlock()
	if err != nil {
		for _, ref := range refs {
			w.h.retryAck(ref)
		}
		return false
	}
	if node >= w.voters {
		w.replicaReads.Add(1)
	}
	for i, ref := range refs {
		p := pairs[i]
		if p.GetRequest().GetResource().GetObjectId() != ref.k.id || p.GetError() != nil {
			w.h.retryAck(ref)
			continue
		}
		has := p.GetItem().GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION
		w.h.checkRead(ref, has, node, "fully_consistent bulk", start, end, "")
		w.h.mu.Lock()
		w.h.checked++
		w.h.mu.Unlock()
	}
	return true
}

func (w *workload) read(ctx context.Context, ref ackRef, node int, mode string, cons *v1.Consistency) (served bool) {
	cctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	start := time.Now()
	resp, err := w.cl.perms[node].CheckPermission(cctx, &v1.CheckPermissionRequest{
		Consistency: cons,
		Resource:    &v1.ObjectReference{ObjectType: "doc", ObjectId: ref.k.id},
		Permission:  "view",
		Subject:     &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: ref.k.user}},
	})
	end := time.Now()
	w.reads.Add(1)
	w.h.mu.Lock()
	w.h.reads++
	if err != nil {
		w.h.readErrs++
		w.h.readErrKinds[mode+" "+errKind(err)]++
	}
	w.h.mu.Unlock()
	if err != nil {
		return false
	}
	if node >= w.voters {
		w.replicaReads.Add(1)
	}
	has := resp.GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION
	w.h.checkRead(ref, has, node, mode, start, end, ref.at.token.GetToken())
	return true
}

// run starts writers and readers; stop ends them and waits.
func (w *workload) run(ctx context.Context, writers, readers int, seed uint64) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() { defer wg.Done(); w.writer(ctx, i, seed) }()
	}
	for i := range readers {
		wg.Add(1)
		go func() { defer wg.Done(); w.reader(ctx, i, seed) }()
	}
	return func() { cancel(); wg.Wait() }
}

// probe touches fresh keys through the given nodes, starting a new attempt
// every 100 ms while earlier ones may still hang (on a frozen or cut-off
// node), and returns when the first is acknowledged (zero time if ctx ends
// first). So it measures when the cluster could first acknowledge a write,
// not how long one unlucky request waited.
func (w *workload) probe(ctx context.Context, name string, nodes []int) time.Time {
	ctx, cancel := context.WithCancel(ctx)
	first := make(chan time.Time, 1)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }() // attempts still hanging end now
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := w.h.newKey(fmt.Sprintf("%s_%d", name, i), "probe", true)
			if a := w.attempt(ctx, k, false, nodes[i%len(nodes)]); a.out == acked {
				select {
				case first <- a.end:
				default:
				}
			}
		}()
		select {
		case at := <-first:
			return at
		case <-ctx.Done():
			return time.Time{}
		case <-tick.C:
		}
	}
}
