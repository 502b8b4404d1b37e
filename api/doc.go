// Package api serves the authzed v1 gRPC API — PermissionsService,
// SchemaService and WatchService, wire-compatible with SpiceDB — over
// ambit's engine, store and raft node.
//
// Reads resolve their Consistency to a revision this node has applied
// (minimize_latency: a recent one, quantized by Limits.RevisionQuantum so
// that identical checks share cache entries; at_least_as_fresh: wait for the token's
// revision; at_exact_snapshot: exactly that one; fully_consistent: a raft
// read index), open a store snapshot there and evaluate with the schema in
// force at that revision, compiled once per schema revision. Writes are
// validated against the current schema and replicated as one raft command
// each; the returned ZedToken is the revision it was applied at.
//
// ZedTokens and cursors are opaque, versioned and bound to the cluster id
// (token.go). Errors from the engine, store and raft are mapped to gRPC codes
// (and SpiceDB's ErrorInfo reasons) in one place, toStatus (errors.go),
// called by an interceptor; handlers return plain errors, or statuses built
// with invalidf and preconditionf for problems found at the edge. Messages
// are translated to and from ambit's types by internal/v1pb (convert.go).
// ServerOptions adds metrics and logging, panic recovery, authentication
// and scopes (an Authenticator: preshared keys and managed API tokens,
// caller.go, tokenauth.go) and the protoc-gen-validate rules that ship with
// the authzed messages.
//
// Managed tokens live in the replicated record keyspace (tokenrecords.go)
// and are served by ambit.v1.TokenService (tokenservice.go); every command
// the API proposes carries its caller's token id. The audit log (audit.go)
// writes each applied change from raft's OnApplied hook; the decision log
// (decisionlog.go) samples check and lookup answers through a bounded queue.
//
// Dependencies point one way: api imports engine, store and raft; none of
// them imports api.
package api
