package runner

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/internal/conformance"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
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
	// every answer themselves instead of finding Check's. Each of the first
	// two runs with the nested-group index built over the file's data and
	// without it (issue 26: paged answers equal unpaged ones either way).
	for _, cfg := range []engine.Config{{}, {LookupStreamAfter: -1}, {CacheMaxCost: -1}, {LeopardMaxEdges: -1}, {LookupStreamAfter: -1, LeopardMaxEdges: -1}} {
		eng, err := engine.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		lb := &leopardBackend{Backend: b, eng: eng}
		for _, f := range docs {
			rep, err := Run(context.Background(), eng, lb, f, Options{Oracle: true, PageSizes: conformancePages, SubjectPages: conformancePages})
			if err != nil {
				t.Fatal(err)
			}
			for _, fl := range rep.Failures {
				t.Errorf("LookupStreamAfter %d, CacheMaxCost %d, LeopardMaxEdges %d: %s", cfg.LookupStreamAfter, cfg.CacheMaxCost, cfg.LeopardMaxEdges, fl)
			}
			t.Logf("%s: %d assertions, %d oracle comparisons", path, rep.Assertions, rep.Oracle)
			if lb.index == nil {
				continue
			}
			// Where the data nests a relation in itself, the index must
			// have answered some nesting, or the run compared the walk
			// with itself.
			if st := lb.index.Stats(); nestsItself(f) && st.Served == 0 {
				t.Errorf("%s: the file nests a relation in itself (%d edges indexed) but the index answered nothing", path, st.Edges)
			}
		}
		eng.Close()
	}
}

// leopardBackend builds the engine's nested-group index (when it has one)
// over every data set it loads, at the data's revision, so that the views
// over it take nestings from the index.
type leopardBackend struct {
	Backend
	eng   *engine.Engine
	index *engine.Leopard // the last data set's
}

func (b *leopardBackend) Load(ctx context.Context, s *schema.Schema, rels []tuple.Relationship) (engine.Reader, engine.Snapshot, error) {
	r, at, err := b.Backend.Load(ctx, s, rels)
	if err != nil {
		return r, at, err
	}
	b.index = b.eng.Leopard(at.Source)
	if b.index != nil {
		if err := b.index.Build(ctx, r, s, at.Revision); err != nil {
			return nil, engine.Snapshot{}, err
		}
	}
	return r, at, nil
}

// nestsItself reports whether f holds a relationship T:a#r@T:b#r.
func nestsItself(f *validation.File) bool {
	for _, r := range f.Relationships {
		rel := r.Relationship
		if rel.Subject.Type == rel.Resource.Type && rel.Subject.Relation == rel.Relation {
			return true
		}
	}
	return false
}
