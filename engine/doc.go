// Package engine answers "can subject S do P to resource R?" and its relatives
// (CheckBulk, Expand, LookupResources, LookupSubjects, Explain,
// ResourceAccess, SubjectPermissions) by walking the relationship graph under
// a compiled *schema.Schema, reading one consistent snapshot through the
// Reader interface declared here.
//
// Results are three-valued: a caveat whose context is incomplete makes a
// branch "conditional", and conditional values combine with Kleene logic
// (union = or, intersection = and, exclusion = and-not), exactly where
// SpiceDB would return CONDITIONAL with the missing context fields.
//
// Speed comes from: pruning branches that the schema proves cannot reach the
// subject's type; batching many object ids into one store read along unions
// and arrows; short-circuiting unions, intersections and exclusions;
// de-duplicating identical in-flight checks; a bounded result cache keyed
// by (schema hash, data set, revision, sub-problem); a read cache of the
// relationship sets checks and lookups read (readcache.go); and the
// nested-group index (Leopard, leopard.go), which expands a relation nested
// in itself (group#member in group#member) from memory at the revisions it
// covers.
//
// The engine imports no gRPC, store or raft package.
package engine
