package endpoints

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{{"a:1", 1}, {"a:1,b:2, c:3", 3}, {" , a:1,,", 1}, {"", 0}} {
		if got := Split(tc.in); len(got) != tc.want {
			t.Errorf("Split(%q) = %q, want %d endpoints", tc.in, got, tc.want)
		}
	}
	if _, err := Dial(" , "); err == nil {
		t.Error("Dial of an empty list succeeded")
	}
}

// counting serves gRPC health and counts the calls it received.
func counting(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	s := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		n.Add(1)
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(s, health.NewServer())
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	return lis.Addr().String(), &n
}

// Calls over a list of endpoints reach every one of them, evenly.
func TestDialBalancesRoundRobin(t *testing.T) {
	a, na := counting(t)
	b, nb := counting(t)
	c, nc := counting(t)
	conn, err := Dial(a+","+b+" , "+c, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// round_robin sends calls only to ready subchannels: wait until all
	// three have taken one, then count a fixed number.
	for na.Load() == 0 || nb.Load() == 0 || nc.Load() == 0 {
		if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true)); err != nil {
			t.Fatal(err)
		}
	}
	base := [3]int64{na.Load(), nb.Load(), nc.Load()}
	for range 300 {
		if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	for i, n := range []*atomic.Int64{na, nb, nc} {
		if got := n.Load() - base[i]; got < 50 {
			t.Errorf("endpoint %d took %d of 300 calls, want about 100", i, got)
		}
	}
}
