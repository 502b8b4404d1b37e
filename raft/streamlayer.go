package raft

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
)

// The authenticated raft stream layer.
//
// hashicorp/raft's TCP transport trusts whoever connects: anyone who can
// reach the raft port can send AppendEntries with a higher term and have its
// entries applied. With a cluster secret, every raft connection is instead:
//
//  1. TLS 1.3, the acceptor presenting an ephemeral self-signed certificate
//     (generated at start, never verified: identity comes from step 2). TLS
//     gives confidentiality and integrity; an active attacker can complete
//     it, but cannot pass step 2.
//  2. A proof of the secret bound to this TLS session: each side sends
//     proofVersion followed by HMAC-SHA256(clusterKey, role || exporter),
//     where exporter is 32 bytes of the session's keying material
//     (RFC 8446 §7.5, label exporterLabel) and role is roleDialer or
//     roleAcceptor. The dialer speaks first; the acceptor checks the proof
//     (constant time) before it sends its own, so a stranger learns nothing.
//     A man in the middle runs two TLS sessions with two different
//     exporters, so a proof it relays does not verify on the other side.
//
// Until both proofs are checked no byte reaches raft. The whole handshake
// runs under handshakeTimeout, in a goroutine of its own (at most
// maxPendingHandshakes at a time, and maxPendingPerHost from one address;
// more are closed at once), so a slow or silent peer cannot stall Accept,
// nor one host crowd the members out. A peer that fails is closed and counted
// (Node.RejectedPeers), and logged at most once per rejectLogEvery.
const (
	exporterLabel        = "EXPORTER-ambit cluster v1"
	proofVersion         = 1
	roleDialer           = 'D'
	roleAcceptor         = 'A'
	proofLen             = 1 + sha256.Size
	handshakeTimeout     = 5 * time.Second
	maxPendingHandshakes = 256
	maxPendingPerHost    = 16
	rejectLogEvery       = 10 * time.Second
	// MinClusterSecretLen is the shortest cluster secret accepted, in bytes.
	MinClusterSecretLen = 32
)

// ErrPeerRejected: a raft peer did not complete the authenticated handshake
// (no TLS, a wrong proof, a wrong cluster secret, too slow). It concerns the
// connection only; nothing was read from or written to the raft log.
var ErrPeerRejected = errors.New("raft peer failed cluster authentication")

// CheckClusterSecret refuses a secret too short or too uniform to key a
// cluster: at least MinClusterSecretLen bytes, at least 8 distinct byte
// values, and at least 128 bits by the estimate length × log2(distinct
// values). "aaaa…", a repeated short word or a short phrase are refused;
// every random secret of 32 bytes or more, raw, in hex (64 characters of at
// most 16 values) or in base64, passes.
func CheckClusterSecret(secret []byte) error {
	if len(secret) < MinClusterSecretLen {
		return fmt.Errorf("%w: the cluster secret is %d bytes; it must be at least %d (generate one with `openssl rand -hex 32`)", ErrBadConfig, len(secret), MinClusterSecretLen)
	}
	var seen [256]bool
	distinct := 0
	for _, b := range secret {
		if !seen[b] {
			seen[b] = true
			distinct++
		}
	}
	if distinct < 8 || float64(len(secret))*math.Log2(float64(distinct)) < 128 {
		return fmt.Errorf("%w: the cluster secret is too uniform (%d bytes of %d distinct values, under 128 bits); use a random one (e.g. `openssl rand -hex 32`)", ErrBadConfig, len(secret), distinct)
	}
	return nil
}

// clusterKey derives the key of one purpose from the cluster secret, so the
// raft proof and the cluster-call credential never share a key.
func clusterKey(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("ambit cluster v1 " + purpose))
	return m.Sum(nil)
}

// handshakeProof is the message a side with role sends: proofVersion then
// the HMAC of role and the session's exporter.
func handshakeProof(key, exporter []byte, role byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte{role})
	m.Write(exporter)
	return append([]byte{proofVersion}, m.Sum(nil)...)
}

// checkProof decodes a peer's proof message and compares it, in constant
// time, with the one expected of role.
func checkProof(key, exporter []byte, role byte, msg []byte) error {
	if len(msg) != proofLen {
		return fmt.Errorf("%w: proof of %d bytes, want %d", ErrPeerRejected, len(msg), proofLen)
	}
	if msg[0] != proofVersion {
		return fmt.Errorf("%w: proof version %d, this build speaks %d", ErrPeerRejected, msg[0], proofVersion)
	}
	if !hmac.Equal(msg, handshakeProof(key, exporter, role)) {
		return fmt.Errorf("%w: wrong proof (another cluster secret, or a man in the middle)", ErrPeerRejected)
	}
	return nil
}

// ClusterPKI adds mutual TLS with a cluster CA to the authenticated stream
// layer: every member presents Certificate, and a peer is accepted only if
// its certificate chains to CAs (no host name is checked: members dial
// addresses). It comes on top of the cluster secret's proof, never instead.
// Member certificates need the client and server extended key usages (or
// none).
type ClusterPKI struct {
	Certificate tls.Certificate
	CAs         *x509.CertPool
}

// verifyChain checks that a peer's certificate chains to cas.
func verifyChain(cas *x509.CertPool) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("the peer presented no certificate")
		}
		certs := make([]*x509.Certificate, len(raw))
		for i, r := range raw {
			c, err := x509.ParseCertificate(r)
			if err != nil {
				return fmt.Errorf("the peer's certificate %d: %w", i, err)
			}
			certs[i] = c
		}
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		_, err := certs[0].Verify(x509.VerifyOptions{Roots: cas, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		return err
	}
}

// secureStream is a hraft.StreamLayer over TCP whose connections are
// authenticated and encrypted as described above.
type secureStream struct {
	lis       net.Listener
	advertise net.Addr
	key       []byte
	server    *tls.Config
	client    *tls.Config
	logger    *slog.Logger

	conns    chan net.Conn // authenticated inbound connections
	done     chan struct{}
	ctx      context.Context // canceled by Close: ends handshakes in progress
	cancel   context.CancelFunc
	stopOnce sync.Once
	wg       sync.WaitGroup
	// handshakes in progress, in all and by remote IP (admit)
	pendingMu  sync.Mutex
	pendingAll int
	pendingBy  map[string]int

	rejected  atomic.Uint64
	logMu     sync.Mutex
	lastLog   time.Time
	sinceLast uint64
}

var _ hraft.StreamLayer = (*secureStream)(nil)

// newSecureStream listens on bindAddr. advertise, when set, is the address
// peers dial; pki, when set, adds mutual TLS with a cluster CA.
func newSecureStream(bindAddr string, advertise net.Addr, secret []byte, pki *ClusterPKI, logger *slog.Logger) (*secureStream, error) {
	cert, err := ephemeralCert()
	if err != nil {
		return nil, fmt.Errorf("raft: cluster TLS certificate: %w", err)
	}
	lis, err := net.Listen("tcp", bindAddr)
	if err != nil {
		return nil, err
	}
	s := &secureStream{
		lis: lis, advertise: advertise, key: clusterKey(secret, "raft"), logger: logger,
		server: &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}},
		// The acceptor's certificate is ephemeral and not verified: the
		// proof bound to the session authenticates it.
		client:    &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}, //nolint:gosec // see above
		conns:     make(chan net.Conn),
		done:      make(chan struct{}),
		pendingBy: map[string]int{},
	}
	if pki != nil {
		s.server.Certificates = []tls.Certificate{pki.Certificate}
		s.server.ClientAuth = tls.RequireAndVerifyClientCert
		s.server.ClientCAs = pki.CAs
		s.client.Certificates = []tls.Certificate{pki.Certificate}
		s.client.VerifyPeerCertificate = verifyChain(pki.CAs)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if a, ok := s.Addr().(*net.TCPAddr); !ok && !isName(s.Addr()) || ok && (a.IP == nil || a.IP.IsUnspecified()) {
		lis.Close()
		return nil, fmt.Errorf("%w: raft address %s is not advertisable; give an advertise address", ErrBadConfig, s.Addr())
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

func ephemeralCert() (tls.Certificate, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "ambit raft node"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(100 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, nil
}

func (s *secureStream) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.lis.Accept()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // e.g. out of file descriptors
			continue
		}
		host := remoteHost(c)
		if err := s.admit(host); err != nil {
			c.Close()
			s.reject(c.RemoteAddr(), err)
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.release(host)
			tc, err := s.acceptHandshake(c)
			if err != nil {
				c.Close()
				s.reject(c.RemoteAddr(), err)
				return
			}
			select {
			case s.conns <- tc:
			case <-s.done:
				tc.Close()
			}
		}()
	}
}

// remoteHost is the IP a connection comes from.
func remoteHost(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return c.RemoteAddr().String()
}

// admit reserves a handshake slot for a connection from host: at most
// maxPendingHandshakes in all and maxPendingPerHost from one address, so
// one host holding silent connections open cannot keep the members out.
func (s *secureStream) admit(host string) error {
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	switch {
	case s.pendingAll >= maxPendingHandshakes:
		return fmt.Errorf("%w: %d handshakes in progress, the most allowed", ErrPeerRejected, s.pendingAll)
	case s.pendingBy[host] >= maxPendingPerHost:
		return fmt.Errorf("%w: %d handshakes in progress from %s, the most allowed from one address", ErrPeerRejected, s.pendingBy[host], host)
	}
	s.pendingAll++
	s.pendingBy[host]++
	return nil
}

func (s *secureStream) release(host string) {
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	s.pendingAll--
	if s.pendingBy[host]--; s.pendingBy[host] == 0 {
		delete(s.pendingBy, host)
	}
}

// acceptHandshake runs the acceptor's side of the handshake on c.
func (s *secureStream) acceptHandshake(c net.Conn) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(s.ctx, handshakeTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	tc := tls.Server(c, s.server)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("%w: TLS: %v", ErrPeerRejected, err)
	}
	exporter, err := exporterOf(tc)
	if err != nil {
		return nil, err
	}
	msg := make([]byte, proofLen)
	if _, err := io.ReadFull(tc, msg); err != nil {
		return nil, fmt.Errorf("%w: reading the proof: %v", ErrPeerRejected, err)
	}
	if err := checkProof(s.key, exporter, roleDialer, msg); err != nil {
		return nil, err
	}
	if _, err := tc.Write(handshakeProof(s.key, exporter, roleAcceptor)); err != nil {
		return nil, fmt.Errorf("%w: sending the proof: %v", ErrPeerRejected, err)
	}
	if !stop() {
		return nil, fmt.Errorf("%w: handshake timed out", ErrPeerRejected)
	}
	_ = c.SetDeadline(time.Time{})
	return tc, nil
}

func exporterOf(tc *tls.Conn) ([]byte, error) {
	cs := tc.ConnectionState()
	if cs.Version != tls.VersionTLS13 {
		return nil, fmt.Errorf("%w: TLS version %#x, want 1.3", ErrPeerRejected, cs.Version)
	}
	ex, err := cs.ExportKeyingMaterial(exporterLabel, nil, 32)
	if err != nil {
		return nil, fmt.Errorf("%w: exporting keying material: %v", ErrPeerRejected, err)
	}
	return ex, nil
}

// Dial connects to a peer and runs the dialer's side of the handshake
// within timeout (handshakeTimeout when zero).
func (s *secureStream) Dial(address hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 {
		timeout = handshakeTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return dialSecure(ctx, string(address), s.key, s.client)
}

func dialSecure(ctx context.Context, addr string, key []byte, cfg *tls.Config) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	tc := tls.Client(c, cfg)
	fail := func(err error) (net.Conn, error) {
		c.Close()
		return nil, fmt.Errorf("raft: connecting to %s: %w", addr, err)
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		return fail(fmt.Errorf("%w: TLS: %v", ErrPeerRejected, err))
	}
	exporter, err := exporterOf(tc)
	if err != nil {
		return fail(err)
	}
	if _, err := tc.Write(handshakeProof(key, exporter, roleDialer)); err != nil {
		return fail(fmt.Errorf("%w: sending the proof: %v", ErrPeerRejected, err))
	}
	msg := make([]byte, proofLen)
	if _, err := io.ReadFull(tc, msg); err != nil {
		return fail(fmt.Errorf("%w: the peer closed the handshake (does it have the same cluster secret?): %v", ErrPeerRejected, err))
	}
	if err := checkProof(key, exporter, roleAcceptor, msg); err != nil {
		return fail(err)
	}
	if !stop() {
		return fail(fmt.Errorf("%w: handshake timed out", ErrPeerRejected))
	}
	_ = c.SetDeadline(time.Time{})
	return tc, nil
}

// reject counts a failed peer and logs it, at most once per rejectLogEvery
// (with the number of failures since the last line).
func (s *secureStream) reject(remote net.Addr, err error) {
	s.rejected.Add(1)
	s.logMu.Lock()
	s.sinceLast++
	now := time.Now()
	if now.Sub(s.lastLog) < rejectLogEvery {
		s.logMu.Unlock()
		return
	}
	n := s.sinceLast
	s.sinceLast = 0
	s.lastLog = now
	s.logMu.Unlock()
	s.logger.Warn("raft: refused a connection that failed cluster authentication", "remote", remote.String(), "err", err,
		"refused_since_last_log", n, "refused_total", s.rejected.Load())
}

// Accept returns the next authenticated inbound connection.
func (s *secureStream) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.done:
		return nil, net.ErrClosed
	}
}

// Close stops listening and waits for handshakes in progress to end.
func (s *secureStream) Close() error {
	var err error
	s.stopOnce.Do(func() {
		close(s.done)
		s.cancel()
		err = s.lis.Close()
		s.wg.Wait()
	})
	return err
}

// Addr is the advertised address, or the bound one.
func (s *secureStream) Addr() net.Addr {
	if s.advertise != nil {
		return s.advertise
	}
	return s.lis.Addr()
}

// newTransport builds the raft network transport: over the authenticated
// stream layer with a cluster secret, plain TCP without one.
func newTransport(cfg Config, advertise net.Addr, hl hclog.Logger, logger *slog.Logger) (closingTransport, *secureStream, error) {
	tc := &hraft.NetworkTransportConfig{
		MaxPool: 8, Timeout: 10 * time.Second, Logger: hl,
		// No pipelined replication. Raft's pipeline wedges when a follower's
		// answer stops its decoder (a newer term after a leadership transfer,
		// a failed append): the sender parks on a channel nobody drains, the
		// follower gets no more entries and Shutdown never returns (seen in
		// this package's benchmarks when a leader handed over under load;
		// hashicorp/raft#612). On a LAN, one request at a time, each carrying
		// every entry since the last answer, loses little (hashicorp/raft#541).
		MaxRPCsInFlight: 1,
	}
	if cfg.ClusterSecret == nil {
		t, err := hraft.NewTCPTransportWithConfig(cfg.RaftAddr, advertise, tc)
		if err != nil {
			return nil, nil, fmt.Errorf("raft: listening on %s: %w", cfg.RaftAddr, err)
		}
		return t, nil, nil
	}
	s, err := newSecureStream(cfg.RaftAddr, advertise, cfg.ClusterSecret, cfg.ClusterPKI, logger)
	if err != nil {
		return nil, nil, fmt.Errorf("raft: listening on %s: %w", cfg.RaftAddr, err)
	}
	tc.Stream = s
	return hraft.NewNetworkTransportWithConfig(tc), s, nil
}

// RejectedPeers is the number of raft connections refused because they
// failed cluster authentication (0 without a cluster secret).
func (n *Node) RejectedPeers() uint64 {
	if n.stream == nil {
		return 0
	}
	return n.stream.rejected.Load()
}

// isName reports an advertised address given by host name (nameAddr).
func isName(a net.Addr) bool {
	_, ok := a.(nameAddr)
	return ok
}
