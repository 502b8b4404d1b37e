package main

// The server's life cycle apart from wiring: bounded shutdown, the disk
// watch, the wait for a leader at start. README "Failure and shutdown"
// describes what an operator sees.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ambit-authz/ambit/raft"
	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// Exit codes of `ambit serve` besides 0 (stopped cleanly) and 1 (any other
// error, including a shutdown that could not close everything).
const exitDiskFault = 3 // the node stopped because it could not persist writes

// closeGrace is the least time the close steps get after the drain, so a
// drain that used all of --shutdown-timeout still lets them finish when they
// can; shutdown takes at most --shutdown-timeout plus this.
const closeGrace = 3 * time.Second

// closeStep is one thing shutdown closes, named for the report.
type closeStep struct {
	name string
	fn   func() error
}

// errNotClosed: a close step did not finish by the shutdown deadline; it was
// abandoned (the process exits with it still running).
var errNotClosed = errors.New("did not close in time; abandoned")

// closeSteps runs steps in reverse order, each in its own goroutine, until
// deadline. A step still running at the deadline is abandoned and reported,
// and the steps after it are not started (they may depend on it: the store
// under the raft node); the error names every step that did not close.
func closeSteps(steps []closeStep, deadline time.Time, log *slog.Logger) error {
	var errs []error
	for i := len(steps) - 1; i >= 0; i-- {
		s := steps[i]
		done := make(chan error, 1)
		go func() { done <- s.fn() }()
		timer := time.NewTimer(time.Until(deadline))
		select {
		case err := <-done:
			timer.Stop()
			if err != nil {
				log.Error("shutdown: closing "+s.name+" failed", "err", err)
				errs = append(errs, fmt.Errorf("closing %s: %w", s.name, err))
			}
			continue
		case <-timer.C:
		}
		var skipped []string
		for j := i - 1; j >= 0; j-- {
			skipped = append(skipped, steps[j].name)
		}
		err := fmt.Errorf("shutdown: %s %w", s.name, errNotClosed)
		if len(skipped) > 0 {
			err = fmt.Errorf("%w; not attempted after it: %s", err, strings.Join(skipped, ", "))
		}
		log.Error(err.Error())
		return errors.Join(append(errs, err)...)
	}
	return errors.Join(errs...)
}

// diskWatch turns disk faults into node.Fail: the store's (from storeFault)
// and those of a probe that, every interval, checks that the data directory
// and its store and raft directories are the ones the node opened, that its
// filesystem has minFree bytes free, and that a small file can be written
// and fsynced in it. It returns when ctx is done or after the first fault.
// interval <= 0 disables the probe.
func diskWatch(ctx context.Context, node *raft.Node, storeFault <-chan error, dir string, interval time.Duration, minFree uint64) {
	probe, err := newDirProbe(dir, minFree)
	if err != nil {
		node.Fail(err)
		return
	}
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-node.Faulted():
			return
		case err := <-storeFault:
			node.Fail(err)
			return
		case <-tick:
			if err := probe.check(); err != nil {
				node.Fail(err)
				return
			}
		}
	}
}

// dirProbe checks the data directory.
type dirProbe struct {
	dirs  []string      // the data dir and the subdirectories the node keeps open
	infos []os.FileInfo // as they were when the probe was made
	files [2]string     // written in turn
	next  int
	buf   []byte
	// minFree is the least free space accepted: badger writes its memtable
	// log through a memory map, and a write to it on a full filesystem kills
	// the process (SIGBUS) rather than failing, so a nearly full disk is a
	// fault before it is a full one.
	minFree uint64
}

func newDirProbe(dir string, minFree uint64) (*dirProbe, error) {
	p := &dirProbe{files: [2]string{filepath.Join(dir, ".probe-0"), filepath.Join(dir, ".probe-1")}, buf: make([]byte, 4096), minFree: minFree}
	for _, d := range []string{dir, filepath.Join(dir, "store"), filepath.Join(dir, "raft")} {
		fi, err := os.Stat(d)
		if err != nil {
			return nil, fmt.Errorf("disk probe: %w", err)
		}
		p.dirs, p.infos = append(p.dirs, d), append(p.infos, fi)
	}
	return p, nil
}

// check fails when a directory was removed or replaced (the node's open
// files then point at deleted ones: writes still succeed and are lost), or
// when a small write and fsync fail (read-only, full or failing disk). It
// writes a new file and only then removes the one written last time: were it
// to rewrite one file, the blocks it frees would let the write succeed on a
// full filesystem.
func (p *dirProbe) check() error {
	for i, d := range p.dirs {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("disk probe: %w", err)
		}
		if !os.SameFile(fi, p.infos[i]) {
			return fmt.Errorf("disk probe: %s was replaced since the node opened it", d)
		}
	}
	if p.minFree > 0 {
		free, err := freeBytes(p.dirs[0])
		if err != nil {
			return fmt.Errorf("disk probe: %w", err)
		}
		if free < p.minFree {
			return fmt.Errorf("disk probe: %d MiB free on the filesystem of %s, less than the %d MiB required (--disk-min-free-mib)", free>>20, p.dirs[0], p.minFree>>20)
		}
	}
	file, old := p.files[p.next], p.files[1-p.next]
	p.next = 1 - p.next
	_ = os.Remove(file) // left by an earlier run
	f, err := os.OpenFile(file, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("disk probe: %w", err)
	}
	_, werr := f.Write(p.buf)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("disk probe: writing %s: %w", file, err)
	}
	if err := os.Remove(old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("disk probe: %w", err)
	}
	return nil
}

// waitForLeader returns a linearizable revision once the node can give one:
// a leader is known and this node has applied what it committed. A busy
// machine may take long to elect even a single node, so only ctx ends the
// wait (and errors that waiting cannot cure: a closed node, a disk fault);
// every logEvery it logs what it is waiting for.
func waitForLeader(ctx context.Context, node *raft.Node, log *slog.Logger, logEvery time.Duration) (tuple.Revision, error) {
	start, lastLog := time.Now(), time.Now()
	for {
		if err := node.Fault(); err != nil {
			return 0, fmt.Errorf("waiting for a raft leader: %w", err)
		}
		rev, err := node.LinearizableRevision(ctx)
		switch {
		case err == nil:
			return rev, nil
		case ctx.Err() != nil:
			return 0, fmt.Errorf("waiting for a raft leader: %w (after %s; last: %v)", ctx.Err(), time.Since(start).Round(time.Millisecond), err)
		case !errors.Is(err, raft.ErrNoLeader) && !errors.Is(err, raft.ErrNotLeader) && !errors.Is(err, raft.ErrTimeout):
			return 0, fmt.Errorf("waiting for a raft leader: %w", err)
		}
		if time.Since(lastLog) >= logEvery {
			lastLog = time.Now()
			id, _ := node.Leader()
			log.Info("still waiting for a raft leader", "waited", time.Since(start).Round(time.Second), "role", node.State(), "leader", id, "last", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// proposePatiently proposes a bootstrap command until it commits or ctx is
// done: on a busy machine a write may miss the node's apply timeout. A
// retry after an unknown outcome (a timeout) that finds the relationships
// already there (imports have CREATE semantics) means the earlier attempt
// committed. Only the bootstrap load writes this way: it writes into an empty
// store before the node says it is ready.
func proposePatiently(ctx context.Context, node *raft.Node, cmd raft.Command, log *slog.Logger) error {
	unknown := false
	for {
		_, err := node.Propose(ctx, cmd)
		switch {
		case err == nil:
			return nil
		case unknown && errors.Is(err, store.ErrAlreadyExists):
			return nil
		case ctx.Err() != nil:
			return err
		case errors.Is(err, raft.ErrTimeout), errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrForward):
			unknown = true
		case !errors.Is(err, raft.ErrNoLeader) && !errors.Is(err, raft.ErrNotLeader):
			return err
		}
		log.Info("bootstrap file: retrying a write", "kind", cmd.Kind, "err", err)
		if _, err := waitForLeader(ctx, node, log, 10*time.Second); err != nil {
			return err
		}
	}
}
