package scim

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// bjensen is RFC 7643 §8.2's full user, cut to what the filters look at.
const bjensen = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
  "id": "2819c223-7f76-453a-919d-413861904646",
  "externalId": "701984",
  "userName": "bjensen@example.com",
  "name": {"familyName": "Jensen", "givenName": "Barbara", "formatted": "Ms. Barbara J Jensen, III"},
  "title": "Tour Guide",
  "userType": "Employee",
  "active": true,
  "emails": [
    {"value": "bjensen@example.com", "type": "work", "primary": true},
    {"value": "babs@jensen.org", "type": "home"}
  ],
  "ims": [{"value": "someaimhandle", "type": "aim"}],
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
    "employeeNumber": "701984", "department": "Tour Operations",
    "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith"}
  },
  "meta": {"resourceType": "User", "created": "2010-01-23T04:56:22Z", "lastModified": "2011-05-13T04:42:34Z", "version": "W/\"3694e05e9dff591\""},
  "x509Certificates": [],
  "nickName": "",
  "loginCount": 42
}`

func decode(t *testing.T, s string) Resource {
	t.Helper()
	var r Resource
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestFilterMatch(t *testing.T) {
	r := decode(t, bjensen)
	for _, tc := range []struct {
		filter string
		want   bool
	}{
		// RFC 7644 §3.4.2.2's examples, as they apply to bjensen.
		{`userName eq "bjensen@example.com"`, true},
		{`userName Eq "BJENSEN@example.com"`, true}, // operators and non-caseExact values ignore case
		{`UserName eq "bjensen@example.com"`, true}, // attribute names too
		{`name.familyName co "ens"`, true},
		{`name.familyName co "O'Malley"`, false},
		{`userName sw "bj"`, true},
		{`urn:ietf:params:scim:schemas:core:2.0:User:userName sw "BJ"`, true},
		{`title pr`, true},
		{`nickName pr`, false},         // "" is not present
		{`x509Certificates pr`, false}, // nor is []
		{`displayName pr`, false},      // nor an absent attribute
		{`meta.lastModified gt "2011-05-13T04:42:33Z"`, true},
		{`meta.lastModified gt "2011-05-13T04:42:34Z"`, false},
		{`meta.lastModified ge "2011-05-13T04:42:34Z"`, true},
		{`meta.lastModified lt "2011-05-13T06:42:34+02:00"`, false}, // the same instant, by time, not text
		{`meta.lastModified le "2011-05-13T06:42:34+02:00"`, true},
		{`title pr and userType eq "Employee"`, true},
		{`title pr or userType eq "Intern"`, true},
		{`schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"`, true},
		{`userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")`, true},
		{`userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")`, false},
		{`userType eq "Employee" and (emails.type eq "work")`, true},
		{`userType eq "Employee" and emails[type eq "work" and value co "@example.com"]`, true},
		{`emails[type eq "work" and value co "@jensen.org"]`, false}, // both on one value
		{`emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]`, true},
		{`emails[type eq "work" or (type eq "home" and value ew "@jensen.org")]`, true}, // errata 7322
		{`emails[not (type eq "work")]`, true},
		// Case: id and externalId compare exactly.
		{`id eq "2819C223-7F76-453A-919D-413861904646"`, false},
		{`id eq "2819c223-7f76-453a-919d-413861904646"`, true},
		{`externalId eq "701984"`, true},
		// Extensions, booleans, numbers, null.
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "tour operations"`, true},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d"`, true},
		{`active eq true`, true},
		{`active eq false`, false},
		{`active ne false`, true},
		{`loginCount gt 41`, true},
		{`loginCount le 41.5`, false},
		{`displayName eq null`, false}, // absent, not null
		{`displayName ne "x"`, true},   // ne on an absent attribute
		{`not (userName eq "x") and not(title eq "y")`, true},
		{`(userName eq "x" or title eq "Tour Guide") and active eq true`, true},
		// "or" binds looser than "and".
		{`userName eq "x" and title pr or active eq true`, true},
		{`userName eq "x" and (title pr or active eq true)`, false},
	} {
		f, err := ParseFilter(tc.filter)
		if err != nil {
			t.Errorf("ParseFilter(%s): %v", tc.filter, err)
			continue
		}
		got, err := Match(f, r, nil)
		if err != nil {
			t.Errorf("Match(%s): %v", tc.filter, err)
			continue
		}
		if got != tc.want {
			t.Errorf("Match(%s) = %v, want %v", tc.filter, got, tc.want)
		}
	}
}

// Operators that do not apply to a value's type are invalidFilter errors
// (RFC 7644 §3.4.2.2: gt on a boolean), not silent misses.
func TestFilterTypeErrors(t *testing.T) {
	r := decode(t, bjensen)
	for _, s := range []string{`active gt true`, `active co "t"`, `loginCount co 4`, `title gt null`} {
		f, err := ParseFilter(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if _, err := Match(f, r, nil); !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("Match(%s) error = %v, want invalidFilter", s, err)
		}
	}
}

func TestFilterSyntaxErrors(t *testing.T) {
	for _, tc := range []struct{ filter, msg string }{
		{``, "want an attribute path"},
		{`userName`, "want an operator"},
		{`userName eq`, "want a value"},
		{`userName equals "x"`, "not an operator"},
		{`userName eq "x`, "unterminated string"},
		{`userName eq bjensen`, "want a value"},
		{`userName eq "x" and`, "want an attribute path"},
		{`(userName eq "x"`, `want ")"`},
		{`userName eq "x")`, "unexpected"},
		{`not userName eq "x"`, `"not" must be followed by "("`},
		{`emails[type eq "work"`, `want "]"`},
		{`emails[type eq "work" and ims[type eq "aim"]]`, "cannot hold another value path"},
		{`name.familyName[value eq "x"]`, "not of a sub-attribute"},
		{`1userName eq "x"`, "not an attribute path"},
		{`user$Name eq "x"`, "not an attribute path"},
		{`foo:userName eq "x"`, "schema URN"},
		{`userName eq "\q"`, "bad string literal"},
		{`userName eq "x" # comment`, "unexpected character"},
		{strings.Repeat("(", MaxFilterDepth+1) + `a pr` + strings.Repeat(")", MaxFilterDepth+1), "nested deeper"},
		{`a eq "` + strings.Repeat("x", MaxFilterBytes) + `"`, "longer than"},
		{"a eq \"\xff\"", "UTF-8"},
	} {
		_, err := ParseFilter(tc.filter)
		var se *SyntaxError
		if !errors.As(err, &se) || !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("ParseFilter(%.40q) = %v, want an invalidFilter SyntaxError", tc.filter, err)
			continue
		}
		if !strings.Contains(se.Msg, tc.msg) {
			t.Errorf("ParseFilter(%.40q): %q does not say %q", tc.filter, se.Msg, tc.msg)
		}
		if se.Pos < 0 || se.Pos > len(tc.filter) {
			t.Errorf("ParseFilter(%.40q): position %d outside the input", tc.filter, se.Pos)
		}
	}
}

func TestParsePath(t *testing.T) {
	for _, tc := range []struct {
		path, attr, sub string
		filter          bool
	}{
		// RFC 7644 §3.5.2's examples.
		{`members`, "members", "", false},
		{`name.familyName`, "name.familyName", "", false},
		{`addresses[type eq "work"]`, "addresses", "", true},
		{`members[value eq "2819c223-7f76-453a-919d-413861904646"]`, "members", "", true},
		{`members[value eq "2819c223-7f76-453a-919d-413861904646"].displayName`, "members", "displayName", true},
		{`emails[type eq "work"].value`, "emails", "value", true},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager`, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "", false},
		{`active`, "active", "", false},
	} {
		p, err := ParsePath(tc.path)
		if err != nil {
			t.Errorf("ParsePath(%s): %v", tc.path, err)
			continue
		}
		if p.Attr.String() != tc.attr || p.Sub != tc.sub || (p.Filter != nil) != tc.filter {
			t.Errorf("ParsePath(%s) = %+v", tc.path, p)
		}
	}
	for _, bad := range []string{``, `members[`, `members]`, `emails[type eq "work"].`, `emails[type eq "work"]value`, `a b`, `members[value eq "x"].display.name`} {
		if _, err := ParsePath(bad); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("ParsePath(%q) = %v, want invalidPath", bad, err)
		}
	}
}

// FuzzParseFilter: the parser never panics, errors are SyntaxErrors with a
// position inside the input, and whatever parses can be evaluated without
// panicking.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{`userName eq "bjensen"`, `emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp"]`,
		`not (a pr) and b gt 3`, `meta.lastModified ge "2011-05-13T04:42:34Z"`, `a eq "\u00e9\/"`, `((a pr))`} {
		f.Add(s)
	}
	r := map[string]any{}
	_ = json.Unmarshal([]byte(bjensen), &r)
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := ParseFilter(s)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Pos < 0 || se.Pos > len(s) && se.Pos != MaxFilterBytes {
				t.Fatalf("ParseFilter(%q) error %v is not a positioned SyntaxError", s, err)
			}
			return
		}
		_, _ = Match(flt, r, nil)
		if _, err := ParsePath(s); err != nil && !errors.Is(err, ErrInvalidPath) {
			t.Fatalf("ParsePath(%q) error %v is not invalidPath", s, err)
		}
	})
}
