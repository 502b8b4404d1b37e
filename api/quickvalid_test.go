package api

import (
	"math/rand/v2"
	"strings"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestValidCheckAgrees: whatever validCheck accepts, the generated
// validation accepts too (validCheck may only skip it, never change an
// answer), and it accepts the ordinary shapes the fast path is for.
func TestValidCheckAgrees(t *testing.T) {
	obj := func(typ, id string) *v1.ObjectReference { return &v1.ObjectReference{ObjectType: typ, ObjectId: id} }
	req := func(rt, rid, perm, st, sid, srel string) *v1.CheckPermissionRequest {
		return &v1.CheckPermissionRequest{Resource: obj(rt, rid), Permission: perm,
			Subject: &v1.SubjectReference{Object: obj(st, sid), OptionalRelation: srel}}
	}
	ctxStruct, _ := structpb.NewStruct(map[string]any{"ip": "10.0.0.1"})
	for _, tc := range []struct {
		name string
		r    *v1.CheckPermissionRequest
		fast bool // validCheck should accept it
	}{
		{"plain", req("document", "d1", "view", "user", "u1", ""), true},
		{"subject relation", req("document", "d-1/x|y=z+w_", "view", "group", "g1", "member"), true},
		{"minimize latency", &v1.CheckPermissionRequest{Consistency: &v1.Consistency{Requirement: &v1.Consistency_MinimizeLatency{MinimizeLatency: true}},
			Resource: obj("document", "d1"), Permission: "view", Subject: &v1.SubjectReference{Object: obj("user", "u1")}}, true},
		{"fully consistent", &v1.CheckPermissionRequest{Consistency: &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}},
			Resource: obj("document", "d1"), Permission: "view", Subject: &v1.SubjectReference{Object: obj("user", "u1")}}, true},
		{"context", &v1.CheckPermissionRequest{Resource: obj("document", "d1"), Permission: "view", Subject: &v1.SubjectReference{Object: obj("user", "u1")}, Context: ctxStruct}, true},
		{"minimize latency false", &v1.CheckPermissionRequest{Consistency: &v1.Consistency{Requirement: &v1.Consistency_MinimizeLatency{}},
			Resource: obj("document", "d1"), Permission: "view", Subject: &v1.SubjectReference{Object: obj("user", "u1")}}, false},
		{"empty consistency", &v1.CheckPermissionRequest{Consistency: &v1.Consistency{},
			Resource: obj("document", "d1"), Permission: "view", Subject: &v1.SubjectReference{Object: obj("user", "u1")}}, false},
		{"typed nil requirement", &v1.CheckPermissionRequest{Consistency: &v1.Consistency{Requirement: (*v1.Consistency_MinimizeLatency)(nil)},
			Resource: obj("document", "d1"), Permission: "view", Subject: &v1.SubjectReference{Object: obj("user", "u1")}}, false},
		{"at least as fresh", &v1.CheckPermissionRequest{Consistency: &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: &v1.ZedToken{Token: "x"}}},
			Resource: obj("document", "d1"), Permission: "view", Subject: &v1.SubjectReference{Object: obj("user", "u1")}}, false},
		{"no resource", &v1.CheckPermissionRequest{Permission: "view", Subject: &v1.SubjectReference{Object: obj("user", "u1")}}, false},
		{"no subject", &v1.CheckPermissionRequest{Resource: obj("document", "d1"), Permission: "view"}, false},
		{"no subject object", &v1.CheckPermissionRequest{Resource: obj("document", "d1"), Permission: "view", Subject: &v1.SubjectReference{}}, false},
		{"wildcard resource", req("document", "*", "view", "user", "u1", ""), false},
		{"wildcard subject", req("document", "d1", "view", "user", "*", ""), false},
		{"wildcard subject with relation", req("document", "d1", "view", "user", "*", "member"), false},
		{"empty permission", req("document", "d1", "", "user", "u1", ""), false},
		{"upper-case type", req("Document", "d1", "view", "user", "u1", ""), false},
		{"prefixed type", req("org/document", "d1", "view", "user", "u1", ""), false},
		{"short type", req("do", "d1", "view", "user", "u1", ""), false},
		{"type ends in underscore", req("doc_", "d1", "view", "user", "u1", ""), false},
		{"long permission", req("document", "d1", "v"+strings.Repeat("a", 64), "user", "u1", ""), false},
		{"64-byte permission", req("document", "d1", "v"+strings.Repeat("a", 63), "user", "u1", ""), true},
		{"id with space", req("document", "d 1", "view", "user", "u1", ""), false},
		{"id with colon", req("document", "d:1", "view", "user", "u1", ""), false},
		{"non-ASCII id", req("document", "dé", "view", "user", "u1", ""), false},
		{"empty id", req("document", "", "view", "user", "u1", ""), false},
		{"1024-byte id", req("document", strings.Repeat("a", 1024), "view", "user", "u1", ""), true},
		{"1025-byte id", req("document", strings.Repeat("a", 1025), "view", "user", "u1", ""), false},
		{"bad subject relation", req("document", "d1", "view", "group", "g1", "Member"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := validCheck(tc.r)
			if got != tc.fast {
				t.Errorf("validCheck = %v, want %v", got, tc.fast)
			}
			if got {
				if err := tc.r.ValidateAll(); err != nil {
					t.Errorf("validCheck accepted what ValidateAll refuses: %v", err)
				}
				if err := tc.r.HandwrittenValidate(); err != nil {
					t.Errorf("validCheck accepted what HandwrittenValidate refuses: %v", err)
				}
			}
		})
	}

	// Random names and ids over an alphabet of allowed and refused bytes:
	// every request validCheck accepts passes the generated validation, and
	// every one that passes with no wildcard, prefix or empty permission is
	// accepted.
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("az09_AZ/|-=+*: .é\x00")
	word := func() string {
		n := rng.IntN(9)
		if rng.IntN(50) == 0 {
			n = 60 + rng.IntN(10)
		}
		b := make([]byte, n)
		for i := range b {
			if rng.IntN(12) == 0 {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			} else {
				b[i] = "abcdefxyz019"[rng.IntN(12)]
			}
		}
		return string(b)
	}
	accepted := 0
	for range 200_000 {
		r := req(word(), word(), word(), word(), word(), word())
		generated := r.ValidateAll() == nil && r.HandwrittenValidate() == nil
		if validCheck(r) {
			accepted++
			if !generated {
				t.Fatalf("validCheck accepted %v, which the generated validation refuses", r)
			}
		} else if generated && r.Permission != "" && r.Subject.Object.ObjectId != "*" &&
			!strings.Contains(r.Resource.ObjectType, "/") && !strings.Contains(r.Subject.Object.ObjectType, "/") {
			t.Fatalf("validCheck refused %v, which the generated validation accepts", r)
		}
	}
	if accepted < 1000 {
		t.Fatalf("only %d random requests accepted: the generator is too strict to test anything", accepted)
	}
}

// BenchmarkValidateCheck: the request validation of one ordinary
// CheckPermission, through validate (the fast path) and through the
// generated rules alone.
func BenchmarkValidateCheck(b *testing.B) {
	r := &v1.CheckPermissionRequest{
		Consistency: &v1.Consistency{Requirement: &v1.Consistency_MinimizeLatency{MinimizeLatency: true}},
		Resource:    &v1.ObjectReference{ObjectType: "dataset", ObjectId: "ds1234"}, Permission: "view",
		Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "u567"}},
	}
	b.Run("validate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := validate(r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("generated", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if r.ValidateAll() != nil || r.HandwrittenValidate() != nil {
				b.Fatal("invalid")
			}
		}
	})
}
