// Package harness drives any server that speaks the authzed v1 gRPC API
// (ambit or SpiceDB) with a generated workload: it loads the schema and
// relationships, then runs checks, bulk checks, lookups, writes or a mix
// (or, over HTTP, ambit's AuthZEN evaluations and resource search) at a
// fixed concurrency for a fixed time, optionally beside a writer at a fixed
// rate, and reports throughput, latency quantiles from its own log-bucketed
// histogram, errors, the fraction of checks allowed and the checks whose
// answer, known by construction, came back different.
package harness

import (
	"context"
	"crypto/tls"
	"fmt"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ambit-authz/ambit/internal/endpoints"
)

// Client is a connection to one endpoint.
type Client struct {
	Endpoint    string
	conn        *grpc.ClientConn
	Permissions v1.PermissionsServiceClient
	Schema      v1.SchemaServiceClient
	// AuthZEN, when set, serves the authzen-* operations.
	AuthZEN *AuthZENClient
}

// DialOptions say how to reach an endpoint.
type DialOptions struct {
	// Token is sent as a bearer token with every call ("" sends none).
	Token string
	// Insecure uses plaintext instead of TLS.
	Insecure bool
	// Extra are appended to the dial options (tests pass a bufconn dialer).
	Extra []grpc.DialOption
}

// Dial connects to endpoint (host:port), or to a comma-separated list of
// them balanced round robin (internal/endpoints: a cluster's members, read
// replicas included; writes are forwarded to the leader by whichever
// member gets them). gRPC connects lazily: an unreachable endpoint shows up
// as errors on the first call.
func Dial(endpoint string, o DialOptions) (*Client, error) {
	opts := []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64 << 20))}
	if o.Insecure {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	} else {
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})))
	}
	if o.Token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer{token: o.Token, secure: !o.Insecure}))
	}
	opts = append(opts, o.Extra...)
	conn, err := endpoints.Dial(endpoint, opts...)
	if err != nil {
		return nil, fmt.Errorf("harness: dial %s: %w", endpoint, err)
	}
	return &Client{Endpoint: endpoint, conn: conn,
		Permissions: v1.NewPermissionsServiceClient(conn), Schema: v1.NewSchemaServiceClient(conn)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// bearer sends "authorization: Bearer <token>", as SpiceDB expects.
type bearer struct {
	token  string
	secure bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b bearer) RequireTransportSecurity() bool { return b.secure }
