package schema_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ambit-authz/ambit/internal/conformance"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/validation"
)

// Declarations says what Compile says about every definition's relations
// (names, order, allowed types, which are permissions) and caveat names, on
// every valid schema we have: the golden files, the collaboration model and
// every conformance file.
func TestDeclarationsAgreeWithCompile(t *testing.T) {
	sources := map[string]string{}
	zeds, _ := filepath.Glob("testdata/valid/*.zed")
	zeds = append(zeds, "examples/collab.zed")
	for _, p := range zeds {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sources[p] = string(b)
	}
	for _, p := range conformance.Files(t) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := validation.Parse(p, b)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			sources[p] = d.Schema
		}
	}
	if len(sources) < 10 {
		t.Fatalf("only %d schemas", len(sources))
	}
	for name, src := range sources {
		full, err := schema.Compile(name, src)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		decl, err := schema.Declarations(name, src)
		if err != nil {
			t.Fatalf("%s: Declarations: %v", name, err)
		}
		if len(decl.Definitions) != len(full.Definitions) || len(decl.Caveats) != len(full.Caveats) {
			t.Fatalf("%s: %d definitions and %d caveats, Compile has %d and %d", name, len(decl.Definitions), len(decl.Caveats), len(full.Definitions), len(full.Caveats))
		}
		for dn, fd := range full.Definitions {
			dd := decl.Definitions[dn]
			if dd == nil || !reflect.DeepEqual(dd.Order, fd.Order) {
				t.Fatalf("%s: definition %s: order %v, Compile %v", name, dn, dd, fd.Order)
			}
			for rn, fr := range fd.Relations {
				dr := dd.Relations[rn]
				if dr.IsPermission != fr.IsPermission || !reflect.DeepEqual(dr.AllowedTypes, fr.AllowedTypes) {
					t.Fatalf("%s: %s#%s: %+v, Compile %+v", name, dn, rn, dr, fr)
				}
			}
		}
		for cn := range full.Caveats {
			if decl.Caveats[cn] == nil {
				t.Fatalf("%s: caveat %s missing", name, cn)
			}
		}
	}
}

// Declarations still refuses what its declarations get wrong.
func TestDeclarationsErrors(t *testing.T) {
	for _, src := range []string{
		"definition doc { relation viewer: nosuch }",
		"definition doc {\n\trelation viewer: user with nocaveat\n}\ndefinition user {}",
		"definition doc {\n\trelation viewer: user#nosuch\n}\ndefinition user {}",
		"definition doc {",
	} {
		if _, err := schema.Declarations("s", src); err == nil {
			t.Errorf("Declarations accepted %q", src)
		}
	}
}
