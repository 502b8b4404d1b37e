package api

import (
	"context"
	"errors"
	"fmt"

	"github.com/ambit-authz/ambit/api/apitoken"
	"github.com/ambit-authz/ambit/raft"
	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// recordTokens keeps managed tokens in the replicated record keyspace
// (space apitoken.Space, key the token id, value apitoken.Record.Encode),
// read from the local store at a revision and written through raft.
type recordTokens struct {
	st   Store
	node Node
}

// Tokens returns the server's managed tokens: the replicated record
// keyspace, read on this node and written through raft (the caller in the
// write's context is its Actor).
func (s *Server) Tokens() TokenRecords { return recordTokens{st: s.store, node: s.node} }

func (r recordTokens) Revision() tuple.Revision { return r.st.AppliedRevision() }

func (r recordTokens) Token(rev tuple.Revision, id string) (apitoken.Record, bool, error) {
	snap, err := r.st.Snapshot(rev)
	if err != nil {
		return apitoken.Record{}, false, err
	}
	v, ok, err := snap.Record(apitoken.Space, id)
	if err != nil || !ok {
		return apitoken.Record{}, false, err
	}
	rec, err := apitoken.DecodeRecord(v)
	if err != nil {
		return apitoken.Record{}, false, fmt.Errorf("token %s: %w", id, err)
	}
	return rec, true, nil
}

func (r recordTokens) Tokens(ctx context.Context, rev tuple.Revision) ([]apitoken.Record, error) {
	snap, err := r.st.Snapshot(rev)
	if err != nil {
		return nil, err
	}
	var out []apitoken.Record
	for e, err := range snap.Records(ctx, apitoken.Space, "") {
		if err != nil {
			return nil, err
		}
		rec, err := apitoken.DecodeRecord(e.Value)
		if err != nil {
			return nil, fmt.Errorf("token %s: %w", e.Key, err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// PutToken replicates the record under a condition on its previous value,
// then waits until this node has applied it, so that the token works here
// as soon as the call returns.
func (r recordTokens) PutToken(ctx context.Context, rec apitoken.Record, prev *apitoken.Record) (tuple.Revision, error) {
	cond := store.RecordCond{Space: apitoken.Space, Key: rec.ID}
	if prev != nil {
		cond.Value = prev.Encode()
	}
	cmd := raft.RecordsCommand(nil, nil, []store.RecordOp{{Space: apitoken.Space, Key: rec.ID, Value: rec.Encode()}}, []store.RecordCond{cond})
	res, err := r.node.Apply(ctx, cmd)
	if err == nil {
		err = res.Err
	}
	if errors.Is(err, store.ErrPreconditionFailed) {
		return 0, ErrTokenConflict
	}
	if err != nil {
		return 0, err
	}
	if err := r.node.WaitApplied(ctx, res.Revision); err != nil {
		return 0, err
	}
	return res.Revision, nil
}

// actorNode stamps every command it proposes with the caller's token id
// (raft.Command.Actor), so that every node's audit log can name who wrote
// each revision.
type actorNode struct{ Node }

func (a actorNode) Apply(ctx context.Context, cmd raft.Command) (raft.Result, error) {
	if c, ok := CallerFrom(ctx); ok && c.TokenID != "" {
		cmd.Actor = c.TokenID
	}
	return a.Node.Apply(ctx, cmd)
}
