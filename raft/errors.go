package raft

import "errors"

// Errors returned by this package. They are wrapped with detail; test with
// errors.Is. Domain failures of a write (a failed precondition, an existing
// relationship...) wrap the store's sentinel errors instead.
var (
	// ErrNoLeader: no leader is known right now (an election is running or
	// the cluster has lost quorum). Nothing was proposed; the call may be
	// retried. The API maps it to UNAVAILABLE.
	ErrNoLeader = errors.New("no raft leader")
	// ErrNotLeader: the operation must run on the leader and this node is not
	// it. Nothing was proposed.
	ErrNotLeader = errors.New("not the raft leader")
	// ErrTimeout: the operation did not finish before its deadline (the
	// context's or Config.ApplyTimeout). For a write the outcome is unknown:
	// it may still commit.
	ErrTimeout = errors.New("raft operation timed out")
	// ErrLeadershipLost: the leader lost its leadership while the write was in
	// flight. The outcome is unknown: it may still commit under a new leader.
	ErrLeadershipLost = errors.New("raft leadership lost while committing; outcome unknown")
	// ErrForward: a call forwarded to the leader failed in transport. For a
	// write the outcome is unknown.
	ErrForward = errors.New("forwarding to the leader failed")
	// ErrNodeExists: a join named an id or an address that another member
	// already uses.
	ErrNodeExists = errors.New("a cluster member with that id or address already exists")
	// ErrUnknownNode: a remove named an id that is not a member.
	ErrUnknownNode = errors.New("no cluster member with that id")
	// ErrUnauthenticated: a cluster call carried a missing or wrong preshared
	// key.
	ErrUnauthenticated = errors.New("cluster call not authenticated: missing or wrong preshared key")
	// ErrSchemaRefused: the SchemaGuard refused a schema write. Nothing was
	// written.
	ErrSchemaRefused = errors.New("schema change refused")
	// ErrSchemaChanged: a command carried the hash of the schema it was
	// validated against, and when it came to be applied the stored schema was
	// another (a schema write committed in between). Nothing was written; the
	// revision still advanced. Validating again and retrying is safe.
	ErrSchemaChanged = errors.New("the schema changed while the write was in flight")
	// ErrBadCommand: a command cannot be encoded or decoded (the message names
	// the field).
	ErrBadCommand = errors.New("malformed command")
	// ErrBadConfig: the node configuration is invalid.
	ErrBadConfig = errors.New("invalid raft node configuration")
	// ErrHalted: the store failed to apply a committed entry for a reason that
	// is not a domain failure (an I/O error). The FSM stops applying so the
	// replica never diverges; restarting the node replays from the store's
	// applied revision.
	ErrHalted = errors.New("state machine halted after a store failure")
	// ErrDiskFault: this node cannot persist what it applies (a store or raft
	// log write failed, or its data directory cannot be written). Nothing was
	// proposed; the node refuses writes until it is restarted with a working
	// disk. Another node may accept the write.
	ErrDiskFault = errors.New("disk fault: this node cannot persist writes")
	// ErrClosed: the node has been closed.
	ErrClosed = errors.New("raft node is closed")
)
