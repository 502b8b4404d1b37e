package runner

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/internal/conformance"
	"github.com/ambit-authz/ambit/validation"
)

// TestConformance runs every validation file under $AMBIT_CONFORMANCE_DIR:
// all assertions must hold and the cross-API oracle must agree.
func TestConformance(t *testing.T) {
	files := conformance.Files(t)
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			for _, path := range files {
				t.Run(filepath.Base(path), func(t *testing.T) {
					runFile(t, b.backend(t), path)
				})
			}
		})
	}
}

// conformancePages are the LookupResources page sizes the oracle compares
// with one unpaged call (0) on every conformance file (issues 16 and 26).
var conformancePages = []int{1, 7, 100, 0}

type namedBackend struct {
	name    string
	backend func(t *testing.T) Backend
}

func runFile(t *testing.T, b Backend, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := validation.Parse(path, data)
	if err != nil {
		t.Fatal(err)
	}
	// The default engine sorts these files' small lookup answers; the
	// second streams every lookup whose target leads nowhere; the third has
	// no result cache, so SubjectPermissions and ResourceAccess evaluate
	// every answer themselves instead of finding Check's.
	for _, cfg := range []engine.Config{{}, {LookupStreamAfter: -1}, {CacheMaxCost: -1}} {
		eng, err := engine.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range docs {
			rep, err := Run(context.Background(), eng, b, f, Options{Oracle: true, PageSizes: conformancePages})
			if err != nil {
				t.Fatal(err)
			}
			for _, fl := range rep.Failures {
				t.Errorf("LookupStreamAfter %d, CacheMaxCost %d: %s", cfg.LookupStreamAfter, cfg.CacheMaxCost, fl)
			}
			t.Logf("%s: %d assertions, %d oracle comparisons", path, rep.Assertions, rep.Oracle)
		}
		eng.Close()
	}
}
