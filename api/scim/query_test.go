package scim

import (
	"fmt"
	"net/url"
	"reflect"
	"testing"
)

func users(t *testing.T) []Resource {
	t.Helper()
	var out []Resource
	for i, n := range []string{"carol", "Alice", "bob", "dave"} {
		r := decode(t, fmt.Sprintf(`{"schemas":[%q],"id":"u%d","userName":%q,"active":%v,
			"emails":[{"value":"%s@example.com","type":"work"}],
			%q:{"department":"d%d"}}`, UserSchema, i, n, i%2 == 0, n, EnterpriseUserSchema, i%2))
		out = append(out, r)
	}
	out = append(out, decode(t, `{"id":"u9","active":true}`)) // no userName: sorts last
	return out
}

func query(t *testing.T, qs string) Query {
	t.Helper()
	v, err := url.ParseQuery(qs)
	if err != nil {
		t.Fatal(err)
	}
	q, err := ParseQuery(v.Get)
	if err != nil {
		t.Fatalf("ParseQuery(%s): %v", qs, err)
	}
	return q
}

func ids(rs []Resource) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r["id"].(string))
	}
	return out
}

func TestQueryRun(t *testing.T) {
	all := users(t)
	for _, tc := range []struct {
		qs    string
		want  []string
		total int
	}{
		{"", []string{"u0", "u1", "u2", "u3", "u9"}, 5},
		{"filter=" + url.QueryEscape(`userName eq "alice"`), []string{"u1"}, 1},
		{"filter=" + url.QueryEscape(`active eq true`) + "&sortBy=userName", []string{"u2", "u0", "u9"}, 3},
		{"sortBy=userName", []string{"u1", "u2", "u0", "u3", "u9"}, 5},
		{"sortBy=userName&sortOrder=descending", []string{"u3", "u0", "u2", "u1", "u9"}, 5},
		{"sortBy=emails", []string{"u1", "u2", "u0", "u3", "u9"}, 5}, // by the value of the first email
		{"sortBy=userName&startIndex=2&count=2", []string{"u2", "u0"}, 5},
		{"sortBy=userName&startIndex=0&count=1", []string{"u1"}, 5}, // startIndex < 1 is 1
		{"startIndex=9", nil, 5},
		{"count=0", nil, 5},
		{"filter=" + url.QueryEscape(`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "d1"`), []string{"u1", "u3"}, 2},
	} {
		page, total, err := query(t, tc.qs).Run(all, nil)
		if err != nil {
			t.Errorf("%s: %v", tc.qs, err)
			continue
		}
		if got := ids(page); !reflect.DeepEqual(got, tc.want) || total != tc.total {
			t.Errorf("%s: %v of %d, want %v of %d", tc.qs, got, total, tc.want, tc.total)
		}
	}
}

func TestQueryProject(t *testing.T) {
	r := users(t)[1]
	got := query(t, "attributes=userName,emails.value").Project(r)
	want := Resource{"id": "u1", "schemas": r["schemas"], "userName": "Alice", "emails": []any{map[string]any{"value": "Alice@example.com"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("attributes: %v, want %v", got, want)
	}
	got = query(t, "excludedAttributes=emails,id,"+url.QueryEscape(EnterpriseUserSchema+":department")).Project(r)
	if _, ok := got["emails"]; ok {
		t.Error("excluded emails returned")
	}
	if got["id"] != "u1" {
		t.Error("id is always returned")
	}
	if ext := got[EnterpriseUserSchema].(map[string]any); len(ext) != 0 {
		t.Errorf("excluded department returned: %v", ext)
	}
	if r[EnterpriseUserSchema].(map[string]any)["department"] != "d1" {
		t.Error("Project changed its input")
	}
}

func TestParseQueryErrors(t *testing.T) {
	for _, qs := range []string{
		"filter=" + url.QueryEscape(`userName eq`), "sortBy=" + url.QueryEscape(`emails[type eq "x"]`), "sortOrder=up",
		"startIndex=one", "count=1e3", "count=9999999999", "attributes=userName&excludedAttributes=emails", "attributes=" + url.QueryEscape("a b"),
	} {
		v, _ := url.ParseQuery(qs)
		_, err := ParseQuery(v.Get)
		if e := AsError(err); err == nil || e.Status != 400 {
			t.Errorf("ParseQuery(%s) = %v, want a 400", qs, err)
		}
	}
}
