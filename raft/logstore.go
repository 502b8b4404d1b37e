package raft

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	hclog "github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	walfs "github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/segment"
	waltypes "github.com/hashicorp/raft-wal/types"
	"go.etcd.io/bbolt"
)

// Raft log stores (Config.LogStore).
const (
	// LogStoreWAL is hashicorp/raft-wal: segment files under <dir>/raft/wal,
	// one fsync per append. Each segment is allocated up front
	// (Config.LogSegmentSize), so even an empty node's log takes that much
	// disk. raft-wal calls itself experimental.
	LogStoreWAL = "wal"
	// LogStoreBolt is hashicorp/raft-boltdb: one bbolt file,
	// <dir>/raft/raft.db, two fsyncs per append (data pages, then meta page).
	LogStoreBolt = "bolt"
)

// DefaultLogStore is the log store of a new data directory. raft-wal
// measured 1.2-1.5x the throughput of raft-boltdb for batches of 100
// relationships from few proposers and half the commit latency of one
// writer at a time, with three nodes on one disk (bench/RESULTS.md).
const DefaultLogStore = LogStoreWAL

// raft-wal segment sizes (Config.LogSegmentSize).
const (
	// DefaultLogSegmentSize is raft-wal's own default.
	DefaultLogSegmentSize = 64 << 20
	// MinLogSegmentSize keeps a segment above a few entries' worth.
	MinLogSegmentSize = 64 << 10
	// MaxLogSegmentSize stays below raft-wal's 32-bit segment offsets.
	MaxLogSegmentSize = 1 << 30
)

// logStore is raft's log and stable store, one file set for both.
type logStore interface {
	hraft.LogStore
	hraft.StableStore
	io.Closer
}

const (
	boltLogFile = "raft.db" // in <dir>/raft
	walDir      = "wal"     // in <dir>/raft
)

// chooseLogStore picks the log store of the raft directory: the one it
// already holds, whatever is configured (switching would lose the log and
// the vote), or the configured one on a directory that holds neither.
func chooseLogStore(raftDir, configured string) (kind string, err error) {
	hasBolt, err := exists(filepath.Join(raftDir, boltLogFile))
	if err != nil {
		return "", err
	}
	hasWAL, err := exists(filepath.Join(raftDir, walDir, metadb.FileName))
	if err != nil {
		return "", err
	}
	switch {
	case hasBolt && hasWAL:
		return "", fmt.Errorf("%w: %s holds both a raft-boltdb log (%s) and a raft-wal log (%s/); remove the one not in use",
			ErrBadConfig, raftDir, boltLogFile, walDir)
	case hasBolt:
		return LogStoreBolt, nil
	case hasWAL:
		return LogStoreWAL, nil
	}
	return configured, nil
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("raft: %w", err)
	}
	return true, nil
}

// openLogStore opens (or creates) the log store kind under raftDir with
// raft-wal segments of segmentSize bytes. noSync leaves out the fsyncs of
// appends.
func openLogStore(kind, raftDir string, segmentSize int, noSync bool, hl hclog.Logger) (logStore, error) {
	switch kind {
	case LogStoreBolt:
		// Bolt would otherwise write its whole freelist on every commit, and
		// log compaction keeps thousands of pages free: with 2.5k free pages
		// that is 20 KiB more per append (bench/RESULTS.md). Without it,
		// opening rebuilds the freelist by scanning the file, which for a raft
		// log is quick.
		s, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(raftDir, boltLogFile), NoSync: noSync,
			BoltOptions: &bbolt.Options{NoFreelistSync: true, FreelistType: bbolt.FreelistMapType}})
		if err != nil {
			return nil, err
		}
		return s, nil
	case LogStoreWAL:
		dir := filepath.Join(raftDir, walDir)
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, err
		}
		// raft-wal has no option to skip fsync, but its segment files go
		// through a VFS (its default is walfs.New()), and one whose files
		// ignore Sync does it. The meta database (segment list, term and
		// vote) still syncs; it is written only when a segment rotates, the
		// log is truncated or the term or vote changes.
		var vfs waltypes.VFS = walfs.New()
		if noSync {
			vfs = noSyncVFS{vfs}
		}
		w, err := wal.Open(dir, wal.WithLogger(hl.Named("wal")), wal.WithSegmentFiler(segment.NewFiler(dir, vfs)),
			wal.WithSegmentSize(segmentSize))
		if err != nil {
			return nil, err
		}
		return w, nil
	}
	return nil, fmt.Errorf("%w: LogStore %q (want %q or %q)", ErrBadConfig, kind, LogStoreWAL, LogStoreBolt)
}

// noSyncVFS is raft-wal's file system with fsync left out.
type noSyncVFS struct{ waltypes.VFS }

func (v noSyncVFS) Create(dir, name string, size uint64) (waltypes.WritableFile, error) {
	f, err := v.VFS.Create(dir, name, size)
	if err != nil {
		return nil, err
	}
	return noSyncFile{f}, nil
}

func (v noSyncVFS) OpenWriter(dir, name string) (waltypes.WritableFile, error) {
	f, err := v.VFS.OpenWriter(dir, name)
	if err != nil {
		return nil, err
	}
	return noSyncFile{f}, nil
}

type noSyncFile struct{ waltypes.WritableFile }

func (noSyncFile) Sync() error { return nil }
