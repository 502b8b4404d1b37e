package api

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ambit-authz/ambit/raft"
)

// After a failed write, a client can tell "nothing was proposed, retry"
// from "outcome unknown" by the ErrorInfo reason, and a forwarded command
// the leader refused is InvalidArgument.
func TestToStatusOutcomes(t *testing.T) {
	for _, tc := range []struct {
		err    error
		code   codes.Code
		reason string
	}{
		{fmt.Errorf("%w: election running", raft.ErrNoLeader), codes.Unavailable, ReasonNotProposed},
		{fmt.Errorf("%w: n2", raft.ErrNotLeader), codes.Unavailable, ReasonNotProposed},
		{fmt.Errorf("%w (node n1)", raft.ErrLeadershipLost), codes.Unavailable, ReasonOutcomeUnknown},
		{fmt.Errorf("%w: connection reset", raft.ErrForward), codes.Unavailable, ReasonOutcomeUnknown},
		{fmt.Errorf("%w: not committed: %w", raft.ErrTimeout, context.DeadlineExceeded), codes.DeadlineExceeded, ReasonOutcomeUnknown},
		{fmt.Errorf("%w: unknown type nosuchtype", raft.ErrInvalidCommand), codes.InvalidArgument, ""},
		{fmt.Errorf("%w: validated against another schema", raft.ErrSchemaChanged), codes.FailedPrecondition, ""},
	} {
		st := status.Convert(toStatus(slog.New(slog.DiscardHandler), "/test", tc.err))
		reason := ""
		for _, d := range st.Details() {
			if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == ErrorDomain {
				reason = info.GetReason()
			}
		}
		if st.Code() != tc.code || reason != tc.reason {
			t.Errorf("toStatus(%v) = %v reason %q, want %v reason %q", tc.err, st.Code(), reason, tc.code, tc.reason)
		}
	}
}
