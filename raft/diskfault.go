package raft

import (
	"context"
	"errors"
	"fmt"
	"sync"

	hraft "github.com/hashicorp/raft"

	"github.com/ambit-authz/ambit/tuple"
)

// faultLatch holds the first disk fault a node met. Once set it stays set:
// a store or log that failed a write is in a state only a restart (replay
// from the raft log) repairs.
type faultLatch struct {
	mu   sync.Mutex
	err  error
	done chan struct{} // closed when err is set
}

func (l *faultLatch) init() { l.done = make(chan struct{}) }

// set records err unless a fault is already recorded; first reports whether
// this call recorded it.
func (l *faultLatch) set(err error) (first bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return false
	}
	l.err = err
	close(l.done)
	return true
}

func (l *faultLatch) get() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Fail records a disk fault: the node can no longer persist what it applies
// (a store or raft log write failed, or the data directory cannot be written).
// From then on Apply refuses writes with ErrDiskFault naming cause, and a
// leader hands its leadership to another voter, so the cluster keeps
// accepting writes. Then raft stops on this node: a node that cannot persist
// its term and vote must not take part in elections (hashicorp/raft panics
// when it cannot, and an unpersisted vote could be cast twice). The fault is
// never cleared: the caller is expected to close the node (see Faulted) and
// restart it once the disk is back; replay from the raft log then restores
// everything acknowledged. Only the first cause is kept.
func (n *Node) Fail(cause error) {
	if cause == nil {
		return
	}
	if !n.fault.set(fmt.Errorf("%w: %w", ErrDiskFault, cause)) {
		return
	}
	n.logger.Error("raft: disk fault; refusing writes and stepping down", "err", cause)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.stepDown()
		if n.raft != nil {
			if err := n.raft.Shutdown().Error(); err != nil {
				n.logger.Warn("raft: stopping raft after a disk fault", "err", err)
			}
		}
	}()
}

// Fault is the disk fault Fail recorded (wrapping ErrDiskFault), or nil.
func (n *Node) Fault() error { return n.fault.get() }

// Faulted returns a channel closed when Fail records a fault.
func (n *Node) Faulted() <-chan struct{} { return n.fault.done }

// stepDown hands leadership to another voter if this node leads a cluster
// with other voters. A single-node cluster keeps its leadership (there is no
// one to hand it to); its writes are refused all the same.
func (n *Node) stepDown() {
	if n.ctx.Err() != nil || n.raft == nil || n.raft.State() != hraft.Leader {
		return
	}
	if n.otherVoters() == 0 {
		n.logger.Warn("raft: disk fault on the only voter; no one to hand leadership to")
		return
	}
	if err := n.raft.LeadershipTransfer().Error(); err != nil {
		n.logger.Error("raft: leadership transfer after a disk fault failed", "err", err)
		return
	}
	n.logger.Info("raft: handed leadership over after a disk fault")
}

// CaughtUp returns nil when this node knows a leader and has applied every
// entry committed so far: on the leader, once its first entry of the term
// has applied; on a follower, up to the commit index the leader last told
// it. It waits for the apply until ctx is done, then says how far behind the
// node is.
func (n *Node) CaughtUp(ctx context.Context) error {
	if err := n.fault.get(); err != nil {
		return err
	}
	id, _ := n.Leader()
	if id == "" {
		return fmt.Errorf("%w (raft role %s)", ErrNoLeader, n.State())
	}
	if n.raft.State() == hraft.Leader {
		n.mu.Lock()
		ready := n.leaderReady
		n.mu.Unlock()
		if ready == nil {
			return fmt.Errorf("%w: %s", ErrNotLeader, n.cfg.NodeID)
		}
		select {
		case <-ready:
		default:
			return fmt.Errorf("leader %s has not applied its first entry of the term yet", n.cfg.NodeID)
		}
	}
	target := tuple.Revision(n.raft.CommitIndex())
	if err := n.WaitApplied(ctx, target); err != nil {
		if errors.Is(err, ErrHalted) {
			return err
		}
		return fmt.Errorf("applied %d of the %d entries committed (leader %s)", n.fsm.Applied(), target, id)
	}
	return nil
}

// faultingLogStore reports every failed write of raft's log and stable
// store to fail, then returns the error to raft unchanged (raft then fails
// the write; a leader turns follower).
type faultingLogStore struct {
	logStore
	fail func(error)
}

func (s faultingLogStore) StoreLog(l *hraft.Log) error {
	return s.check("storing a raft log entry", s.logStore.StoreLog(l))
}

func (s faultingLogStore) StoreLogs(ls []*hraft.Log) error {
	return s.check("storing raft log entries", s.logStore.StoreLogs(ls))
}

func (s faultingLogStore) DeleteRange(min, max uint64) error {
	return s.check("truncating the raft log", s.logStore.DeleteRange(min, max))
}

func (s faultingLogStore) Set(k, v []byte) error {
	return s.check("writing raft state", s.logStore.Set(k, v))
}

func (s faultingLogStore) SetUint64(k []byte, v uint64) error {
	return s.check("writing raft state", s.logStore.SetUint64(k, v))
}

func (s faultingLogStore) check(what string, err error) error {
	if err != nil {
		s.fail(fmt.Errorf("raft log store: %s: %w", what, err))
	}
	return err
}
