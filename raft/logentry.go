package raft

import (
	"errors"
	"fmt"

	hraft "github.com/hashicorp/raft"
)

// ErrLogEntryGone is LogEntry's error for an entry the log no longer holds
// (raft dropped it after a snapshot) or never held.
var ErrLogEntryGone = errors.New("raft: log entry not in the log")

// LogEntry returns the data of the log entry at index as this node's raft
// log holds it: for a reader of applied entries that kept only their
// indexes (the audit log past its queue bound). The data must not be
// modified.
func (n *Node) LogEntry(index uint64) ([]byte, error) {
	var l hraft.Log
	if err := n.entries.GetLog(index, &l); err != nil {
		if errors.Is(err, hraft.ErrLogNotFound) {
			return nil, fmt.Errorf("%w: index %d (dropped after a snapshot?)", ErrLogEntryGone, index)
		}
		return nil, fmt.Errorf("raft: reading log entry %d: %w", index, err)
	}
	return l.Data, nil
}
