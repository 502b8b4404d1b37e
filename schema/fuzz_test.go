package schema

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func addSeeds(f *testing.F) {
	for _, glob := range []string{"testdata/valid/*.zed", "testdata/invalid/*.zed"} {
		files, _ := filepath.Glob(glob)
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(string(data))
		}
	}
	f.Add("definition a {\n\tpermission x = (((a)))\n}")
	f.Add("caveat c(x list<map<int>>) { x[0][\"}\"] == 1 }")
	f.Add("/* unterminated")
}

// checkErrorList asserts the documented shape of every error: an ErrorList,
// sorted, at most one per line, each positioned.
func checkErrorList(t *testing.T, err error) {
	t.Helper()
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error is %T, not ErrorList: %v", err, err)
	}
	if len(list) == 0 {
		t.Fatal("empty ErrorList returned as an error")
	}
	for i, e := range list {
		if !e.Pos.IsValid() {
			t.Fatalf("error without position: %v", e)
		}
		if i > 0 && e.Pos.Line <= list[i-1].Pos.Line {
			t.Fatalf("errors not sorted or two on one line: %v then %v", list[i-1], e)
		}
	}
	_ = err.Error()
}

func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, src string) {
		f1, err := Parse("fuzz.zed", src)
		if err != nil {
			checkErrorList(t, err)
			return
		}
		out := Print(f1)
		f2, err := Parse("fuzz.zed", out)
		if err != nil {
			t.Fatalf("printed form does not parse: %v\nsource:\n%q\nprinted:\n%s", err, src, out)
		}
		clearPositions(reflect.ValueOf(f1))
		clearPositions(reflect.ValueOf(f2))
		if !reflect.DeepEqual(f1, f2) {
			t.Fatalf("round trip changed the tree\nsource:\n%q\nprinted:\n%s", src, out)
		}
		if again := Print(f2); again != out {
			t.Fatalf("Format is not idempotent:\n%s\n---\n%s", out, again)
		}
	})
}

func FuzzCompile(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, src string) {
		s, err := Compile("fuzz.zed", src)
		if err != nil {
			if s != nil {
				t.Fatal("Compile returned a schema with an error")
			}
			checkErrorList(t, err)
			return
		}
		s2, err := Compile("canonical.zed", s.Source)
		if err != nil {
			t.Fatalf("canonical form does not compile: %v\n%s", err, s.Source)
		}
		if s2.Hash != s.Hash || s2.Source != s.Source {
			t.Fatalf("canonical form is not stable:\n%s\n---\n%s", s.Source, s2.Source)
		}
	})
}
