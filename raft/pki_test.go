package raft

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	"testing"
	"time"
)

// testPKI is a CA and a member certificate it signs (client and server
// use).
func testPKI(t *testing.T, name string) *ClusterPKI {
	t.Helper()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name + " member"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &ClusterPKI{Certificate: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, CAs: pool}
}

// With a cluster CA, a peer needs the secret and a certificate the CA
// signed: the secret alone, or a certificate of another CA, is refused,
// whichever side lacks it.
func TestStreamClusterCA(t *testing.T) {
	pki, other := testPKI(t, "cluster"), testPKI(t, "other")
	acc, err := newSecureStream("127.0.0.1:0", nil, []byte(testSecret), pki, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer acc.Close()
	go func() {
		for {
			c, err := acc.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	key := clusterKey([]byte(testSecret), "raft")
	clientOf := func(p *ClusterPKI) *tls.Config {
		cfg := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}
		if p != nil {
			cfg.Certificates = []tls.Certificate{p.Certificate}
			cfg.VerifyPeerCertificate = verifyChain(p.CAs)
		}
		return cfg
	}
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
		ok   bool
	}{
		{"member certificate", clientOf(pki), true},
		{"no certificate", clientOf(nil), false},
		{"certificate of another CA", clientOf(&ClusterPKI{Certificate: other.Certificate, CAs: pki.CAs}), false},
		{"dialer trusting another CA", clientOf(&ClusterPKI{Certificate: pki.Certificate, CAs: other.CAs}), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := dialSecure(ctx, acc.Addr().String(), key, tc.cfg)
			if err == nil {
				defer c.Close()
				// TLS 1.3 reports a refused client certificate on the first read.
				if _, err = c.Write([]byte("ping")); err == nil {
					buf := make([]byte, 4)
					_, err = io.ReadFull(c, buf)
				}
			}
			if (err == nil) != tc.ok {
				t.Fatalf("dial = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
