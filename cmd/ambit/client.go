package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ambit-authz/ambit/internal/endpoints"
	"github.com/ambit-authz/ambit/internal/v1pb"
)

// clientFlags are the connection flags every client command has.
type clientFlags struct {
	endpoint    string
	token       string
	tls         bool
	asJSON      bool
	consistency string
}

func (c *clientFlags) add(cmd *cobra.Command, reads bool) {
	f := cmd.Flags()
	f.StringVar(&c.endpoint, "endpoint", "127.0.0.1:50051", "server gRPC address, or several comma-separated (calls go round robin; AMBIT_ENDPOINT; every flag has its AMBIT_ twin)")
	f.StringVar(&c.token, "token", "", "preshared key sent as a bearer token (AMBIT_TOKEN)")
	f.BoolVar(&c.tls, "tls", false, "use TLS with the system roots")
	f.BoolVar(&c.asJSON, "json", false, "print protobuf JSON, one message per line")
	if reads {
		f.StringVar(&c.consistency, "consistency", "latency", "latency, full, fresh:ZEDTOKEN or exact:ZEDTOKEN")
	}
}

type bearerCreds struct {
	token  string
	secure bool
}

func (b bearerCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b bearerCreds) RequireTransportSecurity() bool { return b.secure }

// dialEndpoint opens a client connection to endpoint (or a comma-separated
// list of endpoints, balanced round robin): TLS with the system
// roots when secure, else plaintext; a non-empty token is sent as a bearer
// token with every call. Nothing is sent until the first call.
func dialEndpoint(endpoint, token string, secure bool) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if secure {
		opts[0] = grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12}))
	}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearerCreds{token: token, secure: secure}))
	}
	return endpoints.Dial(endpoint, opts...)
}

func (c *clientFlags) dial() (*grpc.ClientConn, error) {
	return dialEndpoint(c.endpoint, c.token, c.tls)
}

func (c *clientFlags) consistencyPB() (*v1.Consistency, error) {
	cons, err := v1pb.ParseConsistency(c.consistency)
	if err != nil {
		return nil, fmt.Errorf("--%v", err)
	}
	return cons, nil
}

// emit prints m as JSON (with --json) or as text.
func (c *clientFlags) emit(w io.Writer, m proto.Message, text string) error {
	if c.asJSON {
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	}
	_, err := fmt.Fprintln(w, text)
	return err
}

// session is one client command's open connection.
type session struct {
	*clientFlags
	ctx    context.Context
	out    io.Writer
	errOut io.Writer
	conn   *grpc.ClientConn
	perms  v1.PermissionsServiceClient
	cons   *v1.Consistency // from --consistency; minimize_latency for writes
}

// connect resolves --consistency, dials the endpoint, runs fn with the open
// session and closes the connection.
func (c *clientFlags) connect(cmd *cobra.Command, fn func(s *session) error) error {
	cons, err := c.consistencyPB()
	if err != nil {
		return err
	}
	conn, err := c.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	return fn(&session{clientFlags: c, ctx: cmd.Context(), out: cmd.OutOrStdout(), errOut: cmd.ErrOrStderr(),
		conn: conn, perms: v1.NewPermissionsServiceClient(conn), cons: cons})
}

// print prints m as JSON (with --json) or as text.
func (s *session) print(m proto.Message, text string) error { return s.emit(s.out, m, text) }

// printLines prints m as JSON (with --json) or each of lines as text.
func (s *session) printLines(m proto.Message, lines []string) error {
	if s.asJSON {
		return s.print(m, "")
	}
	for _, l := range lines {
		if _, err := fmt.Fprintln(s.out, l); err != nil {
			return err
		}
	}
	return nil
}

// call makes one unary call and prints its answer with text.
func call[R proto.Message](s *session, rpc func(context.Context) (R, error), text func(R) string) error {
	r, err := rpc(s.ctx)
	if err != nil {
		return err
	}
	return s.print(r, text(r))
}

// printStream prints every message of a server stream, as lines(m) in text.
func printStream[T any, M interface {
	*T
	proto.Message
}](s *session, open func(context.Context) (grpc.ServerStreamingClient[T], error), lines func(M) ([]string, error)) error {
	stream, err := open(s.ctx)
	if err != nil {
		return err
	}
	return recvAll(stream.Recv, func(m *T) error {
		l, err := lines(M(m))
		if err != nil {
			return err
		}
		return s.printLines(M(m), l)
	})
}

// one is lines for a message printed as a single line.
func one[R any](text func(R) string) func(R) ([]string, error) {
	return func(m R) ([]string, error) { return []string{text(m)}, nil }
}

// relText is the text form of a relationship a server sent.
func relText(r *v1.Relationship) (string, error) {
	t, err := v1pb.RelationshipFromV1(r, "relationship")
	if err != nil {
		return "", fmt.Errorf("the server sent %v", err)
	}
	return t.String(), nil
}

// contextPB reads --context.
func contextPB(s string) (*structpb.Struct, error) { return v1pb.ParseContext(s, "--context") }

// query is a command's RESOURCE and SUBJECT arguments and its --context,
// read once at the edge.
type query struct {
	res  *v1.ObjectReference
	sub  *v1.SubjectReference
	cctx *structpb.Struct
}

// parseQuery reads args[res] as an object and args[sub] as a subject (an
// index below 0 is not read) and ctxJSON as the caveat context.
func parseQuery(args []string, res, sub int, ctxJSON string) (q query, err error) {
	if res >= 0 {
		if q.res, err = v1pb.ParseObject(args[res]); err != nil {
			return q, err
		}
	}
	if sub >= 0 {
		if q.sub, err = v1pb.ParseSubject(args[sub]); err != nil {
			return q, err
		}
	}
	q.cctx, err = contextPB(ctxJSON)
	return q, err
}

func recvAll[T any](recv func() (T, error), fn func(T) error) error { return v1pb.RecvAll(recv, fn) }

// addContextFlag adds --context, the caveat context of a read.
func addContextFlag(cmd *cobra.Command, ctxJSON *string) {
	cmd.Flags().StringVar(ctxJSON, "context", "", "caveat context as a JSON object")
}
