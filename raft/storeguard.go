package raft

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// ErrNoBootID: the operating system offers no boot id, so a guard cannot tell
// a restart after a process crash (the page cache, and so every store write,
// survived) from one after a reboot (unsynced writes may be lost out of
// order). Run the store with synchronous writes instead.
var ErrNoBootID = errors.New("no boot id on this system; cannot guard a store without synchronous writes")

// bootID identifies the running kernel boot; tests replace it.
var bootID = func() (string, error) {
	data, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoBootID, err)
	}
	id := strings.TrimSpace(string(data))
	if id == "" {
		return "", fmt.Errorf("%w: empty /proc/sys/kernel/random/boot_id", ErrNoBootID)
	}
	return id, nil
}

// storeMarker is the guard's file under <dir>/raft: it holds the boot id of
// the boot in which a store without synchronous writes was last opened, and
// exists from the store's opening until it closes cleanly.
const storeMarker = "store-unsynced"

// StoreGuard lets a store run without synchronous writes (SyncWrites off):
// such a store survives a process crash intact, because its writes sit in
// the operating system's page cache, but after a reboot it may have lost
// writes out of order (see "Durability" in the package doc), and log replay
// cannot repair that. The guard notices the reboot and discards the store, so
// that NewNode rebuilds it from the newest raft snapshot and the log.
type StoreGuard struct {
	marker string
}

// GuardStore prepares storeDir, the directory of a store that the caller
// then opens without synchronous writes, for the node whose data directory
// is dir. If the store was open, and not closed cleanly, in an earlier boot,
// GuardStore moves it aside to storeDir+".discarded" (replacing an older
// one) and logs a warning; NewNode then rebuilds it. Call Closed once the
// store has closed cleanly. ErrNoBootID: the caller must open the store with
// synchronous writes.
func GuardStore(dir, storeDir string, logger *slog.Logger) (*StoreGuard, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	boot, err := bootID()
	if err != nil {
		return nil, err
	}
	raftDir := filepath.Join(dir, "raft")
	if err := os.MkdirAll(raftDir, 0o750); err != nil {
		return nil, fmt.Errorf("raft: creating %s: %w", raftDir, err)
	}
	g := &StoreGuard{marker: filepath.Join(raftDir, storeMarker)}
	prev, err := os.ReadFile(g.marker)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("raft: reading %s: %w", g.marker, err)
	case strings.TrimSpace(string(prev)) != boot:
		if err := discardStore(storeDir); err != nil {
			return nil, err
		}
		logger.Warn("raft: the store was open without synchronous writes when the machine went down; discarded it, rebuilding from the raft snapshot and log",
			"store", storeDir, "moved_to", storeDir+".discarded")
	}
	// Written only after a discard: were it written first, a crash in
	// between would leave an untrusted store behind a marker of this boot.
	if err := writeFileAtomic(g.marker, []byte(boot+"\n")); err != nil {
		return nil, err
	}
	if err := syncDir(raftDir); err != nil {
		return nil, err
	}
	return g, nil
}

// Closed records that the store closed cleanly (everything it applied is on
// disk), so a later reboot does not discard it.
func (g *StoreGuard) Closed() error {
	if err := os.Remove(g.marker); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("raft: removing %s: %w", g.marker, err)
	}
	return syncDir(filepath.Dir(g.marker))
}

// discardStore renames storeDir to storeDir+".discarded", durably.
func discardStore(storeDir string) error {
	aside := storeDir + ".discarded"
	if _, err := os.Stat(storeDir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := os.RemoveAll(aside); err != nil {
		return fmt.Errorf("raft: removing the previously discarded store %s: %w", aside, err)
	}
	if err := os.Rename(storeDir, aside); err != nil {
		return fmt.Errorf("raft: moving the untrusted store %s aside: %w", storeDir, err)
	}
	return syncDir(filepath.Dir(storeDir))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("raft: syncing directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("raft: syncing directory %s: %w", dir, err)
	}
	return nil
}
