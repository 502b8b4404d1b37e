package main

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/ambit-authz/ambit/api"
	"github.com/ambit-authz/ambit/api/console"
	"github.com/ambit-authz/ambit/raft"
)

// consoleOptions are the web console's flags (README "Web console").
type consoleOptions struct {
	enabled      bool
	maxBodyBytes int64
	timeout      time.Duration
}

func (o *consoleOptions) flags(f *pflag.FlagSet) {
	f.BoolVar(&o.enabled, "console", true, "serve the web console at /ui/ on --http-addr (its calls go through the gRPC API with the caller's credential)")
	f.Int64Var(&o.maxBodyBytes, "console-max-body", console.DefaultMaxBodyBytes, "largest web console request body in bytes (a schema, a validation file to import)")
	f.DurationVar(&o.timeout, "console-timeout", console.DefaultTimeout, "budget of each web console call (a Watch long poll gets its wait on top)")
}

// mountConsole serves the web console at /ui/ on mux. It calls the node's
// gRPC API at grpcAddr over loopback, with the TLS of --tls-cert when set
// (pinned to that certificate), so every console call is authenticated,
// scoped and limited as any gRPC client's. The connection closes when ctx
// ends. A console that cannot be set up is logged and left out.
func mountConsole(ctx context.Context, mux *http.ServeMux, c serveConfig, auth *api.Authenticator, grpcAddr, clusterID string, reg prometheus.Gatherer, log *slog.Logger) {
	if !c.console.enabled {
		return
	}
	creds := insecure.NewCredentials()
	var tlsCfg *tls.Config
	if c.tlsCert != "" {
		var err error
		if tlsCfg, err = console.LoopbackTLS(c.tlsCert, c.tlsKey); err != nil {
			log.Error("web console off", "err", err)
			return
		}
		creds = credentials.NewTLS(tlsCfg)
	}
	target := loopbackTarget(grpcAddr)
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds))
	if err != nil {
		log.Error("web console off", "err", err)
		return
	}
	go func() { <-ctx.Done(); _ = conn.Close() }()
	h, err := console.New(console.Config{
		Auth:         auth,
		Conn:         conn,
		Cluster:      clusterStatus(target, clusterID, creds, tlsCfg),
		Metrics:      reg,
		MaxBodyBytes: c.console.maxBodyBytes,
		Timeout:      c.console.timeout,
	})
	if err != nil {
		log.Error("web console off", "err", err)
		return
	}
	mux.Handle(console.Prefix, h)
}

// loopbackTarget is the address to dial a listener bound at addr: a
// wildcard host (0.0.0.0, ::) becomes the loopback address.
func loopbackTarget(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// clusterStatus lists the members as the node at target sees them (the
// cluster service, with the caller's credential: it accepts the preshared
// keys), and each member's applied revision, read by calling ReadSchema on
// the member with the caller's credential; Lag is how far each is behind
// the newest.
func clusterStatus(target, clusterID string, creds credentials.TransportCredentials, tlsCfg *tls.Config) func(context.Context, string) ([]console.Member, error) {
	return func(ctx context.Context, authorization string) ([]console.Member, error) {
		key, _ := strings.CutPrefix(authorization, "Bearer ")
		cl := raft.NewClient(key)
		if tlsCfg != nil {
			cl = raft.NewTLSClient(key, tlsCfg)
		}
		defer cl.Close()
		ms, err := cl.Status(ctx, target)
		if err != nil {
			return nil, err
		}
		out := make([]console.Member, len(ms))
		newest := int64(-1)
		for i, m := range ms {
			out[i] = console.Member{ID: m.ID, RaftAddr: m.RaftAddr, GRPCAddr: m.GRPCAddr, Role: m.Role, Voter: m.Voter, Applied: -1}
			rev, err := memberRevision(ctx, m.GRPCAddr, clusterID, authorization, creds)
			if err != nil {
				out[i].Error = err.Error()
				continue
			}
			out[i].Applied = rev
			newest = max(newest, rev)
		}
		for i := range out {
			if out[i].Applied >= 0 {
				out[i].Lag = newest - out[i].Applied
			}
		}
		return out, nil
	}
}

// memberRevision is the revision the member at addr has applied: ReadSchema
// reads there and says so in its ZedToken.
func memberRevision(ctx context.Context, addr, clusterID, authorization string, creds credentials.TransportCredentials) (int64, error) {
	if addr == "" {
		return -1, nil
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return -1, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if authorization != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", authorization)
	}
	resp, err := v1.NewSchemaServiceClient(conn).ReadSchema(ctx, &v1.ReadSchemaRequest{})
	if err != nil {
		return -1, err
	}
	rev, err := api.ZedTokenRevision(clusterID, resp.GetReadAt())
	return int64(rev), err
}
