package raft

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/ambit-authz/ambit/store"
)

// hangingLeader serves the cluster service's Forward by holding every call
// until its caller gives up: a frozen leader.
func hangingLeader(t *testing.T) (addr string, calls chan struct{}) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	calls = make(chan struct{}, 16)
	srv := grpc.NewServer()
	srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: serviceName,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Forward", Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.BytesValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			calls <- struct{}{}
			<-ctx.Done()
			return nil, ctx.Err()
		}}},
	}, struct{}{})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String(), calls
}

// A write forwarded to a leader that this node no longer sees as the
// leader fails fast instead of waiting out the caller's deadline: with the
// outcome unknown if the write had left (ErrLeadershipLost), as not
// proposed if it never could (ErrNoLeader, which Apply retries).
func TestForwardOutcomes(t *testing.T) {
	c := newTestCluster(t, 1, fakeStores(), nil)
	n := c.nodes[c.waitLeader()].n // sees itself, n0, as the leader
	cmd := WriteCommand([]store.Update{touch("x")}, nil)
	hung, calls := hangingLeader(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := closed.Addr().String()
	closed.Close()

	for _, tc := range []struct {
		name, addr string
		want       error
	}{
		{"frozen leader, write sent", hung, ErrLeadershipLost},
		{"nothing listening, write never sent", dead, ErrNoLeader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			_, err := n.forwardToLeader(ctx, "deposed", tc.addr, cmd)
			if !errors.Is(err, tc.want) {
				t.Fatalf("forward = %v, want %v", err, tc.want)
			}
			if errors.Is(err, ErrForward) || (tc.want == ErrNoLeader && errors.Is(err, ErrLeadershipLost)) {
				t.Fatalf("forward = %v: both outcomes at once", err)
			}
			if d := time.Since(start); d > 15*time.Second {
				t.Fatalf("forward took %v: it waited for the caller's deadline", d)
			}
		})
	}
	select {
	case <-calls:
	default:
		t.Fatal("the frozen leader never received the write: the first case tested nothing")
	}
}
