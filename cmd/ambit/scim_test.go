package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSCIMFlags(t *testing.T) {
	dir := t.TempDir()
	file := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := `users:
  relationships: ["organization:{org}#account@user:{id}"]
groups:
  member: "group:{id}#direct_member@{member}"
  user_member: "user:{id}"
  group_member: "group:{id}#member"
`
	tests := []struct {
		name    string
		c       scimConfig
		on      bool
		org     string
		wantErr string
	}{
		{name: "off", c: scimConfig{}},
		{name: "org: the default mapping", c: scimConfig{org: "lab"}, on: true, org: "lab"},
		{name: "bad org", c: scimConfig{org: "a b"}, wantErr: "organization"},
		{name: "file with the org from the flag", c: scimConfig{mapping: file("m.yaml", good), org: "acme"}, on: true, org: "acme"},
		{name: "file without an org", c: scimConfig{mapping: file("m2.yaml", good)}, wantErr: "organization"},
		{name: "missing file", c: scimConfig{mapping: filepath.Join(dir, "nope.yaml")}, wantErr: "--scim-mapping"},
		{name: "unknown key", c: scimConfig{mapping: file("m3.yaml", good+"extra: 1\n"), org: "lab"}, wantErr: "extra"},
		{name: "template that is no relationship", c: scimConfig{mapping: file("m4.yaml", strings.Replace(good, "#account@", "#@", 1)), org: "lab"}, wantErr: "scim mapping"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, on, err := tc.c.scimMapping()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || on != tc.on || (on && m.Organization != tc.org) {
				t.Fatalf("scimMapping = %+v %v %v", m, on, err)
			}
		})
	}
}
