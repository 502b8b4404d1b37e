package raft

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/stats"
)

// leaderPoll is how often a forwarded write checks that this node still
// sees the leader it forwarded to.
const leaderPoll = 20 * time.Millisecond

var errLeaderMoved = errors.New("this node sees another leader, or none")

// forwardToLeader forwards cmd to the leader id at addr. It gives up as
// soon as this node stops seeing id as the leader, so a frozen or deposed
// leader does not hold the write for the caller's whole deadline: if the
// command had left, the outcome is unknown (ErrLeadershipLost); if it had
// not, nothing was proposed (ErrNoLeader, and Apply retries with the new
// leader). After a write the leader applied, it waits (within ctx) until
// this node has applied it too, so a client that wrote through this node
// reads its write here, the schema included.
func (n *Node) forwardToLeader(ctx context.Context, id, addr string, cmd Command) (Result, error) {
	fctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(leaderPoll)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-fctx.Done():
				return
			case <-t.C:
				if _, lid := n.raft.LeaderWithID(); string(lid) != id {
					cancel(errLeaderMoved)
					return
				}
			}
		}
	}()
	res, err := n.peers.forward(fctx, addr, cmd)
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(fctx), errLeaderMoved) {
		if errors.Is(err, ErrNoLeader) {
			return Result{}, fmt.Errorf("%w: leader %s was replaced before the write was sent", ErrNoLeader, id)
		}
		return Result{}, fmt.Errorf("%w: this node stopped seeing %s as the leader while the write was forwarded to it; it may or may not commit", ErrLeadershipLost, id)
	}
	if res.Revision > 0 && !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrNoLeader) {
		_ = n.WaitApplied(ctx, res.Revision) // the write is decided; a late follower only delays the answer
	}
	return res, err
}

// sentKey marks, in a call's context, the flag that sentTracker sets once
// the request message has been handed to the connection.
type sentKey struct{}

// sentTracker is the stats handler of the peer client's connections: it
// records whether a call's request ever left, so that a write whose call
// failed before that is reported as not proposed rather than unknown.
type sentTracker struct{}

func (sentTracker) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (sentTracker) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if _, ok := s.(*stats.OutPayload); ok {
		if f, _ := ctx.Value(sentKey{}).(*atomic.Bool); f != nil {
			f.Store(true)
		}
	}
}
func (sentTracker) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (sentTracker) HandleConn(context.Context, stats.ConnStats)                       {}

// trackSent returns ctx carrying a flag sentTracker sets when the request
// leaves.
func trackSent(ctx context.Context) (context.Context, *atomic.Bool) {
	f := new(atomic.Bool)
	return context.WithValue(ctx, sentKey{}, f), f
}
