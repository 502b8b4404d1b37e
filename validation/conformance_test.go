package validation

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ambit-authz/ambit/internal/conformance"
)

// TestConformanceFilesParse parses every *.yaml under $AMBIT_CONFORMANCE_DIR
// (for example SpiceDB's integration-test validation files). It checks the
// decoder only; running the files against the engine is the engine's job.
func TestConformanceFilesParse(t *testing.T) {
	paths := conformance.Files(t)
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			files, err := Parse(path, data)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(files) == 0 {
				t.Fatal("no documents")
			}
			for _, f := range files {
				checkInvariants(t, f, len(splitLines(data)))
				checkLinesHoldText(t, f, splitLines(data))
				if f.Schema == "" {
					t.Errorf("document %d: empty schema", f.Doc)
				}
				if _, err := ExtractSchema(path, data); err != nil {
					t.Errorf("ExtractSchema: %v", err)
				}
			}
		})
	}
	t.Logf("parsed %d files", len(paths))
}
