package console_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
)

// The console's browser tests drive it in headless Chromium (chromedp,
// browser_test.go) and headless Firefox (WebDriver BiDi, firefox_test.go)
// through the driver below; the flows and checks both run are here.

// findBrowser finds a local browser by its binary names. Without one the
// test skips, unless AMBIT_REQUIRE_BROWSER is set (CI installs Debian's
// chromium and firefox-esr and sets it, so there a missing browser fails).
func findBrowser(t *testing.T, pkg string, names []string) string {
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("AMBIT_REQUIRE_BROWSER") != "" {
		t.Fatalf("no %s binary (%v) found and AMBIT_REQUIRE_BROWSER is set: install Debian's %s package", pkg, names, pkg)
	}
	t.Skipf("no %s binary (%v) on PATH: this browser test needs one; `apt-get install %s`", pkg, names, pkg)
	return ""
}

// driver is what the shared flows need of a browser tab. Every method
// fails the test on an error and waits generously (a loaded machine is
// slow).
type driver interface {
	navigate(url string)
	// waitFor polls a JavaScript condition until it holds.
	waitFor(cond string)
	// set types value into the field sel as a user's edit does.
	set(sel, value string)
	click(sel string)
	// run evaluates a JavaScript expression for its effect; text
	// evaluates one that yields a string (a promise is awaited).
	run(expr string)
	text(expr string) string
}

// signIn signs in with key on the console's sign-in page (already loaded).
func signIn(b driver, key string) {
	b.waitFor(`!document.getElementById('page-signin').hidden`)
	b.set("#signin-token", key)
	b.click("#signin-submit")
	b.waitFor(`!document.getElementById('nav').hidden`)
}

// showPage opens one of the console's pages.
func showPage(b driver, name string) {
	b.run(fmt.Sprintf(`location.hash = %q`, "#"+name))
	b.waitFor(fmt.Sprintf(`!document.getElementById('page-%s').hidden`, name))
}

// watchCSP records from now on what the page's Content-Security-Policy
// blocks (an inline style or script); the returned function fails t if
// anything was (the listener survives the console's hash navigations).
func watchCSP(b driver) func(t *testing.T) {
	b.run(`(window.cspViolations = [], document.addEventListener('securitypolicyviolation', e => cspViolations.push(e.violatedDirective + ' ' + e.blockedURI)))`)
	return func(t *testing.T) {
		if v := b.text(`JSON.stringify(window.cspViolations || ['the page was reloaded: violations lost'])`); v != "[]" {
			t.Errorf("Content-Security-Policy violations: %s", v)
		}
	}
}

// runCheck runs a check on the check page and reads the drawn graph.
func runCheck(t *testing.T, b driver, resource, permission, subject string) drawn {
	t.Helper()
	showPage(b, "check")
	b.run(`document.getElementById('check-answer').removeAttribute('data-result')`)
	b.set("#check-resource", resource)
	b.set("#check-permission", permission)
	b.set("#check-subject", subject)
	b.click("#check-run")
	b.waitFor(`document.getElementById('check-answer').dataset.result`)
	var d drawn
	if err := json.Unmarshal([]byte(b.text(readGraph)), &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// checkAnaGranted checks the graph of the granted check of
// testRelationships: ana views d1 through the folder and her group, and
// the granting edges draw that path.
func checkAnaGranted(t *testing.T, d drawn) []string {
	t.Helper()
	if d.Answer != "HAS" {
		t.Fatalf("check answer %q, want HAS", d.Answer)
	}
	for _, id := range []string{"user:ana", "group:lab#member", "folder:f1#viewer", "folder:f1#view", "document:d1#view"} {
		if !d.node(id) {
			t.Errorf("the graph has no node %s; nodes: %+v", id, d.Nodes)
		}
	}
	grant := d.edges("grant")
	for _, want := range []string{"user:ana -> group:lab#member", "group:lab#member -> folder:f1#viewer",
		"folder:f1#viewer -> folder:f1#view", "folder:f1#view -> document:d1#view"} {
		if !slices.Contains(grant, want) {
			t.Errorf("the granting path lacks %s; granting edges: %q", want, grant)
		}
	}
	return grant
}

// checkEveDenied checks the graph of the denied check: eve has no route,
// and every route ends in a missing relationship.
func checkEveDenied(t *testing.T, d drawn) {
	t.Helper()
	if d.Answer != "NO" {
		t.Fatalf("check answer %q, want NO", d.Answer)
	}
	if g := d.edges("grant"); len(g) != 0 {
		t.Errorf("a denied check draws granting edges %q", g)
	}
	missing := d.edges("missing")
	for _, want := range []string{"user:eve -> document:d1#viewer", "user:eve -> folder:f1#viewer"} {
		if !slices.Contains(missing, want) {
			t.Errorf("the failed routes lack the missing relationship %s; missing: %q", want, missing)
		}
	}
}

const testSchema = `definition user {}

definition group {
	relation member: user | group#member
}

definition folder {
	relation viewer: user | group#member
	permission view = viewer
}

definition document {
	relation parent: folder
	relation viewer: user | group#member
	relation banned: user
	permission view = (viewer + parent->view) - banned
}`

var testRelationships = []string{
	"group:lab#member@user:ana",
	"folder:f1#viewer@group:lab#member",
	"document:d1#parent@folder:f1",
	"document:d1#viewer@user:dan",
	"document:d1#banned@user:dan",
}

// drawn is the check graph as the SVG holds it.
type drawn struct {
	Answer string `json:"answer"`
	Nodes  []struct {
		ID     string `json:"id"`
		Result string `json:"result"`
		Role   string `json:"role"`
	} `json:"nodes"`
	Edges []struct {
		From  string `json:"from"`
		To    string `json:"to"`
		State string `json:"state"`
	} `json:"edges"`
}

func (d drawn) node(id string) bool {
	return slices.ContainsFunc(d.Nodes, func(n struct {
		ID     string `json:"id"`
		Result string `json:"result"`
		Role   string `json:"role"`
	}) bool {
		return n.ID == id
	})
}

// edges lists "from -> to" of the edges in state.
func (d drawn) edges(state string) []string {
	var out []string
	for _, e := range d.Edges {
		if e.State == state {
			out = append(out, e.From+" -> "+e.To)
		}
	}
	return out
}

const readGraph = `JSON.stringify({
	answer: document.getElementById('check-answer').dataset.result || '',
	nodes: [...document.querySelectorAll('#check-graph g.gnode')].map(g => ({id: g.dataset.id, result: g.dataset.result, role: g.dataset.role})),
	edges: [...document.querySelectorAll('#check-graph g.edge')].map(g => ({from: g.dataset.from, to: g.dataset.to, state: g.dataset.state})),
})`
