package validation

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// collabDir holds the collaboration model and its validation file.
var collabDir = filepath.Join("..", "schema", "examples")

// ruleComment is a YAML comment naming the rule that the next assertions cover.
var ruleComment = regexp.MustCompile(`^\s*# rule: \S`)

// seedSource is how a rule comment names where its rule comes from.
var seedSource = regexp.MustCompile(`# rule: (omiq-collaboration\.txt|odm-groups\.txt|odm-users-and-permissions\.txt|model) — \S`)

// TestCollabValidationFile checks the shape of schema/examples/collab.yaml:
// it parses, carries collab.zed verbatim as its schema, has at least 200
// assertions of every kind, every `# rule:` comment names the seed page it
// comes from (or "model" for the model's own rules) and is followed by an
// assertion, and every rule has a positive assertion and a negative twin.
// Whether the assertions hold is the engine runner's job.
func TestCollabValidationFile(t *testing.T) {
	path := filepath.Join(collabDir, "collab.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	files, err := Parse(path, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 {
		t.Fatalf("%d documents, want 1", len(files))
	}
	f := files[0]
	src := splitLines(data)
	checkInvariants(t, f, len(src))
	checkLinesHoldText(t, f, src)

	zed, err := os.ReadFile(filepath.Join(collabDir, "collab.zed"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Schema != string(zed) {
		t.Errorf("the schema in collab.yaml differs from collab.zed")
	}

	a := f.Assertions
	if n := len(a.True) + len(a.False) + len(a.Caveated); n < 200 {
		t.Errorf("%d assertions, want at least 200", n)
	}
	if len(a.True) == 0 || len(a.False) == 0 || len(a.Caveated) == 0 {
		t.Errorf("want assertions of every kind: %d true, %d false, %d caveated", len(a.True), len(a.False), len(a.Caveated))
	}
	withContext := 0
	for _, list := range [][]Assertion{a.True, a.False, a.Caveated} {
		for _, as := range list {
			if as.Context != nil {
				withContext++
			}
		}
	}
	if withContext == 0 {
		t.Error("no assertion passes a caveat context")
	}
	if len(f.Validation) == 0 {
		t.Error("no validation map")
	}

	// Every rule comment is followed, after blank lines and other comments,
	// by an assertion.
	assertionAt := map[int]bool{}
	for _, list := range [][]Assertion{a.True, a.False, a.Caveated} {
		for _, as := range list {
			assertionAt[as.Line] = true
		}
	}
	kind := map[int]string{}
	for k, list := range map[string][]Assertion{"positive": a.True, "negative": a.False, "caveated": a.Caveated} {
		for _, as := range list {
			kind[as.Line] = k
		}
	}
	rules := map[string]bool{}
	kinds := map[string]map[string]int{} // rule -> assertions of each kind under it
	rule := ""
	for i, line := range src {
		if k, ok := kind[i+1]; ok && rule != "" {
			if kinds[rule] == nil {
				kinds[rule] = map[string]int{}
			}
			kinds[rule][k]++
		}
		if !ruleComment.MatchString(line) {
			continue
		}
		rule = strings.TrimSpace(line)
		rules[rule] = true
		if !seedSource.MatchString(rule) {
			t.Errorf("%s:%d: %q names no seed page (omiq-collaboration.txt, odm-groups.txt, odm-users-and-permissions.txt) nor \"model\"", path, i+1, rule)
		}
		next := i + 1
		for next < len(src) && (strings.TrimSpace(src[next]) == "" || strings.HasPrefix(strings.TrimSpace(src[next]), "#")) {
			next++
		}
		if !assertionAt[next+1] {
			t.Errorf("%s:%d: %q is not followed by an assertion", path, i+1, strings.TrimSpace(line))
		}
	}
	if len(rules) < 25 {
		t.Errorf("%d distinct rule comments, want one per rule (at least 25)", len(rules))
	}
	for r := range rules {
		if k := kinds[r]; k["positive"]+k["caveated"] == 0 || k["negative"] < k["positive"]+k["caveated"] {
			t.Errorf("rule %q: %d positive and %d caveated assertions, %d negative: want a negative twin for each", r, k["positive"], k["caveated"], k["negative"])
		}
	}
}
