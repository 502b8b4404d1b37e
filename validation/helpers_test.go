package validation

import (
	"strings"
	"testing"
)

// checkInvariants asserts what must hold of every successfully parsed File,
// whatever its YAML: lines inside the file, well-formed values.
func checkInvariants(t *testing.T, f *File, nLines int) {
	t.Helper()
	inRange := func(what string, l int) {
		t.Helper()
		if l < 1 || l > nLines {
			t.Errorf("doc %d: %s: line %d outside 1..%d", f.Doc, what, l, nLines)
		}
	}
	if f.Schema != "" && f.SchemaFile == "" {
		inRange("schema", f.SchemaLine)
	}
	for _, r := range f.Relationships {
		inRange(r.String(), r.Line)
		if err := r.Validate(); err != nil {
			t.Errorf("doc %d: relationship %s: %v", f.Doc, r, err)
		}
	}
	for _, list := range [][]Assertion{f.Assertions.True, f.Assertions.False, f.Assertions.Caveated} {
		for _, a := range list {
			inRange(a.Text, a.Line)
			if a.Rel.Caveat != nil || !a.Rel.Expiration.IsZero() {
				t.Errorf("doc %d: assertion %q carries a caveat or expiration", f.Doc, a.Text)
			}
		}
	}
	for _, e := range f.Validation {
		inRange(e.Resource.String(), e.Line)
		for _, s := range e.Subjects {
			inRange(s.Text, s.Line)
			if len(s.Excluded) != len(s.ExcludedCaveated) {
				t.Errorf("doc %d: %q: %d exclusions, %d caveat marks", f.Doc, s.Text, len(s.Excluded), len(s.ExcludedCaveated))
			}
			if len(s.Excluded) > 0 && !s.Subject.IsWildcard() {
				t.Errorf("doc %d: %q: exclusions on a non-wildcard subject", f.Doc, s.Text)
			}
		}
	}
}

// checkLinesHoldText asserts that each element's line holds its text and that
// relationship lines increase. It needs the text to appear verbatim in the
// source, which holds for the block and plain styles that validation files use
// (not for a quoted string with escapes, so the fuzz target does not call it).
func checkLinesHoldText(t *testing.T, f *File, src []string) {
	t.Helper()
	holds := func(l int, text string) bool {
		return l >= 1 && l <= len(src) && strings.Contains(src[l-1], text)
	}
	prev := 0
	for _, r := range f.Relationships {
		if r.Line <= prev {
			t.Errorf("relationship %s at line %d does not follow line %d", r, r.Line, prev)
		}
		prev = r.Line
		if want := r.Resource.String() + "#" + r.Relation; !holds(r.Line, want) {
			t.Errorf("relationship %s: line %d is %q", r, r.Line, src[r.Line-1])
		}
	}
	for _, list := range [][]Assertion{f.Assertions.True, f.Assertions.False, f.Assertions.Caveated} {
		for _, a := range list {
			if !holds(a.Line, a.Rel.Resource.String()) {
				t.Errorf("assertion %q: line %d does not hold it", a.Text, a.Line)
			}
		}
	}
	for _, e := range f.Validation {
		if !holds(e.Line, e.Resource.String()+"#"+e.Permission) {
			t.Errorf("expected %s#%s: line %d does not hold it", e.Resource, e.Permission, e.Line)
		}
		for _, s := range e.Subjects {
			if !holds(s.Line, s.Subject.Type+":"+s.Subject.ID) {
				t.Errorf("expected subject %q: line %d does not hold it", s.Text, s.Line)
			}
		}
	}
	if f.SchemaFile == "" && f.Schema != "" {
		for i, line := range strings.Split(f.Schema, "\n") {
			text := strings.TrimSpace(line)
			if text == "" {
				continue
			}
			col := indent(line) + 1
			file, l, c := f.SchemaPos(i+1, col)
			if file != f.Name || l < 1 || l > len(src) {
				t.Errorf("schema line %d %q: SchemaPos gives %s:%d", i+1, line, file, l)
				continue
			}
			if c == 0 {
				// A scalar on its key's line: no column, but the line holds it.
				if !strings.Contains(src[l-1], text) {
					t.Errorf("schema line %d %q: SchemaPos gives %s:%d, which is %q", i+1, line, file, l, src[l-1])
				}
				continue
			}
			// A folded (>) scalar may join source lines with a space, so the
			// source need only hold the start of the schema line.
			at := src[l-1][min(c-1, len(src[l-1])):]
			if at == "" || !strings.HasPrefix(text, strings.TrimSpace(at)) {
				t.Errorf("schema line %d col %d %q: SchemaPos gives %s:%d:%d, where the line reads %q", i+1, col, line, file, l, c, at)
			}
		}
	}
}
