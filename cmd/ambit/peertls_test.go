package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
)

// testCA writes a CA and a certificate it signs for 127.0.0.1 under dir and
// returns their paths and a pool trusting the CA.
func testCA(t *testing.T, dir string) (caFile, certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ambit test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "ambit member"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	return write("ca.pem", "CERTIFICATE", caDER), write("cert.pem", "CERTIFICATE", leafDER), write("key.pem", "EC PRIVATE KEY", keyDER), pool
}

// Members that serve gRPC over TLS call each other over TLS: a node joins
// and forwards writes to the leader. Their raft port also asks for a
// certificate of the cluster CA (mutual TLS on top of the secret).
func TestMembersCallEachOtherOverTLS(t *testing.T) {
	caFile, certFile, keyFile, pool := testCA(t, t.TempDir())
	cfg := func(id string, join ...string) serveConfig {
		return serveConfig{keys: []string{"k"}, nodeID: id, join: join, tlsCert: certFile, tlsKey: keyFile,
			cluster: clusterAuth{secretText: testClusterSecret, tlsCA: caFile, caFile: caFile, certFile: certFile, keyFile: keyFile}}
	}
	a1, _ := startServe(t, cfg("n1"))
	a2, _ := startServe(t, cfg("n2", a1.grpc))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer k")
	conn, err := grpc.NewClient(a2.grpc, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := v1.NewSchemaServiceClient(conn).WriteSchema(ctx, &v1.WriteSchemaRequest{
		Schema: "definition user {}\ndefinition doc {\n\trelation viewer: user\n}"}); err != nil {
		t.Fatalf("schema written through the follower: %v", err)
	}
	if _, err := v1.NewPermissionsServiceClient(conn).WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{{
		Operation: v1.RelationshipUpdate_OPERATION_TOUCH,
		Relationship: &v1.Relationship{Resource: &v1.ObjectReference{ObjectType: "doc", ObjectId: "d"}, Relation: "viewer",
			Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "ana"}}},
	}}}); err != nil {
		t.Fatalf("relationship written through the follower: %v", err)
	}
	for _, c := range []clusterAuth{
		{tlsCA: caFile},  // --cluster-tls-ca without --tls-cert
		{caFile: caFile}, // --cluster-ca alone
		{caFile: caFile, certFile: certFile, keyFile: keyFile}, // --cluster-ca without a secret
	} {
		if err := serveRefusal(t, serveConfig{cluster: c}); err == nil {
			t.Errorf("serve with %+v started", c)
		}
	}
}
