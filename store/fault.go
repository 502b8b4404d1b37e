package store

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	badger "github.com/dgraph-io/badger/v4"
)

// Disk faults.
//
// Badger reports few of its I/O failures to the caller. A commit that cannot
// be written fails (commitThen sees it), but a memtable that cannot be
// flushed to a table is retried every second for ever and only logged
// (badger issues #664, #864): writes go on into memory until the memtables
// are full, then block; Close blocks in the flush. The same goes for failed
// compactions. So the store watches both: a failed commit or sync, and
// badger's own error lines about flushing, writing and compacting, record a
// fault. The first one is kept (Fault) and reported once through
// Options.OnFault; the store goes on serving reads, and its owner decides
// what to do (the server refuses writes and stops).

// ErrDiskFault: the store failed to persist a write (or badger reported that
// it cannot flush or compact). The message names the cause.
var ErrDiskFault = errors.New("store: disk fault")

// faults latches the store's first disk fault.
type faults struct {
	mu      sync.Mutex
	err     error
	onFault func(error)
}

func (f *faults) record(cause error) {
	if f == nil || cause == nil {
		return
	}
	f.mu.Lock()
	if f.err != nil {
		f.mu.Unlock()
		return
	}
	f.err = fmt.Errorf("%w: %w", ErrDiskFault, cause)
	err, cb := f.err, f.onFault
	f.mu.Unlock()
	if cb != nil {
		cb(err)
	}
}

func (f *faults) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// Fault returns the first disk fault the store met (wrapping ErrDiskFault),
// or nil.
func (s *Store) Fault() error { return s.faults.get() }

// ioFailure records err as a disk fault unless it is not one: a closed or
// closing database, or a domain error of the caller's.
func (s *Store) ioFailure(err error) {
	switch {
	case err == nil, errors.Is(err, badger.ErrDBClosed), errors.Is(err, badger.ErrBlockedWrites),
		errors.Is(err, ErrClosed), IsRefusal(err):
		return
	}
	s.faults.record(err)
}

// badgerFaultLines are parts of the formats of badger's log lines that mean
// it could not write to disk. Badger retries or gives up on these without
// telling any caller.
var badgerFaultLines = []string{
	"error flushing memtable to disk", // flushMemtable, retried for ever
	"While trying to flush memtable",  // DropPrefix's flush (the import's flushMemtables)
	"writeRequests:",                  // a write batch failed (its callers see it too)
	"Got error:",                      // newMemTable could not create its file
	"LOG Compact FAILED",              // a background compaction failed
	"While running compact def",       // DropPrefix's compaction failed
	"Error while curlf sync",          // value log sync
}

// badgerFault reports whether the format of a badger log line says a write
// to disk failed.
func badgerFault(format string) bool {
	for _, p := range badgerFaultLines {
		if strings.Contains(format, p) {
			return true
		}
	}
	return false
}
