// Package conformance finds the shared validation files that the project's
// conformance tests run: every *.yaml under the directory named by
// AMBIT_CONFORMANCE_DIR (CI sets it to ../shared/conformance). It is used by
// tests only.
package conformance

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// EnvVar names the directory of conformance files.
const EnvVar = "AMBIT_CONFORMANCE_DIR"

// Files returns every *.yaml under $AMBIT_CONFORMANCE_DIR, sorted. It skips
// the test, saying so, when the variable is unset, and fails it when the
// directory holds no files.
func Files(t testing.TB) []string {
	t.Helper()
	dir := os.Getenv(EnvVar)
	if dir == "" {
		t.Skip(EnvVar + " is not set; skipping the conformance suite (CI sets it to ../shared/conformance)")
	}
	if resolved, err := filepath.EvalSymlinks(dir); err == nil {
		dir = resolved // WalkDir does not follow a symlinked root
	}
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Ext(p) == ".yaml" {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatalf("reading %s=%s: %v", EnvVar, dir, err)
	}
	if len(files) == 0 {
		t.Fatalf("no *.yaml files under %s=%s", EnvVar, dir)
	}
	sort.Strings(files)
	return files
}
