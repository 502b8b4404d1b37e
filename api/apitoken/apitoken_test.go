package apitoken

import (
	"errors"
	"strings"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"
)

func TestIssueParseVerify(t *testing.T) {
	tok, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if !LooksLikeToken(tok.Text) || strings.Contains(tok.Text, string(tok.Hash)) {
		t.Fatalf("token %q", tok.Text)
	}
	id, secret, err := Parse(tok.Text)
	if err != nil || id != tok.ID {
		t.Fatalf("Parse = %q, %v", id, err)
	}
	if err := Verify(secret, tok.Salt, tok.Hash); err != nil {
		t.Fatal(err)
	}
	// Another secret, or the right secret with another salt, does not verify.
	other, _ := New()
	_, otherSecret, _ := Parse(other.Text)
	if err := Verify(otherSecret, tok.Salt, tok.Hash); !errors.Is(err, ErrMismatch) {
		t.Errorf("another secret: %v", err)
	}
	if err := Verify(secret, other.Salt, tok.Hash); !errors.Is(err, ErrMismatch) {
		t.Errorf("another salt: %v", err)
	}
	if a, b := New2(t), New2(t); a == b {
		t.Error("two tokens are equal")
	}
}

func New2(t *testing.T) string {
	tok, err := New()
	if err != nil {
		t.Fatal(err)
	}
	return tok.Text
}

func TestParseMalformed(t *testing.T) {
	good, _ := New()
	for _, s := range []string{"", "sekret", "ambit_", "ambit_0123456789abcdef", "ambit_0123456789abcdeg_" + strings.Repeat("A", 43),
		"ambit_0123456789abcdef_" + strings.Repeat("A", 42), "ambit_0123456789abcdef_" + strings.Repeat("*", 43),
		good.Text + "x", strings.TrimPrefix(good.Text, "ambit_")} {
		if _, _, err := Parse(s); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q) = %v, want ErrMalformed", s, err)
		}
	}
}

func TestScopes(t *testing.T) {
	s, err := ParseScopes(" read, Check,read ")
	if err != nil || len(s) != 2 || s[0] != Check || s[1] != Read {
		t.Fatalf("ParseScopes = %v, %v", s, err)
	}
	for _, bad := range []string{"", ",", "check,writes"} {
		if _, err := ParseScopes(bad); !errors.Is(err, ErrUnknownScope) {
			t.Errorf("ParseScopes(%q) = %v", bad, err)
		}
	}
	if !Allows([]Scope{Admin}, Schema) || Allows([]Scope{Check, Read}, Write) || !Allows([]Scope{Write}, Write) {
		t.Error("Allows")
	}
}

// Every RPC of the authzed v1 services has a scope narrower than admin, and
// a method nobody listed needs admin.
func TestMethodScopes(t *testing.T) {
	for _, svc := range []struct {
		name    string
		methods []string
	}{
		{v1.PermissionsService_ServiceDesc.ServiceName, names(v1.PermissionsService_ServiceDesc.Methods, v1.PermissionsService_ServiceDesc.Streams)},
		{v1.SchemaService_ServiceDesc.ServiceName, names(v1.SchemaService_ServiceDesc.Methods, v1.SchemaService_ServiceDesc.Streams)},
		{v1.WatchService_ServiceDesc.ServiceName, names(v1.WatchService_ServiceDesc.Methods, v1.WatchService_ServiceDesc.Streams)},
	} {
		for _, m := range svc.methods {
			full := "/" + svc.name + "/" + m
			if MethodScope(full) == Admin {
				t.Errorf("%s needs admin: give it its scope", full)
			}
		}
	}
	if MethodScope("/ambit.cluster.v1.Cluster/Remove") != Admin || MethodScope("/x.Y/Z") != Admin {
		t.Error("unlisted methods must need admin")
	}
}

func names(methods []grpc.MethodDesc, streams []grpc.StreamDesc) []string {
	var out []string
	for _, m := range methods {
		out = append(out, m.MethodName)
	}
	for _, s := range streams {
		out = append(out, s.StreamName)
	}
	return out
}

func BenchmarkParseVerify(b *testing.B) {
	tok, _ := New()
	b.ReportAllocs()
	for b.Loop() {
		_, secret, err := Parse(tok.Text)
		if err != nil {
			b.Fatal(err)
		}
		if err := Verify(secret, tok.Salt, tok.Hash); err != nil {
			b.Fatal(err)
		}
	}
}
