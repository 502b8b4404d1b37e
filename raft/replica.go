package raft

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	hraft "github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Read replicas are raft non-voters (hashicorp/raft's AddNonvoter, the
// mechanism behind Consul's read replicas): the leader replicates the log
// and snapshots to them as to any follower, but they are not counted for
// commitment or elections, so adding them costs the leader a replication
// stream each and nothing on the commit path. A replica serves reads from
// its own store, forwards writes and read-index requests to the leader like
// a follower, and leaves the configuration when it closes (replicas are
// disposable: a Deployment's pods come and go). Promote and Demote change a
// member's suffrage on the leader.

// RoleReplica is the role Status reports for a non-voter.
const RoleReplica = "replica"

// progressTimeout bounds how long Replication waits for one member.
const progressTimeout = time.Second

// MemberProgress is a member with its replication progress, as Replication
// reports it.
type MemberProgress struct {
	Member
	// Applied is the revision (raft index) the member has applied.
	Applied uint64
	// Lag is how many revisions the member is behind the newest revision any
	// member reported (the leader's commit index, when the leader answered).
	Lag uint64
	// Err, when not empty, says why the member's progress is unknown (it did
	// not answer); Applied and Lag are then 0.
	Err string
}

// JoinReplica adds a read replica (a non-voter) on the leader (forwarded
// otherwise). Like Join, a re-join with the same id and addresses changes
// nothing, and an id or address used by another member is ErrNodeExists.
func (n *Node) JoinReplica(ctx context.Context, nodeID, raftAddr, grpcAddr string) error {
	m := MemberInfo{ID: nodeID, RaftAddr: raftAddr, GRPCAddr: grpcAddr}
	if nodeID == "" || raftAddr == "" || grpcAddr == "" {
		return fmt.Errorf("%w: join needs a node id, a raft address and a gRPC address (got %q, %q, %q)", ErrBadConfig, nodeID, raftAddr, grpcAddr)
	}
	return n.onLeader(ctx, func(ctx context.Context) error { return n.joinLocal(ctx, m, false) },
		func(ctx context.Context, addr string) error { return n.peers.joinHop(ctx, addr, m, false, true) })
}

// Promote makes the non-voter id a voter (on the leader; forwarded
// otherwise). Promoting a voter changes nothing. The member starts voting
// once the configuration commits, so promote a replica that has caught up
// (see Replication): a voter that is far behind slows commitment until it
// catches up.
func (n *Node) Promote(ctx context.Context, id string) error {
	return n.onLeader(ctx, func(ctx context.Context) error { return n.promoteLocal(id) },
		func(ctx context.Context, addr string) error { return n.peers.suffrage(ctx, addr, "Promote", id, true) })
}

// Demote makes the voter id a non-voter (on the leader; forwarded
// otherwise). Demoting a non-voter changes nothing; demoting the only voter
// is ErrMembershipRefused. A leader asked to demote itself hands its
// leadership over first, and the new leader demotes it.
func (n *Node) Demote(ctx context.Context, id string) error {
	return n.onLeader(ctx, func(ctx context.Context) error { return n.demoteLocal(id) },
		func(ctx context.Context, addr string) error { return n.peers.suffrage(ctx, addr, "Demote", id, true) })
}

// server finds id in the latest configuration and counts its voters.
func (n *Node) server(id string) (s hraft.Server, voters int, err error) {
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return s, 0, n.mapRaftErr(err)
	}
	found := false
	for _, srv := range cf.Configuration().Servers {
		if srv.Suffrage == hraft.Voter {
			voters++
		}
		if string(srv.ID) == id {
			s, found = srv, true
		}
	}
	if !found {
		return s, voters, fmt.Errorf("%w: %q", ErrUnknownNode, id)
	}
	return s, voters, nil
}

func (n *Node) promoteLocal(id string) error {
	s, _, err := n.server(id)
	if err != nil || s.Suffrage == hraft.Voter {
		return err
	}
	if err := n.raft.AddVoter(s.ID, s.Address, 0, n.cfg.ApplyTimeout).Error(); err != nil {
		return fmt.Errorf("promoting %s: %w", id, n.mapRaftErr(err))
	}
	n.logger.Info("raft: promoted a read replica to voter", "id", id)
	return nil
}

func (n *Node) demoteLocal(id string) error {
	s, voters, err := n.server(id)
	if err != nil || s.Suffrage != hraft.Voter {
		return err
	}
	if voters <= 1 {
		return fmt.Errorf("%w: %s is the only voter; demoting it would leave the cluster unable to elect a leader (promote another member first)", ErrMembershipRefused, id)
	}
	if id == n.cfg.NodeID {
		// A leader that demoted itself would lead a configuration it does
		// not vote in; hand over first and let the next leader demote it.
		if err := n.raft.LeadershipTransfer().Error(); err != nil {
			return fmt.Errorf("demoting the leader %s: handing leadership over first: %w", id, n.mapRaftErr(err))
		}
		return fmt.Errorf("%w: %s handed its leadership over to be demoted", ErrNotLeader, id)
	}
	if err := n.raft.DemoteVoter(s.ID, 0, n.cfg.ApplyTimeout).Error(); err != nil {
		return fmt.Errorf("demoting %s: %w", id, n.mapRaftErr(err))
	}
	n.logger.Info("raft: demoted a voter to read replica", "id", id)
	return nil
}

// IsVoter reports whether this node votes in its latest configuration.
func (n *Node) IsVoter() bool {
	s, _, err := n.server(n.cfg.NodeID)
	return err == nil && s.Suffrage == hraft.Voter
}

// LocalLag is how many committed revisions this node has not applied yet,
// by the commit index it last learned from the leader. A node cut off from
// the leader does not learn new commits, so pair it with LastContact.
func (n *Node) LocalLag() uint64 {
	commit, applied := n.raft.CommitIndex(), uint64(n.fsm.Applied())
	if commit <= applied {
		return 0
	}
	return commit - applied
}

// LastContact is when this node last heard from a leader: now on the
// leader, the zero time on a node that has not heard from one since it
// started.
func (n *Node) LastContact() time.Time {
	if n.raft.State() == hraft.Leader {
		return time.Now()
	}
	return n.raft.LastContact()
}

// leaveAsReplica removes a read replica from the configuration before it
// closes, so that the leader stops replicating to it (a replica that
// crashes stays a member until `ambit cluster remove`; a read replica
// restarting with its data joins again). One promoted to voter since does
// not leave. Bounded by a few seconds: without a leader the replica closes
// anyway.
func (n *Node) leaveAsReplica() {
	if !n.cfg.ReadReplica || n.raft.State() == hraft.Shutdown || n.IsVoter() {
		return // a replica promoted since it started stays, as a voter
	}
	ctx, cancel := context.WithTimeout(n.ctx, min(n.cfg.ApplyTimeout, 3*time.Second))
	defer cancel()
	if err := n.Remove(ctx, n.cfg.NodeID); err != nil && !errors.Is(err, ErrUnknownNode) {
		n.logger.Warn("raft: read replica could not leave the cluster before closing; remove it with `ambit cluster remove`", "id", n.cfg.NodeID, "err", err)
		return
	}
	n.logger.Info("raft: read replica left the cluster")
}

// Replication lists the members with their applied revision and lag: the
// node asks every other member for its progress (in parallel, each bounded
// by a second) and takes the newest revision any reported, or its own
// commit index, as the reference.
func (n *Node) Replication(ctx context.Context) ([]MemberProgress, error) {
	ms, err := n.Status()
	if err != nil {
		return nil, err
	}
	out := make([]MemberProgress, len(ms))
	newest := n.raft.CommitIndex()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, m := range ms {
		out[i].Member = m
		switch {
		case m.ID == n.cfg.NodeID:
			out[i].Applied = uint64(n.fsm.Applied())
			continue
		case m.GRPCAddr == "":
			out[i].Err = "no gRPC address known for this member"
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, progressTimeout)
			defer cancel()
			applied, commit, err := n.peers.progress(cctx, m.GRPCAddr)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				out[i].Err = err.Error()
				return
			}
			out[i].Applied = applied
			newest = max(newest, commit)
		}()
	}
	wg.Wait()
	for i := range out {
		if out[i].Err == "" {
			newest = max(newest, out[i].Applied)
		}
	}
	for i := range out {
		if out[i].Err == "" {
			out[i].Lag = newest - out[i].Applied
		}
	}
	return out, nil
}

func (n *Node) serveJoinReplica(ctx context.Context, in *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
	return n.serveJoinAs(ctx, in, false)
}

func (n *Node) servePromote(ctx context.Context, in *wrapperspb.StringValue) (*wrapperspb.BytesValue, error) {
	return n.serveSuffrage(ctx, in.GetValue(), n.promoteLocal, n.Promote)
}

func (n *Node) serveDemote(ctx context.Context, in *wrapperspb.StringValue) (*wrapperspb.BytesValue, error) {
	return n.serveSuffrage(ctx, in.GetValue(), n.demoteLocal, n.Demote)
}

// serveSuffrage runs a promote or demote: on the leader for a hop, else
// through onLeader (forwarded once).
func (n *Node) serveSuffrage(ctx context.Context, id string, local func(string) error, any func(context.Context, string) error) (*wrapperspb.BytesValue, error) {
	if id == "" {
		return resultValue(Result{}, fmt.Errorf("%w: no member id given", ErrBadConfig)), nil
	}
	if isHop(ctx) {
		if !n.IsLeader() {
			return resultValue(Result{}, fmt.Errorf("%w: %s", ErrNotLeader, n.cfg.NodeID)), nil
		}
		return resultValue(Result{}, local(id)), nil
	}
	return resultValue(Result{}, any(ctx, id)), nil
}

// serveProgress answers Progress with this node's applied and commit
// index, encoded version:byte(1) applied:uvarint commit:uvarint.
func (n *Node) serveProgress(_ context.Context, _ *emptypb.Empty) (*wrapperspb.BytesValue, error) {
	e := encoder{}
	e.buf = append(e.buf, 1)
	e.uvarint(uint64(n.fsm.Applied()))
	e.uvarint(n.raft.CommitIndex())
	return wrapperspb.Bytes(e.buf), nil
}

func (n *Node) serveReplication(ctx context.Context, _ *emptypb.Empty) (*wrapperspb.BytesValue, error) {
	ps, err := n.Replication(ctx)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return wrapperspb.Bytes(encodeProgressList(ps)), nil
}

// Progress list encoding: version:byte(1) n:uvarint
// (member-list fields, applied:uvarint lag:uvarint err:string)*n.
func encodeProgressList(ps []MemberProgress) []byte {
	e := encoder{}
	e.buf = append(e.buf, 1)
	e.uvarint(uint64(len(ps)))
	for _, p := range ps {
		e.string(p.ID)
		e.string(p.RaftAddr)
		e.string(p.GRPCAddr)
		e.string(p.Role)
		e.bool(p.Voter)
		e.uvarint(p.Applied)
		e.uvarint(p.Lag)
		e.string(p.Err)
	}
	return e.buf
}

func decodeProgressList(data []byte) ([]MemberProgress, error) {
	d := decoder{data: data}
	if v := d.byte("progress list version"); d.err == nil && v != 1 {
		d.fail("unsupported progress list version %d", v)
	}
	cnt := d.count("member")
	var out []MemberProgress
	for i := 0; i < cnt && d.err == nil; i++ {
		var p MemberProgress
		p.ID, p.RaftAddr, p.GRPCAddr = d.string("member id"), d.string("member raft address"), d.string("member gRPC address")
		p.Role, p.Voter = d.string("member role"), d.bool("member voter")
		p.Applied, p.Lag, p.Err = d.uvarint("member applied revision"), d.uvarint("member lag"), d.string("member progress error")
		out = append(out, p)
	}
	if d.err == nil && d.remaining() > 0 {
		d.fail("%d trailing bytes after the progress list", d.remaining())
	}
	if d.err != nil {
		return nil, d.err
	}
	return out, nil
}

func (c *Client) progress(ctx context.Context, addr string) (applied, commit uint64, err error) {
	data, err := c.call(ctx, addr, "Progress", &emptypb.Empty{}, true, false)
	if err != nil {
		return 0, 0, err
	}
	d := decoder{data: data}
	if v := d.byte("progress version"); d.err == nil && v != 1 {
		d.fail("unsupported progress version %d", v)
	}
	applied, commit = d.uvarint("applied revision"), d.uvarint("commit index")
	if d.err == nil && d.remaining() > 0 {
		d.fail("%d trailing bytes after the progress", d.remaining())
	}
	if d.err != nil {
		return 0, 0, fmt.Errorf("%w: bad progress from %s: %v", ErrForward, addr, d.err)
	}
	return applied, commit, nil
}

// suffrage calls Promote or Demote on addr.
func (c *Client) suffrage(ctx context.Context, addr, method, id string, hop bool) error {
	_, err := c.result(ctx, addr, method, wrapperspb.String(id), true, hop)
	return err
}

// Promote asks the member at addr to make the read replica id a voter.
func (c *Client) Promote(ctx context.Context, addr, id string) error {
	return c.suffrage(ctx, addr, "Promote", id, false)
}

// Demote asks the member at addr to make the voter id a read replica.
func (c *Client) Demote(ctx context.Context, addr, id string) error {
	return c.suffrage(ctx, addr, "Demote", id, false)
}

// Replication asks the member at addr for every member's progress.
func (c *Client) Replication(ctx context.Context, addr string) ([]MemberProgress, error) {
	data, err := c.call(ctx, addr, "Replication", &emptypb.Empty{}, true, false)
	if err != nil {
		return nil, err
	}
	ps, err := decodeProgressList(data)
	if err != nil {
		return nil, fmt.Errorf("%w: bad replication status from %s: %v", ErrForward, addr, err)
	}
	return ps, nil
}

// inConfiguration reports whether this node is in its latest raft
// configuration.
func (n *Node) inConfiguration() bool {
	_, _, err := n.server(n.cfg.NodeID)
	return err == nil
}

// rejoin asks the members in cfg.Join, in turn, to add this read replica
// again, until one accepts or the node closes: a member already present
// keeps its suffrage and gets its addresses updated.
func (n *Node) rejoin() {
	defer n.wg.Done()
	self := MemberInfo{ID: n.cfg.NodeID, RaftAddr: n.RaftAddr(), GRPCAddr: n.cfg.GRPCAddr}
	backoff := 100 * time.Millisecond
	for n.ctx.Err() == nil {
		for _, addr := range n.cfg.Join {
			ctx, cancel := context.WithTimeout(n.ctx, n.cfg.ApplyTimeout)
			err := n.peers.joinAs(ctx, addr, self, false)
			cancel()
			switch {
			case err == nil:
				n.logger.Info("raft: read replica joined again", "via", addr)
				return
			case errors.Is(err, ErrNodeExists) || errors.Is(err, ErrUnauthenticated) || errors.Is(err, ErrBadConfig):
				n.logger.Error("raft: read replica cannot join again", "via", addr, "err", err)
				return
			}
		}
		select {
		case <-n.ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}
