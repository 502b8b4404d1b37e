package validation

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// memReader serves schemaFile reads from memory, so fuzzing touches no disk.
func memReader(name string) ([]byte, error) {
	if name == "model.zed" {
		return []byte("definition user {}\n"), nil
	}
	return nil, fs.ErrNotExist
}

// FuzzParse: Parse never panics; it either returns documents that satisfy the
// invariants or an ErrorList whose every error names the file, a kind and a
// line inside it; and ExtractSchema agrees with Parse about the schema.
func FuzzParse(f *testing.F) {
	seeds := []string{
		"",
		"---\n",
		doc("schema: |", "  definition user {}", "relationships: |", "  document:a#viewer@user:ana", "  document:a#viewer@group:g#member"),
		doc("relationships: >-", "  document:a#viewer@user:ana[c1x:{\"a\":1}]", "", "  document:a#viewer@user:*[expiration:2300-01-01T00:00:00Z]"),
		doc("schemaFile: model.zed", "assertions:", "  assertTrue:", "    - 'document:a#view@user:ana with {\"a\": [1]}'", "  assertFalse: []", "  assertCaveated:"),
		doc("validation:", "  document:a#view:", `    - "[user:* - {user:b, user:c[...]}] is <document:a#viewer>/<group:g#member>"`, `    - "[user:d[...]]"`),
		doc("schema: a", "---", "schema: &x b", "relationships: *x", "assertions: null", "validation: null"),
		doc("relationships: \"document:a#viewer@user:ana\\ndocument:a#viewer@user:bob\""),
		doc("a: [1", "b"),
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	if dir := os.Getenv("AMBIT_CONFORMANCE_DIR"); dir != "" {
		paths, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, p := range paths {
			if data, err := os.ReadFile(p); err == nil {
				f.Add(data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "f.yaml"
		nLines := len(splitLines(data))
		files, err := parse(name, data, memReader)
		schema, schemaErr := "", error(nil)
		if sf, err := extractSchema(name, data, memReader); err != nil {
			schemaErr = err
		} else {
			schema = sf.Schema
		}
		if err != nil {
			if files != nil {
				t.Fatalf("files and error both returned: %v", err)
			}
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error is not a non-empty ErrorList: %#v", err)
			}
			for _, e := range list {
				if e.File != name || e.Kind == nil || e.Line < 0 || e.Line > nLines+1 || e.Msg == "" {
					t.Fatalf("badly placed or empty error: %+v", e)
				}
			}
			return
		}
		for _, file := range files {
			checkInvariants(t, file, nLines)
		}
		switch {
		case len(files) == 0 || files[0].Schema == "":
			if schemaErr == nil {
				t.Fatalf("ExtractSchema returned %q where Parse found no schema", schema)
			}
		case schemaErr != nil || schema != files[0].Schema:
			t.Fatalf("ExtractSchema = %q, %v; Parse found %q", schema, schemaErr, files[0].Schema)
		}
	})
}
