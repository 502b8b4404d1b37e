// Package console is ambit's built-in web console: a single page served
// under /ui/ on the HTTP listener (plain HTML, CSS and JavaScript embedded
// with go:embed; no build step) and the small JSON API under /ui/api/ the
// page calls.
//
// The console holds no privilege of its own. Every /ui/api/ call is
// authenticated by the node's Authenticator and needs the scope of what it
// does (the same scope the gRPC method it calls needs), and then calls the
// node's own public gRPC API over loopback with the caller's Authorization
// header forwarded as gRPC metadata: authentication, scopes, limits, budgets
// and metrics apply exactly as for any other client, and a credential the
// gRPC API refuses gets nothing from the console either. Two calls differ:
// whoami calls nothing (it reports the caller), and cluster lists the
// members through Config.Cluster (the cluster service, and ReadSchema on
// each member) and reads a few figures from the node's metrics registry
// directly.
//
// The page keeps the credential in sessionStorage and sends it as a bearer
// header; it never goes into a URL or a cookie, so a cross-site request
// carries no credential (no CSRF). Responses carry a strict
// Content-Security-Policy: scripts and styles only from the console's own
// files, nothing inline, no framing.
package console

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ambit-authz/ambit/api"
	"github.com/ambit-authz/ambit/api/apitoken"
)

//go:embed assets
var assets embed.FS

// Prefix is where the console is mounted.
const Prefix = "/ui/"

// Defaults of Config's limits.
const (
	DefaultMaxBodyBytes = 8 << 20 // a maximal schema or a validation file of a few thousand relationships
	DefaultTimeout      = 30 * time.Second
	// MaxWatchWait is the longest a /ui/api/watch long poll waits.
	MaxWatchWait = 25 * time.Second
)

// CSP is the Content-Security-Policy of every console response.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

// Authenticator establishes who calls; *api.Authenticator is the one the
// server uses.
type Authenticator interface {
	Authenticate(authorization string) (api.Caller, error)
	AuthorizeHTTP(r *http.Request, need apitoken.Scope) (api.Caller, error)
}

var _ Authenticator = (*api.Authenticator)(nil)

// Config is what a console needs.
type Config struct {
	// Auth authenticates every /ui/api/ call (required).
	Auth Authenticator
	// Conn is a client connection to the node's own gRPC API (required):
	// every call goes through it with the caller's credential.
	Conn grpc.ClientConnInterface
	// Cluster lists the members as the node at Conn sees them, calling the
	// cluster service with the caller's authorization value (nil: the live
	// page shows no members).
	Cluster func(ctx context.Context, authorization string) ([]Member, error)
	// Metrics is the node's metrics registry; the live page shows a few
	// (nil: none).
	Metrics prometheus.Gatherer
	// MaxBodyBytes bounds a request body; 0 is DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Timeout is the budget of each call (a watch long poll excepted: it
	// gets its wait plus this); 0 is DefaultTimeout.
	Timeout time.Duration
}

// Member is one cluster member as the live page shows it.
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	GRPCAddr string `json:"grpc_addr"`
	Role     string `json:"role"`
	Voter    bool   `json:"voter"`
	// Applied is the revision the member has applied (-1: unknown), and
	// Lag how many revisions it is behind the newest member.
	Applied int64  `json:"applied"`
	Lag     int64  `json:"lag"`
	Error   string `json:"error,omitempty"`
}

// Handler serves the console; mount it at Prefix.
type Handler struct {
	cfg       Config
	mux       *http.ServeMux
	static    http.Handler
	endpoints []string // "METHOD path", for tests that call every one
}

// New returns the console handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Auth == nil || cfg.Conn == nil {
		return nil, errors.New("console: Config needs Auth and Conn")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, mux: http.NewServeMux(), static: http.StripPrefix(Prefix, http.FileServerFS(sub))}
	h.routes()
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	if strings.HasPrefix(r.URL.Path, Prefix+"api/") {
		hd.Set("Cache-Control", "no-store")
		h.mux.ServeHTTP(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hd.Set("Cache-Control", "no-cache")
	h.static.ServeHTTP(w, r)
}

// endpoint is one JSON call: the scope it needs and what it does. The
// caller's authorization value travels in ctx as outgoing gRPC metadata.
type endpoint struct {
	method string
	scope  apitoken.Scope // "" : any authenticated caller
	wait   bool           // a long poll: the handler sets its own deadline
	fn     func(ctx context.Context, c call) (any, error)
}

// call is an authenticated request.
type call struct {
	r      *http.Request
	caller api.Caller
	auth   string // the Authorization value, forwarded to gRPC
	body   []byte
}

// decode reads the JSON body into v, refusing unknown fields.
func (c call) decode(v any) error {
	dec := json.NewDecoder(bytes.NewReader(c.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return status.Errorf(codes.InvalidArgument, "request body: %v", err)
	}
	return nil
}

func (h *Handler) handle(path string, e endpoint) {
	h.endpoints = append(h.endpoints, e.method+" "+path)
	h.mux.HandleFunc(Prefix+"api/"+path, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != e.method {
			w.Header().Set("Allow", e.method)
			writeError(w, status.Errorf(codes.Unimplemented, "%s /ui/api/%s: use %s", r.Method, path, e.method), http.StatusMethodNotAllowed)
			return
		}
		var caller api.Caller
		var err error
		if e.scope == "" {
			caller, err = h.cfg.Auth.Authenticate(r.Header.Get("Authorization"))
		} else {
			caller, err = h.cfg.Auth.AuthorizeHTTP(r, e.scope)
		}
		if err != nil {
			if api.HTTPStatus(err) == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", "Bearer")
			}
			writeError(w, err, api.HTTPStatus(err))
			return
		}
		c := call{r: r, caller: caller, auth: r.Header.Get("Authorization")}
		if r.Method == http.MethodPost {
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				writeError(w, status.Errorf(codes.InvalidArgument, "Content-Type must be application/json, not %q", ct), http.StatusUnsupportedMediaType)
				return
			}
			c.body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
			if err != nil {
				var mb *http.MaxBytesError
				if errors.As(err, &mb) {
					writeError(w, status.Errorf(codes.InvalidArgument, "request body larger than the limit of %d bytes (--console-max-body)", mb.Limit), http.StatusRequestEntityTooLarge)
					return
				}
				writeError(w, status.Errorf(codes.InvalidArgument, "reading the request body: %v", err), http.StatusBadRequest)
				return
			}
		}
		ctx := r.Context()
		if !e.wait {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, h.cfg.Timeout)
			defer cancel()
		}
		if c.auth != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", c.auth)
		}
		out, err := e.fn(ctx, c)
		if err != nil {
			writeError(w, err, statusOf(err))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
}

// errorBody is every error response.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

func writeError(w http.ResponseWriter, err error, code int) {
	st := status.Convert(err)
	api.SetRetryAfter(w.Header(), err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(errorBody{Error: st.Message(), Code: st.Code().String()})
}

// statusOf maps a gRPC error to an HTTP status.
func statusOf(err error) int {
	if errors.Is(err, context.DeadlineExceeded) {
		return http.StatusGatewayTimeout
	}
	switch status.Code(err) {
	case codes.InvalidArgument, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.FailedPrecondition:
		return http.StatusPreconditionFailed
	case codes.ResourceExhausted:
		if _, busy := api.RetryAfter(err); busy {
			return http.StatusTooManyRequests // the server is busy: retry
		}
		return http.StatusBadRequest // the request is over a limit: change it
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.Canceled:
		return 499
	}
	return http.StatusInternalServerError
}

// invalidf is an InvalidArgument error.
func invalidf(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// LoopbackTLS is the client TLS configuration the console dials the node's
// own gRPC listener with when it serves TLS: it trusts exactly the
// certificate the node serves (pinned by its bytes), whatever names the
// certificate holds, since the console dials a loopback address.
func LoopbackTLS(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	leaf := cert.Certificate[0]
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by the pin below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || string(raw[0]) != string(leaf) {
				return errors.New("console: the gRPC listener did not present this node's certificate")
			}
			return nil
		},
	}, nil
}
