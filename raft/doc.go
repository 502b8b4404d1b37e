// Package raft replicates ambit's tuple store with hashicorp/raft.
//
// # Commands and the state machine
//
// Every change to the store is a Command (command.go): a type byte, a
// version byte, the leader-stamped time and a compact varint payload. The
// FSM (fsm.go) applies each committed entry to the store at revision = raft
// log index, so the store's applied revision and the log index are the same
// number. Raft hands the FSM committed entries in batches; runs of
// consecutive relationship writes (and no-ops and configuration entries) go
// to the store in one store.WriteMany, one storage write for the run, each
// entry still checked against the state after the ones before it and given
// its own result and revision. Entries at or below the store's applied revision are skipped: the
// store is durable, so replay after a restart is idempotent and raft's
// NoSnapshotRestoreOnStart is set. A store behind the newest snapshot (empty,
// in-memory, or one that lost unsynced writes to an OS crash) is restored
// from that snapshot by NewNode before raft starts; a store holding data under
// an empty raft directory is refused.
//
// A relationship write or import carries the digest of the schema text the
// API validated it against (SchemaHash, schema.DigestOf; command format
// version 2; version 1 entries, without it, still decode and apply
// unchecked). The FSM refuses such a command with ErrSchemaChanged when the
// stored schema is another by the time it applies, so a schema write
// committed in between cannot let in relationships it no longer allows. A
// schema write passes Config.SchemaGuard (required; OrphanGuard, whose rule
// is schema.CheckChange) inside Apply, installed once by NewNode so that
// replay is guarded too; its refusal is ErrSchemaRefused wrapping
// ErrSchemaInUse or ErrSchemaOrphans.
//
// Apply is a pure function of the store's state and the entry: nothing a
// node configures changes it. Request limits (updates per write, caveat
// context size) are checked by the API before a command is proposed; the
// store enforces only the format's constants (store/FORMAT.md, "Limits"),
// and a write too large for one badger transaction on this node commits in
// pieces rather than being refused here and applied elsewhere.
//
// A refusal (store.ErrRefused: failed precondition, existing relationship,
// refused or changed schema, a request beyond a format limit) is the entry's
// result, and the revision still advances. Anything else halts the FSM: no
// further entry is applied, the node refuses writes and linearizable reads,
// a halted leader hands its leadership off, and Node.Halted reports the
// error (ErrHalted), which names the log index and the way out. A store error
// that is not a refusal (I/O) clears on restart, which replays from the store.
// An entry that does not decode (ErrUndecodableEntry: a command version or
// kind this binary does not know, written by a newer leader, or corrupt
// bytes) never panics: it halts the node again at the same index after every
// restart, leaving the data directory intact, until the node is upgraded
// (a rolling upgrade goes followers first, the leader last, so no old binary
// meets a new entry) or, for a corrupt entry, its data directory is removed
// and it rejoins to catch up from a snapshot.
//
// # Durability
//
// A write is acknowledged once raft has committed it (fsynced in the raft
// log of a majority) and the leader's FSM has applied it. The raft
// log is the durability point; the store need not fsync for an acknowledged
// write to survive a crash, since raft re-applies the entries after its newest
// snapshot and the FSM skips those the store already holds. What the log
// cannot give back is what it has compacted, the entries up to a snapshot's
// index; so a snapshot syncs the store before it is written (Persist: raft
// compacts only after Persist returns), and an installed snapshot is synced
// before Restore returns. NewNode restores the newest snapshot into a store
// that is behind it (an empty or in-memory one, or one rebuilt as below).
//
// Replay repairs a store that lost a tail of its writes, not one with a
// hole. Badger keeps one write-ahead log file per memtable and, on open,
// replays each up to its first torn entry: after a reboot (an OS crash, a
// power loss) with unsynced writes, a memtable rotated out shortly before can
// have lost its tail while the newer file survived, leaving a store that is
// not a prefix of the log, which replay cannot detect. A process crash loses
// nothing (the writes are in the page cache). So the server runs the store
// without synchronous writes behind a StoreGuard (storeguard.go): a marker
// holding the kernel's boot id exists while the store is open and is removed
// once it closes cleanly; a store found open in an earlier boot is moved
// aside and rebuilt from the newest snapshot and the log. Where the system
// has no boot id the server keeps SyncWrites on. A synchronous store costs
// two fsyncs per applied batch on every replica, which on a single disk about
// doubles the commit latency (bench/RESULTS.md).
//
// # Waiting for an index
//
// WaitApplied(rev) waits on a channel that the FSM closes and replaces
// whenever its applied index advances (no polling). Entries that carry no
// command must not leave a waiter hanging, so every entry the FSM receives
// advances the store to its index: commands write at it, configuration
// changes write an empty batch at it, member-table commands the table. Raft's own
// no-op and barrier entries never reach an FSM; that is why a new leader
// commits a KindNoop command before it serves read indexes, so the commit
// index it hands out is always reached by the FSM. The FSM also keeps the
// last index it saw in memory (Applied), which is at least the store's
// revision.
//
// # Cluster calls
//
// Followers forward writes, read-index requests, joins and removals to the
// leader over the gRPC port (cluster.go: a hand-written service
// ambit.cluster.v1.Cluster whose messages are protobuf well-known types
// carrying this package's encodings), authenticated with a credential derived
// from the cluster secret or with a preshared key (an empty key is refused),
// over TLS when Config.PeerTLS is set. The leader validates a forwarded
// command as a client's (Config.ForwardValidator, installed by the API)
// after applying up to its commit index, and a follower that forwarded a
// write waits until it has applied it before answering, so reads through it
// see it.
// Members' gRPC addresses replicate through the log (KindSetMember), are
// stored in the store (store key mmembers) in the same transaction as the
// entry's revision, and travel in the store's snapshots, so every member
// can find the leader's gRPC address. A <dir>/raft/members.bin left by an
// earlier build is moved into the store once and removed. A command over 1 MiB is forwarded in pieces
// (ForwardChunks), since the gRPC server's 4 MiB message limit is shared with
// the public API. A node joining without a cluster id learns it from the
// member it joins (ClusterID), and one given another id is refused. A leader
// that closes hands its leadership to the most up-to-date voter first.
// Replication is not pipelined (see NewNode). Raft's snapshots live under
// <dir>/raft/.
//
// # Transport security
//
// With Config.ClusterSecret, raft traffic runs over an authenticated,
// encrypted stream layer (streamlayer.go): TLS 1.3 with ephemeral
// certificates, then an HMAC of the secret over the session's exported
// keying material from each side, so only members holding the secret reach
// raft and a man in the middle cannot relay a proof. Without a secret raft
// uses hashicorp/raft's plain TCP transport, which anyone reaching the port
// can write to: loopback only (`ambit serve` refuses anything else).
//
// # Log store
//
// Raft's log and stable store (its term and vote) is raft-wal, segment files
// under <dir>/raft/wal/ written with one fsync per append, or raft-boltdb,
// one bbolt file <dir>/raft/raft.db with two (Config.LogStore, logstore.go).
// A new data dir gets the configured one, raft-wal by default
// (DefaultLogStore: it halves a commit's disk time); a dir keeps the one it
// holds, so a cluster created on raft-boltdb restarts on it.
//
// # Outcomes of a write
//
// nil: committed and applied. A domain failure: applied as a refusal.
// ErrNoLeader or ErrNotLeader: nothing was proposed; retry (a forward that
// never left this node is ErrNoLeader). ErrTimeout, ErrLeadershipLost,
// ErrForward: the outcome is unknown (the entry may still commit); callers
// must not assume either way. A forwarded write gives up as soon as this node
// stops seeing the leader it was sent to (forward.go).
package raft
