package api

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
)

// TestAuthZENIDMapping: ids ambit accepts pass unchanged unless they look
// escaped; everything else is escaped, reversibly and without collisions.
func TestAuthZENIDMapping(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"ana", "ana", ""},
		{"CiRmZDA2MTRk+/=", "CiRmZDA2MTRk+/=", ""}, // base64 with padding
		{"auth0|123", "auth0|123", ""},
		{"rick@the-citadel.com", "rick=40the-citadel=2Ecom", ""},
		{"a=40b", "a=3D40b", ""}, // looks escaped: escaped itself
		{"a b", "a=20b", ""},
		{"é", "=C3=A9", ""},
		{"*", "=2A", ""},
		{"", "", "is required"},
		{"a\x00b", "", "control character"},
		{"a\u0085b", "", "control character"},
		{"\xff", "", "not valid UTF-8"},
		{strings.Repeat("@", 342), "", "limit of 1024"},
	} {
		got, err := azIDToAmbit(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q -> %q, %v; want %q", tc.in, got, err, tc.want)
			continue
		}
		if back := ambitIDToAZ(got); back != tc.in {
			t.Errorf("%q -> %q -> %q", tc.in, got, back)
		}
	}
}

// FuzzAuthZENID: every accepted id maps to a valid ambit id that maps back.
func FuzzAuthZENID(f *testing.F) {
	for _, s := range []string{"ana", "a@b.c", "a=40b", "=", "=4", "x=ZZ", "é=C3=A9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		out, err := azIDToAmbit(id)
		if err != nil {
			return
		}
		if err := tuple.ValidateID(out); err != nil {
			t.Fatalf("%q -> %q, which ambit refuses: %v", id, out, err)
		}
		if back := ambitIDToAZ(out); back != id {
			t.Fatalf("%q -> %q -> %q", id, out, back)
		}
	})
}

// FuzzAuthZENDecode: no request body makes the decoder or the translation
// panic, and every refusal is a client error naming a field.
func FuzzAuthZENDecode(f *testing.F) {
	sch, err := schema.Compile("fuzz", `
caveat big_x(resource_x int) { resource_x > 1 }
definition user {}
definition group {
	relation member: user | group#member
}
definition doc {
	relation viewer: user | user:* | group#member | user with big_x
	permission view = viewer
}`)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		`{"subject":{"type":"user","id":"a"},"action":{"name":"view"},"resource":{"type":"doc","id":"d"}}`,
		`{"subject":{"type":"group","id":"g","properties":{"relation":"member"}},"action":{"name":"view"},"resource":{"type":"doc","id":"d","properties":{"x":2}},"context":{"zedtoken":"x"}}`,
		`{"subject":{"type":"user","id":"a"},"evaluations":[{"action":{"name":"view"},"resource":{"type":"doc","id":"d@x"}},{}],"options":{"evaluations_semantic":"deny_on_first_deny"}}`,
		`{"subject":"x","action":[],"resource":{"type":1},"context":null}`,
		`{"resource":{"type":"doc","id":"d","x":1,"properties":{"x":2}}}`,
		`{"page":{"limit":-1,"token":"AQ"}}`,
	} {
		f.Add([]byte(s))
	}
	tr := azTranslator{sch: sch}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req azEvaluationsRequest
		if json.Unmarshal(body, &req) != nil {
			return
		}
		items := append([]azEvaluation{req.azEvaluation}, req.Evaluations...)
		for i, it := range items {
			ev := merged(req.azEvaluation, it)
			path := fmt.Sprintf("evaluations[%d].", i)
			c, err := tr.checkItem(&ev, path)
			if err != nil {
				if _, ok := err.(*azError); !ok || !strings.HasPrefix(err.Error(), path) {
					t.Fatalf("error %v (%T) is not a client error naming a field under %s", err, err, path)
				}
				continue
			}
			if tuple.ValidateID(c.GetResource().GetObjectId()) != nil || tuple.ValidateID(c.GetSubject().GetObject().GetObjectId()) != nil {
				t.Fatalf("translated to an id ambit refuses: %v", c)
			}
		}
		var sreq azSearchRequest
		if json.Unmarshal(body, &sreq) == nil {
			_, _ = tr.subject(sreq.Subject, "subject", false)
			_, _, _ = tr.entity(sreq.Resource, "resource", false)
			_, _ = json.Marshal(sreq)
		}
	})
}

// plainSeeds are request bodies of the plain shape and near misses.
var plainSeeds = []string{
	`{"subject":{"type":"user","id":"u1"},"action":{"name":"view"},"resource":{"type":"document","id":"d1"}}`,
	` { "subject" : { "type" : "user" , "id" : "u1" } , "action":{"name":"view"}, "resource":{"type":"document","id":"d1"} } `,
	`{"subject":{"type":"user","id":"rick@the-citadel.com"},"resource":{"type":"todo","id":"t"},"options":{"evaluations_semantic":"deny_on_first_deny"},"evaluations":[{"action":{"name":"a"}},{"action":{"name":"b"},"resource":{"type":"todo","id":"u"}}]}`,
	`{"evaluations":[]}`, `{}`, `{"subject":{}}`,
	`{"subject":{"type":"user","type":"group"}}`, // a repeated key: encoding/json decides
	`{"subject":{"type":"user","id":"u\u0031"}}`, // an escape
	`{"subject":{"type":"user","id":"é"}}`,       // not ASCII
	`{"subject":{"type":"user","id":1}}`,         // a number
	`{"subject":null}`, `{"subject":{"type":"user"},"context":{"a":1}}`,
	`{"subject":{"type":"user","properties":{"relation":"member"}}}`,
	`{"subject":{"type":"user"}} {}`, `{"subject":{"type":"user"}`, `[]`, ``,
}

// FuzzAuthZENPlain: whenever the plain decoder takes a body, encoding/json
// takes it too and decodes the same request (so the fast path changes no
// answer and no error).
func FuzzAuthZENPlain(f *testing.F) {
	for _, s := range plainSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		checkPlainAgrees(t, body)
	})
}

func TestAuthZENPlainAgrees(t *testing.T) {
	taken := 0
	for _, s := range plainSeeds {
		if checkPlainAgrees(t, s) {
			taken++
		}
	}
	if taken != 6 {
		t.Errorf("the plain decoder took %d of the seeds, want the first 6", taken)
	}
}

func checkPlainAgrees(t *testing.T, body string) (taken bool) {
	t.Helper()
	var plain, slow azEvaluation
	if decodePlainEvaluation([]byte(body), &plain) {
		taken = true
		if err := json.Unmarshal([]byte(body), &slow); err != nil {
			t.Fatalf("plain took %s, encoding/json refuses it: %v", body, err)
		}
		if !reflect.DeepEqual(plain, slow) {
			t.Fatalf("%s: plain %+v, encoding/json %+v", body, plain, slow)
		}
	}
	var plainB, slowB azEvaluationsRequest
	if decodePlainEvaluations([]byte(body), &plainB) {
		taken = true
		if err := json.Unmarshal([]byte(body), &slowB); err != nil {
			t.Fatalf("plain took %s as a batch, encoding/json refuses it: %v", body, err)
		}
		if !reflect.DeepEqual(plainB, slowB) {
			t.Fatalf("%s: plain %+v, encoding/json %+v", body, plainB, slowB)
		}
	}
	return taken
}
