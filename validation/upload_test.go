package validation

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ParseUploaded reads no other file: a schemaFile key is an error even when
// the file it names exists beside the upload's name; an inline schema parses
// as with Parse.
func TestParseUploaded(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "schema.zed"), []byte("definition user {}"), 0o600); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(dir, "upload.yaml")
	withFile := []byte("schemaFile: schema.zed\nrelationships: \"\"\n")
	if docs, err := Parse(name, withFile); err != nil || docs[0].Schema != "definition user {}" {
		t.Fatalf("Parse reads schemaFile: %v", err)
	}
	_, err := ParseUploaded(name, withFile)
	if err == nil || !strings.Contains(err.Error(), "cannot refer to another file") {
		t.Errorf("ParseUploaded with schemaFile: %v", err)
	}
	docs, err := ParseUploaded(name, []byte("schema: definition user {}\nrelationships: \"\"\n"))
	if err != nil || len(docs) != 1 || docs[0].Schema != "definition user {}" {
		t.Errorf("ParseUploaded with an inline schema: %v %v", docs, err)
	}
}
