package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"google.golang.org/grpc/status"

	"github.com/ambit-authz/ambit/api"
	"github.com/ambit-authz/ambit/api/apitoken"
	"github.com/ambit-authz/ambit/raft"
)

// clusterAuth is how `ambit serve` authenticates cluster traffic: the
// cluster secret that keys the raft stream layer and the cluster calls
// (README, "Security").
type clusterAuth struct {
	secretText string
	secretFile string
	insecure   bool
	tlsCA      string
	// mutual TLS with a cluster CA on the raft port, on top of the secret
	caFile, certFile, keyFile string
}

func (a *clusterAuth) flags(f *pflag.FlagSet) {
	f.StringVar(&a.secretFile, "cluster-secret-file", "", "file holding the cluster secret (surrounding whitespace ignored); see --cluster-secret")
	f.StringVar(&a.secretText, "cluster-secret", "", "secret every member shares: authenticates and encrypts raft traffic and authenticates cluster calls; at least 32 bytes of randomness (`openssl rand -hex 32`); prefer --cluster-secret-file or AMBIT_CLUSTER_SECRET, a command line is visible to local users")
	f.StringVar(&a.tlsCA, "cluster-tls-ca", "", "PEM file of the CA that signs members' --tls-cert, which members verify when they call each other's gRPC port (default: the system roots)")
	f.StringVar(&a.caFile, "cluster-ca", "", "PEM file of the CA that signs members' --cluster-cert: raft connections then also need a certificate it signed (mutual TLS, on top of the cluster secret)")
	f.StringVar(&a.certFile, "cluster-cert", "", "this member's raft certificate (PEM), signed by --cluster-ca, for client and server use")
	f.StringVar(&a.keyFile, "cluster-key", "", "the private key of --cluster-cert (PEM)")
	f.BoolVar(&a.insecure, "insecure-cluster", false, "allow a non-loopback --raft-addr without a cluster secret (anyone who reaches the raft port can then write to the log)")
}

// load returns the cluster secret (nil without one), refusing a weak one,
// both flags at once, and a non-loopback raft address without a secret
// unless --insecure-cluster.
func (a *clusterAuth) load(raftAddr, advertise string) ([]byte, error) {
	var secret []byte
	switch {
	case a.secretText != "" && a.secretFile != "":
		return nil, errors.New("--cluster-secret and --cluster-secret-file are exclusive; give one")
	case a.secretFile != "":
		data, err := os.ReadFile(a.secretFile)
		if err != nil {
			return nil, fmt.Errorf("--cluster-secret-file: %w", err)
		}
		secret = []byte(strings.TrimSpace(string(data)))
		if err := raft.CheckClusterSecret(secret); err != nil {
			return nil, fmt.Errorf("--cluster-secret-file %s: %w", a.secretFile, err)
		}
	case a.secretText != "":
		secret = []byte(strings.TrimSpace(a.secretText))
		if err := raft.CheckClusterSecret(secret); err != nil {
			return nil, fmt.Errorf("--cluster-secret: %w", err)
		}
	}
	if secret == nil && !a.insecure {
		for _, addr := range []string{raftAddr, advertise} {
			if addr != "" && !isLoopback(addr) {
				return nil, fmt.Errorf("refusing to run raft on %s without cluster authentication: give every member the same --cluster-secret-file (or AMBIT_CLUSTER_SECRET), or --insecure-cluster to allow it", addr)
			}
		}
	}
	return secret, nil
}

// pki loads the mutual TLS of the raft port (nil without --cluster-ca):
// the three flags go together, and with a cluster secret.
func (a *clusterAuth) pki(secret []byte) (*raft.ClusterPKI, error) {
	if a.caFile == "" && a.certFile == "" && a.keyFile == "" {
		return nil, nil
	}
	if a.caFile == "" || a.certFile == "" || a.keyFile == "" {
		return nil, errors.New("--cluster-ca, --cluster-cert and --cluster-key go together")
	}
	if secret == nil {
		return nil, errors.New("--cluster-ca needs a cluster secret (--cluster-secret-file): mutual TLS comes on top of it")
	}
	cert, err := tls.LoadX509KeyPair(a.certFile, a.keyFile)
	if err != nil {
		return nil, fmt.Errorf("--cluster-cert/--cluster-key: %w", err)
	}
	pem, err := os.ReadFile(a.caFile)
	if err != nil {
		return nil, fmt.Errorf("--cluster-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--cluster-ca %s: no PEM certificate in it", a.caFile)
	}
	return &raft.ClusterPKI{Certificate: cert, CAs: pool}, nil
}

// peerTLS is how the node calls other members' gRPC ports: over TLS when
// this node serves TLS (every member then does), verifying them against
// --cluster-tls-ca or the system roots; nil (plaintext) otherwise.
func (a *clusterAuth) peerTLS(tlsCert string) (*tls.Config, error) {
	if tlsCert == "" {
		if a.tlsCA != "" {
			return nil, errors.New("--cluster-tls-ca needs --tls-cert and --tls-key: members call each other over TLS only when they serve it")
		}
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if a.tlsCA != "" {
		pem, err := os.ReadFile(a.tlsCA)
		if err != nil {
			return nil, fmt.Errorf("--cluster-tls-ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cluster-tls-ca %s: no PEM certificate in it", a.tlsCA)
		}
	}
	return cfg, nil
}

// checkKeys refuses an empty preshared key (`--preshared-key ”`, or
// AMBIT_PRESHARED_KEY=",k" with its empty element): it would read as "auth
// on" while matching nothing, or open the cluster service.
func checkKeys(keys []string) error {
	for i, k := range keys {
		if strings.TrimSpace(k) == "" {
			return fmt.Errorf("--preshared-key: key %d of %d is empty (check AMBIT_PRESHARED_KEY for a stray comma); every key must be non-empty", i+1, len(keys))
		}
	}
	return nil
}

// pprofHandler serves Go's profiler behind the API's Authenticator: a
// preshared key or an admin token (open without keys, which serve allows
// only on loopback or with --insecure-no-auth). /debug/pprof/cmdline is not served: the command line
// can hold keys and secrets.
func pprofHandler(auth *api.Authenticator) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "cmdline is not served: the command line can hold secrets", http.StatusNotFound)
	})
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The profiler is an operator's tool: a preshared key or a token
		// with the admin scope, as every other port decides.
		if _, err := auth.AuthorizeHTTP(r, apitoken.Admin); err != nil {
			w.Header().Set("WWW-Authenticate", "Bearer")
			http.Error(w, status.Convert(err).Message(), api.HTTPStatus(err))
			return
		}
		mux.ServeHTTP(w, r)
	})
}
