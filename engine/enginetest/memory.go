// Package enginetest holds test helpers for the engine: an in-memory Reader
// over a fixed set of relationships, so engine tests need no store.
package enginetest

import (
	"context"
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/tuple"
)

// Memory is an in-memory engine.Reader. Relationships are kept sorted in the
// resource index's order. Not safe for concurrent mutation; Query may run
// concurrently.
type Memory struct {
	src  engine.Source
	rels []tuple.Relationship
	// Now decides expiration; nil means time.Now.
	Now func() time.Time
}

// NewMemory returns a reader over rels (copied).
func NewMemory(rels ...tuple.Relationship) *Memory {
	m := &Memory{src: engine.NewSource(), rels: slices.Clone(rels)}
	slices.SortFunc(m.rels, func(a, b tuple.Relationship) int {
		return strings.Compare(a.Key().String(), b.Key().String())
	})
	return m
}

// MustParse builds a reader from text-form relationships; it panics on a
// malformed one (test literals only).
func MustParse(lines ...string) *Memory {
	rels := make([]tuple.Relationship, 0, len(lines))
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" {
			rels = append(rels, tuple.MustParse(l))
		}
	}
	return NewMemory(rels...)
}

// Source is the data set's Source: every Memory is its own.
func (m *Memory) Source() engine.Source { return m.src }

// Snapshot names m at revision rev, judged at m's time, for Engine.View.
func (m *Memory) Snapshot(rev tuple.Revision) engine.Snapshot {
	return engine.Snapshot{Source: m.src, Revision: rev, Time: m.Time()}
}

// Time is the time expiration is judged at.
func (m *Memory) Time() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// Query implements engine.Reader.
func (m *Memory) Query(ctx context.Context, f tuple.Filter) iter.Seq2[tuple.Relationship, error] {
	now := m.Time()
	return func(yield func(tuple.Relationship, error) bool) {
		for _, r := range m.rels {
			if err := ctx.Err(); err != nil {
				yield(tuple.Relationship{}, err)
				return
			}
			if r.ExpiredAt(now) || !f.Matches(r) {
				continue
			}
			if !yield(r, nil) {
				return
			}
		}
	}
}
