package api

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	ambitv1 "github.com/ambit-authz/ambit/proto/ambit/v1"
)

// ErrNotReady: a readiness condition is not met. The message names it.
var ErrNotReady = errors.New("not ready")

// Readiness is the list of conditions under which a node takes traffic
// (/readyz answers 200 and gRPC health says SERVING). Each condition returns
// nil when it is met, else an error saying what is missing; the node is ready
// when all are met. Conditions are checked in the order they were added, and
// the first unmet one is reported. Safe for concurrent use.
type Readiness struct {
	mu    sync.Mutex
	conds []readyCond
}

type readyCond struct {
	name  string
	check func(context.Context) error
}

// Require adds a condition. check must be cheap and return promptly once ctx
// is done (readiness probes call it with a short deadline).
func (r *Readiness) Require(name string, check func(ctx context.Context) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conds = append(r.conds, readyCond{name, check})
}

// Check returns nil when every condition is met, else an error wrapping
// ErrNotReady that names the first condition not met and why.
func (r *Readiness) Check(ctx context.Context) error {
	r.mu.Lock()
	conds := r.conds
	r.mu.Unlock()
	for _, c := range conds {
		if err := c.check(ctx); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrNotReady, c.name, err)
		}
	}
	return nil
}

// healthServices are the gRPC health service names that Register and
// Publish set: the whole server (""), each authzed v1 service and ambit.v1's
// AccessService.
var healthServices = []string{"", v1.PermissionsService_ServiceDesc.ServiceName, v1.SchemaService_ServiceDesc.ServiceName, v1.WatchService_ServiceDesc.ServiceName,
	ambitv1.AccessService_ServiceDesc.ServiceName}

// Publish makes h report r: every service NOT_SERVING at once, then the
// result of Check every interval until ctx is done. Call it before the gRPC
// server starts so that no health check sees SERVING early. Each Check runs
// with a deadline of interval.
func (r *Readiness) Publish(ctx context.Context, h *health.Server, interval time.Duration) {
	set := func(s healthpb.HealthCheckResponse_ServingStatus) {
		for _, name := range healthServices {
			h.SetServingStatus(name, s)
		}
	}
	set(healthpb.HealthCheckResponse_NOT_SERVING)
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		last := healthpb.HealthCheckResponse_NOT_SERVING
		for {
			cctx, cancel := context.WithTimeout(ctx, interval)
			s := healthpb.HealthCheckResponse_SERVING
			if r.Check(cctx) != nil {
				s = healthpb.HealthCheckResponse_NOT_SERVING
			}
			cancel()
			if ctx.Err() != nil {
				return
			}
			if s != last {
				set(s)
				last = s
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}
