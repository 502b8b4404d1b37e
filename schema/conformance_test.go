package schema

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/ambit-authz/ambit/internal/conformance"
)

// TestConformance compiles the schema of every validation file under
// $AMBIT_CONFORMANCE_DIR (SpiceDB's own consistency fixtures: SpiceDB accepts
// them all, so ambit must too).
func TestConformance(t *testing.T) {
	files := conformance.Files(t)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			dec := yaml.NewDecoder(bytes.NewReader(data))
			n := 0
			for i := 0; ; i++ {
				var doc struct {
					Schema string `yaml:"schema"`
				}
				if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
					break
				} else if err != nil {
					t.Fatalf("document %d: %v", i, err)
				}
				if doc.Schema == "" {
					continue
				}
				n++
				s, err := Compile(file, doc.Schema)
				if err != nil {
					t.Fatalf("document %d: %v", i, err)
				}
				// The canonical form compiles to the same canonical form.
				s2, err := Compile(file+" (canonical)", s.Source)
				if err != nil {
					t.Fatalf("document %d: canonical form does not compile: %v\n%s", i, err, s.Source)
				}
				if s2.Hash != s.Hash {
					t.Errorf("document %d: canonical form is not stable:\n%s\n---\n%s", i, s.Source, s2.Source)
				}
			}
			if n == 0 {
				t.Fatalf("no schema in %s", file)
			}
		})
	}
}
