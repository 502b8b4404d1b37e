package console_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"google.golang.org/grpc/metadata"

	"github.com/ambit-authz/ambit/api"
	"github.com/ambit-authz/ambit/api/console"
	"github.com/ambit-authz/ambit/tuple"
)

// browser is one headless Chromium tab at 1280×800.
type browser struct {
	t         *testing.T
	ctx       context.Context
	artifacts string // screenshots go here
}

func newBrowser(t *testing.T) *browser {
	path := findBrowser(t, "chromium", []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"})
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 800), chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-gpu", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", path, err)
	}
	dir := os.Getenv("AMBIT_CONSOLE_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, ctx: ctx, artifacts: dir}
}

// do runs steps with a generous deadline (a loaded machine is slow).
func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v (page status: %q)", err, b.statusText())
	}
}

func (b *browser) statusText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.getElementById('status')||{}).textContent||''`))
	return s
}

// eval evaluates a JavaScript expression into T (awaiting a promise).
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript condition until it holds.
func (b *browser) waitFor(cond string) {
	b.t.Helper()
	b.do(chromedp.Action[chromedp.Void](func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(60*time.Second))(ctx, t)
		return chromedp.Void{}, err
	}))
}

func (b *browser) set(sel, value string) { b.do(chromedp.SetValue(chromedp.CSS(sel), value)) }
func (b *browser) click(sel string)      { b.do(chromedp.Click(chromedp.CSS(sel))) }

// confirm answers the console's confirmation dialog.
func (b *browser) confirm() {
	b.waitFor(`document.getElementById('confirm').open`)
	b.click("#confirm-ok")
}

func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.artifacts, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// signIn opens the console and signs in with key.
func (b *browser) signIn(url, key string) {
	b.navigate(url)
	signIn(b, key)
}

// The driver methods (browsers_test.go).
func (b *browser) navigate(url string)     { b.do(chromedp.Navigate(url)) }
func (b *browser) run(expr string)         { eval[chromedp.Void](b, expr) }
func (b *browser) text(expr string) string { return eval[string](b, expr) }

func (b *browser) page(name string) { showPage(b, name) }

// TestBrowserAdmin drives the console as an admin in headless Chromium:
// sign in, write a schema (checked first), create relationships, browse
// them, run a granted and a denied check and read the drawn graph, list who
// has access, and watch a change arrive live.
func TestBrowserAdmin(t *testing.T) {
	e := newEnv(t, envOptions{})
	b := newBrowser(t)
	b.signIn(e.url, adminKey)
	b.screenshot("signed-in")
	// Anything the page does from here that the Content-Security-Policy
	// blocks fails the test.
	defer watchCSP(b)(t)

	// Schema: a broken one shows its error at its line and column; the
	// good one checks clean and is written.
	b.page("schema")
	b.set("#schema-edit", "definition user {}\ndefinition doc {\n  relation viewer: usr\n}")
	b.click("#schema-check")
	b.waitFor(`document.querySelector('#schema-problems li.error')`)
	if line := eval[string](b, `document.querySelector('#schema-problems li.error').dataset.line`); line != "3" {
		t.Errorf("the compile error is placed on line %s, want 3 (relation viewer: usr)", line)
	}
	b.set("#schema-edit", testSchema)
	b.click("#schema-check")
	b.waitFor(`document.querySelector('#schema-problems li.ok')`)
	b.click("#schema-write")
	b.confirm()
	b.waitFor(`document.getElementById('status').textContent.startsWith('Schema written')`)
	// The view shows the written schema, highlighted: 4 definitions, 5
	// relations and 2 permissions are 11 keywords.
	b.waitFor(`document.querySelectorAll('#schema-view span.tok-kw').length === 11`)
	b.waitFor(`document.querySelectorAll('#schema-diagram g.def').length === 4`)
	if !eval[bool](b, `!!document.querySelector('#schema-diagram path[data-from="document#view"][data-to="folder#view"]')`) {
		t.Error("the schema diagram has no arrow edge document#view -> folder#view (parent->view)")
	}
	b.screenshot("schema")

	// Relationships: create, then browse.
	b.page("relationships")
	b.set("#rel-new", strings.Join(testRelationships, "\n"))
	b.click("#rel-write")
	b.confirm()
	b.waitFor(`document.getElementById('status').textContent.startsWith('Written at')`)
	b.set("#rel-type", "document")
	b.click("#rel-browse")
	b.waitFor(`document.querySelectorAll('#rel-table tbody tr').length === 3`)
	if n := eval[int](b, `document.querySelectorAll('#rel-table tbody button.danger').length`); n != 3 {
		t.Errorf("an admin sees %d delete buttons for 3 relationships", n)
	}
	b.screenshot("relationships")

	// Granted: ana views d1 through the folder and her group.
	grant := checkAnaGranted(t, runCheck(t, b, "document:d1", "view", "user:ana"))
	if slices.Contains(grant, "document:d1#banned -> document:d1#view") {
		t.Error("the ban that does not apply is drawn as granting")
	}
	if !strings.Contains(eval[string](b, `document.getElementById('check-text').textContent`), "group:lab#member@user:ana  (relationship)  HAS") {
		t.Error("the text explanation lacks the relationship that grants")
	}
	b.screenshot("check-granted")

	// Denied: eve has no route; every route ends in a missing relationship.
	checkEveDenied(t, runCheck(t, b, "document:d1", "view", "user:eve"))
	b.screenshot("check-denied")

	// Denied by the exclusion: dan is a viewer and banned.
	d := runCheck(t, b, "document:d1", "view", "user:dan")
	if d.Answer != "NO" {
		t.Fatalf("check answer %q, want NO", d.Answer)
	}
	if ex := d.edges("excluded"); !slices.Contains(ex, "document:d1#banned -> document:d1#view") {
		t.Errorf("the exclusion that denies dan is not drawn; excluded edges: %q", ex)
	}

	// Access: ana views d1 through the folder; dan is banned.
	b.page("access")
	b.set("#access-resource", "document:d1")
	b.click("#access-run")
	b.waitFor(`document.querySelectorAll('#access-table tbody tr').length > 0`)
	rows := eval[string](b, `[...document.querySelectorAll('#access-table tbody tr')].map(r => r.textContent).join('\n')`)
	if !strings.Contains(rows, "user:ana") || !strings.Contains(rows, "document:d1#parent@folder:f1") {
		t.Errorf("access rows lack ana's access through the folder:\n%s", rows)
	}
	if strings.Contains(rows, "user:dan") {
		t.Errorf("access rows list banned dan:\n%s", rows)
	}
	b.screenshot("access")

	// Keyboard only: the nav link, then the form's fields in tab order,
	// submitted with Enter.
	b.do(chromedp.Focus(chromedp.CSS(`#nav a[data-page="check"]`)), chromedp.KeyEvent(kb.Enter))
	b.waitFor(`!document.getElementById('page-check').hidden`)
	eval[chromedp.Void](b, `['check-resource','check-permission','check-subject'].forEach(id => document.getElementById(id).value = ''); document.getElementById('check-answer').removeAttribute('data-result')`)
	b.do(chromedp.Focus(chromedp.CSS("#check-resource")), chromedp.KeyEvent("document:d1"+kb.Tab+"view"+kb.Tab+"user:ana"+kb.Enter))
	b.waitFor(`document.getElementById('check-answer').dataset.result === 'HAS'`)

	// Live: the member is the leader, and a write made elsewhere shows up.
	b.page("live")
	b.waitFor(`[...document.querySelectorAll('#live-members tbody tr')].some(r => r.textContent.includes('leader'))`)
	b.waitFor(`document.querySelector('#live-metrics dd[data-metric="ambit_applied_revision"]')`)
	write(t, e, "document:d2#viewer@user:zoe")
	b.waitFor(`document.getElementById('live-watch').textContent.includes('document:d2#viewer@user:zoe')`)
	b.screenshot("live")

	// Delete with confirmation.
	b.page("relationships")
	b.set("#rel-type", "document")
	b.set("#rel-id", "d2")
	b.click("#rel-browse")
	b.waitFor(`document.querySelectorAll('#rel-table tbody button.danger').length === 1`)
	b.click("#rel-table tbody button.danger")
	b.confirm()
	b.waitFor(`document.getElementById('status').textContent.startsWith('Deleted')`)
	if rels := read(t, e, "document"); slices.Contains(rels, "document:d2#viewer@user:zoe") {
		t.Error("the deleted relationship is still stored")
	}
}

// TestBrowserReadOnly signs in with a managed API token holding only the
// check and read scopes (env.reader, issued by ambit.v1.TokenService): no
// write control is on any page, checks work, and a write forced from the
// page is refused and changes nothing. It runs twice: with the console's
// own scope check, and with that check taken out (scopesUnchecked), where
// the refusal is the gRPC API's scope check on the token the console
// forwards: its PermissionDenied, naming the missing scope, is the HTTP 403.
func TestBrowserReadOnly(t *testing.T) {
	for _, tc := range []struct {
		name     string
		wrapAuth func(*api.Authenticator) console.Authenticator
		// refusedBy is what each forced write's 403 names as needing the
		// scope: the console's endpoint, or the gRPC method it calls.
		refusedBy map[string]string
	}{
		{name: "console", refusedBy: map[string]string{
			"relationships/write": "POST /ui/api/relationships/write", "schema/write": "POST /ui/api/schema/write", "import": "POST /ui/api/import"}},
		{name: "grpc", wrapAuth: func(a *api.Authenticator) console.Authenticator { return scopesUnchecked{a} }, refusedBy: map[string]string{
			"relationships/write": "/authzed.api.v1.PermissionsService/WriteRelationships", "schema/write": "/authzed.api.v1.SchemaService/WriteSchema",
			"import": "/authzed.api.v1.PermissionsService/WriteRelationships"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{wrapAuth: tc.wrapAuth})
			if !strings.HasPrefix(e.reader, "ambit_") {
				t.Fatalf("the reader credential %q is not a managed API token", e.reader)
			}
			writeSchema(t, e, testSchema)
			write(t, e, testRelationships...)
			b := newBrowser(t)
			b.signIn(e.url, e.reader)
			if who := eval[string](b, `document.getElementById('who-name').textContent`); !strings.Contains(who, "console-reader") {
				t.Errorf("signed in as %q, want the token's name", who)
			}
			const writeControls = `document.querySelectorAll('#schema-write, #rel-write, #rel-new, #import-run, #import-schema, [data-needs="write"], [data-needs="schema"], #rel-table button.danger').length`
			for _, p := range []string{"schema", "relationships", "check", "access", "live"} {
				b.page(p)
				if n := eval[int](b, writeControls); n != 0 {
					t.Errorf("page %s shows %d write controls to a read-only token", p, n)
				}
			}
			b.page("relationships")
			b.set("#rel-type", "document")
			b.click("#rel-browse")
			b.waitFor(`document.querySelectorAll('#rel-table tbody tr').length === 3`)
			if n := eval[int](b, writeControls); n != 0 {
				t.Errorf("browsing shows %d write controls to a read-only token", n)
			}
			b.screenshot("read-only-" + tc.name)
			if d := runCheck(t, b, "document:d1", "view", "user:ana"); d.Answer != "HAS" {
				t.Errorf("a read-only token's check answers %q, want HAS", d.Answer)
			}
			// Forced writes, with the token the page holds.
			for _, c := range []struct{ path, body, scope string }{
				{"relationships/write", `{"operation":"create","relationships":["document:d9#viewer@user:mallory"]}`, "write"},
				{"relationships/write", `{"operation":"delete","relationships":["group:lab#member@user:ana"]}`, "write"},
				{"schema/write", `{"schema":"definition user {}"}`, "schema"},
				{"import", `{"file":"relationships: document:d9#viewer@user:mallory\n"}`, "write"},
			} {
				got := eval[string](b, fmt.Sprintf(`fetch('api/%s', {method: 'POST', headers: {'Authorization': 'Bearer ' + sessionStorage.getItem('ambit.console.token'),
					'Content-Type': 'application/json'}, body: %q}).then(async r => r.status + ' ' + (await r.json()).error)`, c.path, c.body))
				want := fmt.Sprintf(`lacks the %q scope, which %s needs`, c.scope, tc.refusedBy[c.path])
				if !strings.HasPrefix(got, "403 ") || !strings.Contains(got, want) || !strings.Contains(got, `"console-reader"`) {
					t.Errorf("a forced POST %s with a read-only token: %q, want 403 with %q", c.path, got, want)
				}
			}
			rels := read(t, e, "document")
			if slices.Contains(rels, "document:d9#viewer@user:mallory") {
				t.Error("a read-only token wrote a relationship")
			}
			if g := read(t, e, "group"); !slices.Contains(g, "group:lab#member@user:ana") {
				t.Error("a read-only token deleted a relationship")
			}
		})
	}
}

// Direct gRPC helpers, as the admin.

func adminCtx() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+adminKey), cancel
}

func writeSchema(t *testing.T, e *env, text string) {
	t.Helper()
	ctx, cancel := adminCtx()
	defer cancel()
	if _, err := v1.NewSchemaServiceClient(e.srv.Conn).WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: text}); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, e *env, rels ...string) {
	t.Helper()
	ctx, cancel := adminCtx()
	defer cancel()
	var ups []*v1.RelationshipUpdate
	for _, s := range rels {
		pb, err := api.RelationshipToV1(tuple.MustParse(s))
		if err != nil {
			t.Fatal(err)
		}
		ups = append(ups, &v1.RelationshipUpdate{Operation: v1.RelationshipUpdate_OPERATION_TOUCH, Relationship: pb})
	}
	if _, err := v1.NewPermissionsServiceClient(e.srv.Conn).WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: ups}); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, e *env, resourceType string) []string {
	t.Helper()
	ctx, cancel := adminCtx()
	defer cancel()
	stream, err := v1.NewPermissionsServiceClient(e.srv.Conn).ReadRelationships(ctx, &v1.ReadRelationshipsRequest{
		RelationshipFilter: &v1.RelationshipFilter{ResourceType: resourceType},
		Consistency:        &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		r, err := api.RelationshipFromV1(resp.GetRelationship())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r.String())
	}
	return out
}

// Without authentication configured (a loopback-only server) the console
// needs no sign-in and shows every control.
func TestBrowserNoAuth(t *testing.T) {
	e := newEnv(t, envOptions{keys: []string{}})
	b := newBrowser(t)
	b.do(chromedp.Navigate(e.url))
	b.waitFor(`!document.getElementById('nav').hidden`)
	if who := eval[string](b, `document.getElementById('who-name').textContent`); who != "no authentication" {
		t.Errorf("signed in as %q", who)
	}
	b.page("schema")
	if n := eval[int](b, `document.querySelectorAll('#schema-write, #rel-write, #import-run').length`); n != 3 {
		t.Errorf("%d of the 3 write controls shown without authentication", n)
	}
}
