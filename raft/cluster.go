package raft

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// The cluster service, written by hand (no protoc): its messages are
// protobuf well-known types carrying this package's own encodings.
//
//	service ambit.cluster.v1.Cluster {
//	  // Forward applies an encoded Command on the leader -> encoded result.
//	  rpc Forward(google.protobuf.BytesValue) returns (google.protobuf.BytesValue);
//	  // ReadIndex returns the leader's confirmed commit index -> encoded result.
//	  rpc ReadIndex(google.protobuf.Empty) returns (google.protobuf.BytesValue);
//	  // Join adds a voter; the request is an encoded KindSetMember Command.
//	  rpc Join(google.protobuf.BytesValue) returns (google.protobuf.BytesValue);
//	  // Remove removes a member by id.
//	  rpc Remove(google.protobuf.StringValue) returns (google.protobuf.BytesValue);
//	  // Status lists the members as the called node sees them.
//	  rpc Status(google.protobuf.Empty) returns (google.protobuf.BytesValue);
//	  // ClusterID returns the cluster id the called node was given or learned.
//	  rpc ClusterID(google.protobuf.Empty) returns (google.protobuf.BytesValue);
//	  // ForwardChunks is Forward for a command too large for one message:
//	  // its encoding in pieces of at most forwardChunk bytes, in order.
//	  rpc ForwardChunks(stream google.protobuf.BytesValue) returns (google.protobuf.BytesValue);
//	  // JoinReplica is Join adding a non-voter (a read replica).
//	  rpc JoinReplica(google.protobuf.BytesValue) returns (google.protobuf.BytesValue);
//	  // Promote makes a non-voter a voter; Demote a voter a non-voter.
//	  rpc Promote(google.protobuf.StringValue) returns (google.protobuf.BytesValue);
//	  rpc Demote(google.protobuf.StringValue) returns (google.protobuf.BytesValue);
//	  // Progress is the called node's own applied revision and commit index.
//	  rpc Progress(google.protobuf.Empty) returns (google.protobuf.BytesValue);
//	  // Replication asks every member for its Progress -> member progress list.
//	  rpc Replication(google.protobuf.Empty) returns (google.protobuf.BytesValue);
//	}
//
// Every call carries "authorization: Bearer <preshared key>" (or the
// cluster credential); Status, Remove, Promote and Demote also take what
// Config.StatusAuth accepts (an operator's admin token: the member list,
// membership changes).
// Forward and ReadIndex are only served by the leader (a non-leader answers
// ErrNotLeader and the caller retries); Join and Remove received from
// outside the cluster are forwarded once to the leader, marked with the hop
// header.
const (
	serviceName = "ambit.cluster.v1.Cluster"
	hopHeader   = "ambit-cluster-hop"
)

// forwardChunk is the largest command Forward sends in one message, and the
// size of ForwardChunks' pieces. gRPC servers refuse messages above 4 MiB
// by default and the node's server is shared with the public API (whose
// limit is that size), so a large command travels in pieces rather than
// through a raised server-wide limit.
const forwardChunk = 1 << 20

// MaxCommandBytes bounds the encoding of one proposed command (one raft log
// entry, replicated to every member and kept in the log until compaction).
const MaxCommandBytes = 64 << 20

type clusterService interface{ clusterNode() *Node }

type clusterServer struct{ n *Node }

func (s *clusterServer) clusterNode() *Node { return s.n }

// RegisterService registers the cluster service of n on s (the node's gRPC
// server, shared with the public API).
func RegisterService(s grpc.ServiceRegistrar, n *Node) {
	s.RegisterService(&serviceDesc, &clusterServer{n: n})
}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: serviceName,
	HandlerType: (*clusterService)(nil),
	Methods: []grpc.MethodDesc{
		unary("Forward", func() *wrapperspb.BytesValue { return new(wrapperspb.BytesValue) }, (*Node).serveForward),
		unary("ReadIndex", func() *emptypb.Empty { return new(emptypb.Empty) }, (*Node).serveReadIndex),
		unary("Join", func() *wrapperspb.BytesValue { return new(wrapperspb.BytesValue) }, (*Node).serveJoin),
		unaryAuth("Remove", (*Node).authenticateAdmin, func() *wrapperspb.StringValue { return new(wrapperspb.StringValue) }, (*Node).serveRemove),
		unaryAuth("Status", (*Node).authenticateAdmin, func() *emptypb.Empty { return new(emptypb.Empty) }, (*Node).serveStatus),
		unary("ClusterID", func() *emptypb.Empty { return new(emptypb.Empty) }, (*Node).serveClusterID),
		unary("JoinReplica", func() *wrapperspb.BytesValue { return new(wrapperspb.BytesValue) }, (*Node).serveJoinReplica),
		unaryAuth("Promote", (*Node).authenticateAdmin, func() *wrapperspb.StringValue { return new(wrapperspb.StringValue) }, (*Node).servePromote),
		unaryAuth("Demote", (*Node).authenticateAdmin, func() *wrapperspb.StringValue { return new(wrapperspb.StringValue) }, (*Node).serveDemote),
		unary("Progress", func() *emptypb.Empty { return new(emptypb.Empty) }, (*Node).serveProgress),
		unaryAuth("Replication", (*Node).authenticateAdmin, func() *emptypb.Empty { return new(emptypb.Empty) }, (*Node).serveReplication),
	},
	Streams: []grpc.StreamDesc{
		{StreamName: "ForwardChunks", Handler: serveForwardChunks, ClientStreams: true},
	},
	Metadata: "ambit/cluster/v1/cluster.proto",
}

var forwardChunksDesc = grpc.StreamDesc{StreamName: "ForwardChunks", ClientStreams: true}

// serveForwardChunks reassembles a command sent in pieces and serves it as
// Forward does. The key is checked before any piece is read.
func serveForwardChunks(srv any, stream grpc.ServerStream) error {
	n := srv.(clusterService).clusterNode()
	if err := n.authenticate(stream.Context()); err != nil {
		return err
	}
	var data []byte
	for {
		in := new(wrapperspb.BytesValue)
		err := stream.RecvMsg(in)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if len(data)+len(in.GetValue()) > MaxCommandBytes {
			return status.Errorf(codes.ResourceExhausted, "forwarded command exceeds %d bytes", MaxCommandBytes)
		}
		data = append(data, in.GetValue()...)
	}
	out, err := n.serveForward(stream.Context(), wrapperspb.Bytes(data))
	if err != nil {
		return err
	}
	return stream.SendMsg(out)
}

func unary[Req proto.Message](name string, newReq func() Req, fn func(*Node, context.Context, Req) (*wrapperspb.BytesValue, error)) grpc.MethodDesc {
	return unaryAuth(name, (*Node).authenticate, newReq, fn)
}

// unaryAuth is a unary method whose caller auth checks before fn runs.
func unaryAuth[Req proto.Message](name string, auth func(*Node, context.Context) error, newReq func() Req, fn func(*Node, context.Context, Req) (*wrapperspb.BytesValue, error)) grpc.MethodDesc {
	full := "/" + serviceName + "/" + name
	return grpc.MethodDesc{
		MethodName: name,
		Handler: func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
			in := newReq()
			if err := dec(in); err != nil {
				return nil, err
			}
			n := srv.(clusterService).clusterNode()
			call := func(ctx context.Context, req any) (any, error) {
				if err := auth(n, ctx); err != nil {
					return nil, err
				}
				return fn(n, ctx, req.(Req))
			}
			if icpt == nil {
				return call(ctx, in)
			}
			return icpt(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: full}, call)
		},
	}
}

// authenticate checks a cluster call's bearer credential in constant time:
// the credential derived from the cluster secret (what nodes send) or one
// of the preshared keys (what the CLI sends). With neither configured the
// service is open (loopback only; `ambit serve` refuses anything else). An
// empty credential never matches.
func (n *Node) authenticate(ctx context.Context) error {
	if n.callKey == nil && len(n.cfg.PresharedKeys) == 0 {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		key, ok := strings.CutPrefix(v, "Bearer ")
		if !ok || key == "" {
			continue
		}
		match := 0
		if n.callKey != nil {
			match |= subtle.ConstantTimeCompare([]byte(key), n.callKey)
		}
		for _, k := range n.cfg.PresharedKeys {
			if k != "" {
				match |= subtle.ConstantTimeCompare([]byte(key), []byte(k))
			}
		}
		if match == 1 {
			return nil
		}
	}
	return status.Error(codes.Unauthenticated, ErrUnauthenticated.Error())
}

// authenticateAdmin checks an operator's call (Status, Replication, Remove,
// Promote, Demote): what authenticate accepts, or else a credential
// Config.StatusAuth finds an admin's (a managed API token with the admin
// scope). Node-to-node calls (Forward, ReadIndex, Join, JoinReplica,
// ClusterID, Progress) are not open to it.
func (n *Node) authenticateAdmin(ctx context.Context) error {
	err := n.authenticate(ctx)
	if err == nil || n.cfg.StatusAuth == nil {
		return err
	}
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 || vals[0] == "" {
		return err
	}
	admin, aerr := n.cfg.StatusAuth(vals[0])
	switch {
	case aerr != nil:
		return status.Errorf(codes.Unauthenticated, "%v: %s", ErrUnauthenticated, status.Convert(aerr).Message())
	case !admin:
		return status.Error(codes.PermissionDenied, "the credential lacks the \"admin\" scope, which the member list and membership changes need")
	}
	return nil
}

// clusterCallKey is the bearer credential nodes send on cluster calls when
// the cluster has a secret: derived from it (never the secret itself, which
// also keys the raft transport) and the same on every node.
func clusterCallKey(secret []byte) []byte {
	return []byte("ambit-cluster-v1." + hex.EncodeToString(clusterKey(secret, "grpc")))
}

// newPeerClient is the client the node calls other members with: the
// cluster credential with a secret, else the first preshared key.
func (n *Node) newPeerClient() *Client {
	key := ""
	switch {
	case n.cfg.ClusterSecret != nil:
		n.callKey = clusterCallKey(n.cfg.ClusterSecret)
		key = string(n.callKey)
	case len(n.cfg.PresharedKeys) > 0:
		key = n.cfg.PresharedKeys[0]
	}
	return NewTLSClient(key, n.cfg.PeerTLS)
}

// ForwardValidator checks a command another node forwarded to this leader
// as the API checks the same request from a client (the schema validation
// of every relationship and filter: one path for both), and returns the
// command to propose, carrying the hash of the schema it was validated
// against so that the apply-time check still catches a schema change in
// between. An error wrapping ErrSchemaChanged means the forwarding node
// validated against another schema (the client may retry); any other error
// is returned to the forwarder as ErrInvalidCommand.
type ForwardValidator func(ctx context.Context, cmd Command) (Command, error)

// SetForwardValidator installs the validator of forwarded commands (see
// ForwardValidator); nil removes it.
func (n *Node) SetForwardValidator(v ForwardValidator) {
	if v == nil {
		n.validator.Store(nil)
		return
	}
	n.validator.Store(&v)
}

// validateForwarded runs the installed ForwardValidator on cmd.
func (n *Node) validateForwarded(ctx context.Context, cmd Command) (Command, error) {
	v := n.validator.Load()
	if v == nil {
		return cmd, nil
	}
	// Validate against the newest schema this leader has committed: the
	// forwarding follower may already have applied an entry this node has
	// committed but not yet applied. A new leader learns what its
	// predecessor committed only once its own first entry commits (until
	// then its commit index can be older than a schema write that was
	// acknowledged), so wait for that first, as the read index does.
	n.mu.Lock()
	ready := n.leaderReady
	n.mu.Unlock()
	if ready == nil {
		return Command{}, fmt.Errorf("%w: %s", ErrNotLeader, n.cfg.NodeID)
	}
	select {
	case <-ready:
	case <-ctx.Done():
		return Command{}, fmt.Errorf("%w: new leader %s has not committed its first entry in time to validate the write: %v", ErrNoLeader, n.cfg.NodeID, ctx.Err())
	}
	if err := n.WaitApplied(ctx, tuple.Revision(n.raft.CommitIndex())); err != nil {
		return Command{}, fmt.Errorf("%w: leader %s did not apply its commit index in time to validate the write: %v", ErrNoLeader, n.cfg.NodeID, err)
	}
	out, err := (*v)(ctx, cmd)
	switch {
	case err == nil:
		return out, nil
	case errors.Is(err, ErrSchemaChanged):
		return Command{}, err
	}
	return Command{}, fmt.Errorf("%w: %v", ErrInvalidCommand, err)
}

func resultValue(res Result, err error) *wrapperspb.BytesValue {
	return wrapperspb.Bytes(encodeResult(res, err))
}

func (n *Node) serveForward(ctx context.Context, in *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
	cmd, err := Decode(in.GetValue())
	if err == nil {
		err = checkProposable(cmd)
	}
	if err != nil {
		return resultValue(Result{}, err), nil
	}
	if !n.IsLeader() {
		return resultValue(Result{}, fmt.Errorf("%w: %s", ErrNotLeader, n.cfg.NodeID)), nil
	}
	ctx, cancel := n.opContext(ctx)
	defer cancel()
	if cmd, err = n.validateForwarded(ctx, cmd); err != nil {
		return resultValue(Result{}, err), nil
	}
	res, err, _ := n.applyLocal(ctx, cmd)
	return resultValue(res, err), nil
}

func (n *Node) serveReadIndex(ctx context.Context, _ *emptypb.Empty) (*wrapperspb.BytesValue, error) {
	if !n.IsLeader() {
		return resultValue(Result{}, fmt.Errorf("%w: %s", ErrNotLeader, n.cfg.NodeID)), nil
	}
	ctx, cancel := n.opContext(ctx)
	defer cancel()
	rev, err := n.readIndexLocal(ctx)
	return resultValue(Result{Revision: rev}, err), nil
}

func isHop(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	return len(md.Get(hopHeader)) > 0
}

func (n *Node) serveJoin(ctx context.Context, in *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
	return n.serveJoinAs(ctx, in, true)
}

// serveJoinAs adds the member a Join (voter) or JoinReplica (non-voter)
// call names.
func (n *Node) serveJoinAs(ctx context.Context, in *wrapperspb.BytesValue, voter bool) (*wrapperspb.BytesValue, error) {
	cmd, err := Decode(in.GetValue())
	if err == nil && cmd.Kind != KindSetMember {
		err = fmt.Errorf("%w: join carries a %s command", ErrBadCommand, cmd.Kind)
	}
	if err != nil {
		return resultValue(Result{}, err), nil
	}
	m := cmd.Member
	if isHop(ctx) {
		if !n.IsLeader() {
			return resultValue(Result{}, fmt.Errorf("%w: %s", ErrNotLeader, n.cfg.NodeID)), nil
		}
		ctx, cancel := n.opContext(ctx)
		defer cancel()
		return resultValue(Result{}, n.joinLocal(ctx, m, voter)), nil
	}
	if !voter {
		return resultValue(Result{}, n.JoinReplica(ctx, m.ID, m.RaftAddr, m.GRPCAddr)), nil
	}
	return resultValue(Result{}, n.Join(ctx, m.ID, m.RaftAddr, m.GRPCAddr)), nil
}

func (n *Node) serveRemove(ctx context.Context, in *wrapperspb.StringValue) (*wrapperspb.BytesValue, error) {
	if isHop(ctx) {
		if !n.IsLeader() {
			return resultValue(Result{}, fmt.Errorf("%w: %s", ErrNotLeader, n.cfg.NodeID)), nil
		}
		ctx, cancel := n.opContext(ctx)
		defer cancel()
		return resultValue(Result{}, n.removeLocal(ctx, in.GetValue())), nil
	}
	return resultValue(Result{}, n.Remove(ctx, in.GetValue())), nil
}

func (n *Node) serveStatus(_ context.Context, _ *emptypb.Empty) (*wrapperspb.BytesValue, error) {
	ms, err := n.Status()
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return wrapperspb.Bytes(encodeMemberList(ms)), nil
}

func (n *Node) serveClusterID(_ context.Context, _ *emptypb.Empty) (*wrapperspb.BytesValue, error) {
	return wrapperspb.Bytes([]byte(n.cfg.ClusterID)), nil
}

// wireErrors are the sentinels a result can carry across the wire; the bit
// of each is its position. Append only.
var wireErrors = []error{
	store.ErrAlreadyExists, store.ErrPreconditionFailed, store.ErrInvalid, store.ErrTooLarge,
	store.ErrStaleWrite, store.ErrRevisionCompacted, store.ErrFutureRevision, store.ErrClosed,
	ErrSchemaRefused, ErrNoLeader, ErrNotLeader, ErrTimeout, ErrLeadershipLost, ErrForward,
	ErrNodeExists, ErrUnknownNode, ErrUnauthenticated, ErrBadCommand, ErrBadConfig, ErrHalted, ErrClosed,
	ErrSchemaChanged, ErrInvalidCommand, ErrSchemaInUse, ErrSchemaOrphans, ErrMembershipRefused,
}

// remoteError is an error received from another node: its message and the
// sentinels it wrapped there.
type remoteError struct {
	msg  string
	errs []error
}

func (e *remoteError) Error() string   { return e.msg }
func (e *remoteError) Unwrap() []error { return e.errs }

// Result encoding: version:byte(1) revision:uvarint deleted:uvarint
// partial:bool (0x00 | 0x01 sentinels:uvarint-bitmask message:string).
func encodeResult(res Result, err error) []byte {
	e := encoder{}
	e.buf = append(e.buf, 1)
	e.uvarint(uint64(res.Revision))
	e.uvarint(uint64(max(res.Deleted, 0)))
	e.bool(res.Partial)
	if err == nil {
		e.buf = append(e.buf, 0)
		return e.buf
	}
	var bits uint64
	for i, s := range wireErrors {
		if errors.Is(err, s) {
			bits |= 1 << i
		}
	}
	e.buf = append(e.buf, 1)
	e.uvarint(bits)
	e.string(err.Error())
	return e.buf
}

func decodeResult(data []byte) (Result, error, error) {
	d := decoder{data: data}
	if v := d.byte("result version"); d.err == nil && v != 1 {
		d.fail("unsupported result version %d", v)
	}
	var res Result
	res.Revision = tuple.Revision(d.uvarint("result revision"))
	deleted := d.uvarint("result deleted count")
	if deleted > 1<<31 {
		d.fail("deleted count %d too large", deleted)
	}
	res.Deleted = int(deleted)
	res.Partial = d.bool("result partial")
	var rerr error
	if d.bool("result error flag") {
		bits := d.uvarint("result error bits")
		re := &remoteError{msg: d.string("result error message")}
		for i, s := range wireErrors {
			if bits&(1<<i) != 0 {
				re.errs = append(re.errs, s)
			}
		}
		rerr = re
	}
	if d.err == nil && d.remaining() > 0 {
		d.fail("%d trailing bytes after the result", d.remaining())
	}
	if d.err != nil {
		return Result{}, nil, d.err
	}
	res.Err = rerr
	return res, rerr, nil
}

// Member list encoding: n:uvarint (id raftAddr grpcAddr role:string voter:bool)*n.
func encodeMemberList(ms []Member) []byte {
	e := encoder{}
	e.uvarint(uint64(len(ms)))
	for _, m := range ms {
		e.string(m.ID)
		e.string(m.RaftAddr)
		e.string(m.GRPCAddr)
		e.string(m.Role)
		e.bool(m.Voter)
	}
	return e.buf
}

func decodeMemberList(data []byte) ([]Member, error) {
	d := decoder{data: data}
	n := d.count("member")
	var out []Member
	for i := 0; i < n && d.err == nil; i++ {
		out = append(out, Member{ID: d.string("member id"), RaftAddr: d.string("member raft address"),
			GRPCAddr: d.string("member gRPC address"), Role: d.string("member role"), Voter: d.bool("member voter")})
	}
	if d.err == nil && d.remaining() > 0 {
		d.fail("%d trailing bytes after the member list", d.remaining())
	}
	if d.err != nil {
		return nil, d.err
	}
	return out, nil
}

// Client calls the cluster service of other nodes. Nodes use one to forward
// to the leader; the CLI uses one for `cluster status/join/remove`.
type Client struct {
	key   string
	tls   *tls.Config // nil: plaintext
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// NewClient returns a client authenticating with the preshared key, over
// plaintext connections.
func NewClient(presharedKey string) *Client {
	return &Client{key: presharedKey, conns: map[string]*grpc.ClientConn{}}
}

// NewTLSClient is NewClient over TLS configured by cfg (for members whose
// gRPC port serves TLS).
func NewTLSClient(presharedKey string, cfg *tls.Config) *Client {
	c := NewClient(presharedKey)
	c.tls = cfg
	return c
}

type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return false }

func (c *Client) conn(addr string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conns == nil {
		return nil, ErrClosed
	}
	if cc, ok := c.conns[addr]; ok {
		return cc, nil
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// Reconnect quickly: a restarted peer is back within a second.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: time.Second,
		}),
		grpc.WithStatsHandler(sentTracker{}),
	}
	if c.tls != nil {
		opts[0] = grpc.WithTransportCredentials(credentials.NewTLS(c.tls))
	}
	if c.key != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(c.key)))
	}
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: dialing %s: %v", ErrForward, addr, err)
	}
	c.conns[addr] = cc
	return cc, nil
}

// Close closes every connection.
func (c *Client) Close() error { return c.close() }

func (c *Client) close() error {
	c.mu.Lock()
	conns := c.conns
	c.conns = nil
	c.mu.Unlock()
	var errs []error
	for _, cc := range conns {
		errs = append(errs, cc.Close())
	}
	return errors.Join(errs...)
}

// call invokes method on addr. idempotent calls map an unreachable peer to
// ErrNoLeader (retry); a write's transport failure is ErrForward (outcome
// unknown).
func (c *Client) call(ctx context.Context, addr, method string, in proto.Message, idempotent bool, hop bool) ([]byte, error) {
	cc, err := c.conn(addr)
	if err != nil {
		return nil, err
	}
	if hop {
		ctx = metadata.AppendToOutgoingContext(ctx, hopHeader, "1")
	}
	out := new(wrapperspb.BytesValue)
	if err := cc.Invoke(ctx, "/"+serviceName+"/"+method, in, out); err != nil {
		return nil, c.callError(addr, method, err, idempotent)
	}
	return out.GetValue(), nil
}

// callError maps the error of a failed call (see call).
func (c *Client) callError(addr, method string, err error, idempotent bool) error {
	st, _ := status.FromError(err)
	switch {
	case st.Code() == codes.Unauthenticated:
		// A refusal by Config.StatusAuth says why after the sentinel's text.
		if detail, ok := strings.CutPrefix(st.Message(), ErrUnauthenticated.Error()+": "); ok && detail != "" {
			return fmt.Errorf("%w (calling %s): %s", ErrUnauthenticated, addr, detail)
		}
		return fmt.Errorf("%w (calling %s)", ErrUnauthenticated, addr)
	case st.Code() == codes.PermissionDenied:
		return fmt.Errorf("%s %s refused: %s", addr, method, st.Message())
	case st.Code() == codes.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: calling %s %s: %v", ErrTimeout, addr, method, st.Message())
	case idempotent && st.Code() == codes.Unavailable:
		return fmt.Errorf("%w: %s unreachable: %v", ErrNoLeader, addr, st.Message())
	}
	return fmt.Errorf("%w: %s %s: %v", ErrForward, addr, method, err)
}

func (c *Client) result(ctx context.Context, addr, method string, in proto.Message, idempotent, hop bool) (Result, error) {
	data, err := c.call(ctx, addr, method, in, idempotent, hop)
	if err != nil {
		return Result{}, err
	}
	res, rerr, err := decodeResult(data)
	if err != nil {
		return Result{}, fmt.Errorf("%w: bad response from %s: %v", ErrForward, addr, err)
	}
	return res, rerr
}

// connected makes sure the connection to addr is up before a write is sent,
// so that a peer that is down yields ErrNoLeader (nothing was sent; retry)
// rather than ErrForward (outcome unknown).
func (c *Client) connected(ctx context.Context, addr string) error {
	cc, err := c.conn(addr)
	if err != nil {
		return err
	}
	st := cc.GetState()
	if st == connectivity.Ready {
		return nil
	}
	cc.Connect()
	wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	for st = cc.GetState(); st != connectivity.Ready; st = cc.GetState() {
		if st == connectivity.TransientFailure || st == connectivity.Shutdown || !cc.WaitForStateChange(wctx, st) {
			return fmt.Errorf("%w: leader at %s unreachable (%s)", ErrNoLeader, addr, st)
		}
	}
	return nil
}

func (c *Client) forward(ctx context.Context, addr string, cmd Command) (Result, error) {
	data, err := Encode(cmd)
	if err != nil {
		return Result{}, err
	}
	if err := c.connected(ctx, addr); err != nil {
		return Result{}, err
	}
	ctx, sent := trackSent(ctx)
	notSent := func(err error) error {
		if err != nil && !sent.Load() && (errors.Is(err, ErrForward) || errors.Is(err, ErrTimeout)) {
			return fmt.Errorf("%w: the write was not sent to the leader at %s: %v", ErrNoLeader, addr, err)
		}
		return err
	}
	if len(data) <= forwardChunk {
		data, err := c.call(ctx, addr, "Forward", wrapperspb.Bytes(data), false, true)
		if err != nil {
			return Result{}, notSent(err)
		}
		res, rerr, err := decodeResult(data)
		if err != nil {
			return Result{}, fmt.Errorf("%w: bad response from %s: %v", ErrForward, addr, err)
		}
		return res, rerr
	}
	out, err := c.forwardChunks(ctx, addr, data)
	if err != nil {
		return Result{}, notSent(err)
	}
	res, rerr, err := decodeResult(out)
	if err != nil {
		return Result{}, fmt.Errorf("%w: bad response from %s: %v", ErrForward, addr, err)
	}
	return res, rerr
}

// Forward sends cmd to the cluster service at addr as a forwarded write
// (the leader validates and proposes it; a follower answers ErrNotLeader).
func (c *Client) Forward(ctx context.Context, addr string, cmd Command) (Result, error) {
	return c.forward(ctx, addr, cmd)
}

// forwardChunks sends data to ForwardChunks in pieces of forwardChunk
// bytes and returns the encoded result.
func (c *Client) forwardChunks(ctx context.Context, addr string, data []byte) ([]byte, error) {
	cc, err := c.conn(addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(ctx, hopHeader, "1"))
	defer cancel()
	const method = "ForwardChunks"
	stream, err := cc.NewStream(ctx, &forwardChunksDesc, "/"+serviceName+"/"+method)
	if err == nil {
		for off := 0; off < len(data) && err == nil; off += forwardChunk {
			err = stream.SendMsg(wrapperspb.Bytes(data[off:min(off+forwardChunk, len(data))]))
		}
		if err == nil {
			err = stream.CloseSend()
		}
	}
	out := new(wrapperspb.BytesValue)
	if err == nil || errors.Is(err, io.EOF) { // io.EOF: the server ended the stream; RecvMsg has its status
		err = stream.RecvMsg(out)
	}
	if err != nil {
		return nil, c.callError(addr, method, err, false)
	}
	return out.GetValue(), nil
}

func (c *Client) readIndex(ctx context.Context, addr string) (tuple.Revision, error) {
	res, err := c.result(ctx, addr, "ReadIndex", &emptypb.Empty{}, true, true)
	return res.Revision, err
}

func (c *Client) joinAs(ctx context.Context, addr string, m MemberInfo, voter bool) error {
	return c.joinHop(ctx, addr, m, voter, false)
}

// joinHop asks addr to add m as a voter (Join) or a non-voter (JoinReplica).
func (c *Client) joinHop(ctx context.Context, addr string, m MemberInfo, voter, hop bool) error {
	data, err := Encode(Command{Kind: KindSetMember, Member: m})
	if err != nil {
		return err
	}
	method := "Join"
	if !voter {
		method = "JoinReplica"
	}
	_, err = c.result(ctx, addr, method, wrapperspb.Bytes(data), true, hop)
	if err != nil && strings.Contains(err.Error(), "code = Unimplemented") {
		return fmt.Errorf("%w: the member at %s does not know %s (an older version): %v", ErrBadConfig, addr, method, err)
	}
	return err
}

// Join asks the member at addr to add m as a voter (forwarded to the leader).
func (c *Client) Join(ctx context.Context, addr string, m MemberInfo) error {
	return c.joinAs(ctx, addr, m, true)
}

// Remove asks the member at addr to remove the member id.
func (c *Client) Remove(ctx context.Context, addr, id string) error {
	_, err := c.result(ctx, addr, "Remove", wrapperspb.String(id), true, false)
	return err
}

func (c *Client) remove(ctx context.Context, addr, id string) error {
	_, err := c.result(ctx, addr, "Remove", wrapperspb.String(id), true, true)
	return err
}

// clusterID asks the member at addr for its cluster id. A member too old to
// know the call is ErrBadConfig: its id cannot be learned.
func (c *Client) clusterID(ctx context.Context, addr string) (string, error) {
	cc, err := c.conn(addr)
	if err != nil {
		return "", err
	}
	const method = "ClusterID"
	out := new(wrapperspb.BytesValue)
	if err := cc.Invoke(ctx, "/"+serviceName+"/"+method, &emptypb.Empty{}, out); err != nil {
		if status.Code(err) == codes.Unimplemented {
			return "", fmt.Errorf("%w: the member at %s does not report its cluster id (an older version); give this node the cluster's id", ErrBadConfig, addr)
		}
		return "", c.callError(addr, method, err, true)
	}
	return string(out.GetValue()), nil
}

// Status asks the member at addr for the cluster membership.
func (c *Client) Status(ctx context.Context, addr string) ([]Member, error) {
	data, err := c.call(ctx, addr, "Status", &emptypb.Empty{}, true, false)
	if err != nil {
		return nil, err
	}
	ms, err := decodeMemberList(data)
	if err != nil {
		return nil, fmt.Errorf("%w: bad status from %s: %v", ErrForward, addr, err)
	}
	return ms, nil
}
