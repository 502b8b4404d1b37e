package raft

import (
	"errors"

	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/store"
)

// Errors returned by this package. They are wrapped with detail; test with
// errors.Is. Domain failures of a write (a failed precondition, an existing
// relationship...) wrap the store's sentinel errors instead.
//
// For a write, each availability error says whether anything was proposed:
// "nothing was proposed" errors (ErrNoLeader, ErrNotLeader) may be retried
// as they are; "outcome unknown" errors (ErrTimeout, ErrLeadershipLost,
// ErrForward, ErrClosed, ErrHalted) may have committed, so only an
// idempotent write is retried blindly. The API reports the two as the
// ErrorInfo reasons NOT_PROPOSED and OUTCOME_UNKNOWN (api/errors.go); an
// error wrapping both counts as unknown.
var (
	// ErrNoLeader: no leader is known right now (an election is running or
	// the cluster has lost quorum), or the leader could not be reached and
	// the write never left this node. Nothing was proposed; the call may be
	// retried. The API maps it to UNAVAILABLE, NOT_PROPOSED.
	ErrNoLeader = errors.New("no raft leader")
	// ErrNotLeader: the operation must run on the leader and this node is not
	// it. Nothing was proposed.
	ErrNotLeader = errors.New("not the raft leader")
	// ErrTimeout: the operation did not finish before its deadline (the
	// context's or Config.ApplyTimeout). For a write the outcome is unknown:
	// it may still commit.
	ErrTimeout = errors.New("raft operation timed out")
	// ErrLeadershipLost: the leader lost its leadership while the write was in
	// flight, or this node stopped seeing the leader it had forwarded the
	// write to. The outcome is unknown: it may still commit under a new
	// leader.
	ErrLeadershipLost = errors.New("raft leadership lost while committing; outcome unknown")
	// ErrForward: a call forwarded to the leader failed in transport after
	// the request left (one that never left is ErrNoLeader). For a write the
	// outcome is unknown.
	ErrForward = errors.New("forwarding to the leader failed")
	// ErrNodeExists: a join named an id or an address that another member
	// already uses.
	ErrNodeExists = errors.New("a cluster member with that id or address already exists")
	// ErrUnknownNode: a remove named an id that is not a member.
	ErrUnknownNode = errors.New("no cluster member with that id")
	// ErrUnauthenticated: a cluster call carried a missing or wrong
	// credential (the cluster secret's, or a preshared key). Nothing was
	// proposed; retrying does not help.
	ErrUnauthenticated = errors.New("cluster call not authenticated: missing or wrong preshared key or cluster secret")
	// ErrSchemaRefused: the SchemaGuard refused a schema write. Nothing was
	// written. A refusal (store.ErrRefused): the revision advanced.
	ErrSchemaRefused = store.NewRefusal("schema change refused")
	// ErrSchemaInUse (schema's, OrphanGuard's first kind): a guard's reason (wrapped with ErrSchemaRefused): the
	// new schema removes a definition or relation, or turns a relation into
	// a permission, that stored relationships still use. Deleting them first
	// is the way forward (SpiceDB answers FailedPrecondition).
	ErrSchemaInUse = schema.ErrRemovedInUse
	// ErrSchemaOrphans (schema's, OrphanGuard's second kind): a guard's reason (wrapped with ErrSchemaRefused): the
	// new schema no longer allows a subject type (wildcard, subject set,
	// caveat, expiration) that stored relationships use; the schema itself
	// is the problem (SpiceDB answers InvalidArgument).
	ErrSchemaOrphans = schema.ErrOrphaned
	// ErrSchemaChanged: a command carried the hash of the schema it was
	// validated against, and when it came to be applied the stored schema was
	// another (a schema write committed in between). Nothing was written; the
	// revision still advanced (a refusal, store.ErrRefused). Validating again
	// and retrying is safe.
	ErrSchemaChanged = store.NewRefusal("the schema changed while the write was in flight")
	// ErrBadCommand: a command cannot be encoded or decoded (the message names
	// the field).
	ErrBadCommand = errors.New("malformed command")
	// ErrInvalidCommand: the leader refused a command another node forwarded
	// because it does not validate against the schema (as the same request
	// from a client would not). Nothing was proposed; retrying the same
	// command fails the same way.
	ErrInvalidCommand = errors.New("forwarded command refused by validation")
	// ErrMembershipRefused: a promote or demote would leave the cluster
	// without a voter, or names a member that cannot take the change.
	// Nothing changed.
	ErrMembershipRefused = errors.New("membership change refused")
	// ErrBadConfig: the node configuration is invalid.
	ErrBadConfig = errors.New("invalid raft node configuration")
	// ErrHalted: the state machine stopped applying committed entries, so
	// that the replica never diverges: the store failed for a reason that is
	// not a refusal (an I/O error; restarting the node replays from the
	// store's applied revision), or an entry does not decode
	// (ErrUndecodableEntry). A halted node refuses writes and linearizable
	// reads; Node.Halted reports why. A write that meets it has an unknown
	// outcome.
	ErrHalted = errors.New("state machine halted")
	// ErrUndecodableEntry: a committed log entry does not decode (a command
	// version or kind this binary does not know, or corrupt bytes). The
	// state machine halts on it (ErrHalted); the message names the index and
	// the recovery path.
	ErrUndecodableEntry = errors.New("a committed log entry does not decode")
	// ErrDiskFault: this node cannot persist what it applies (a store or raft
	// log write failed, or its data directory cannot be written). Nothing was
	// proposed; the node refuses writes until it is restarted with a working
	// disk. Another node may accept the write.
	ErrDiskFault = errors.New("disk fault: this node cannot persist writes")
	// ErrClosed: the node has been closed. A write in flight has an unknown
	// outcome.
	ErrClosed = errors.New("raft node is closed")
)
