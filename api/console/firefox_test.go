package console_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// bidi is a minimal WebDriver BiDi client: one headless Firefox, one
// session, commands sent one at a time over the websocket, and one
// browsing context (tab) the test drives.
type bidi struct {
	t       *testing.T
	ws      *websocket.Conn
	next    int
	context string // the tab's browsing context id
}

// bidiListening is what Firefox prints on stderr once its BiDi server is up.
var bidiListening = regexp.MustCompile(`WebDriver BiDi listening on (ws://[^\s]+)`)

// newFirefox starts headless Firefox with a fresh profile and its remote
// agent on a free loopback port, opens a BiDi session and finds its tab.
func newFirefox(t *testing.T) *bidi {
	path := findBrowser(t, "firefox-esr", []string{"firefox-esr", "firefox"})
	dir := t.TempDir()
	profile := filepath.Join(dir, "profile")
	if err := os.MkdirAll(profile, 0o755); err != nil {
		t.Fatal(err)
	}
	const origin = "http://127.0.0.1"
	cmd := exec.Command(path, "--headless", "--no-remote", "--profile", profile,
		"--remote-debugging-port", "0", "--remote-allow-origins", origin,
		"--width", "1280", "--height", "800", "about:blank")
	// A HOME of its own keeps Firefox away from the user's settings.
	cmd.Env = append(os.Environ(), "HOME="+dir, "MOZ_CRASHREPORTER_DISABLE=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})

	// Read stderr for the listening line; keep draining it afterwards so
	// Firefox never blocks on a full pipe.
	found := make(chan string, 1)
	var log strings.Builder
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if m := bidiListening.FindStringSubmatch(line); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			} else if log.Len() < 8192 {
				log.WriteString(line + "\n")
			}
		}
	}()
	var base string
	select {
	case base = <-found:
	case <-logged:
		t.Fatalf("%s exited before its WebDriver BiDi server listened; stderr:\n%s", path, log.String())
	case <-time.After(90 * time.Second):
		t.Fatalf("%s did not start its WebDriver BiDi server within 90s", path)
	}

	ws, err := websocket.Dial(strings.TrimSuffix(base, "/")+"/session", "", origin)
	if err != nil {
		t.Fatalf("connecting to Firefox's BiDi server at %s: %v", base, err)
	}
	b := &bidi{t: t, ws: ws}
	t.Cleanup(func() {
		// Ends the session and closes the browser; the kill above is the
		// fallback.
		_ = ws.SetDeadline(time.Now().Add(5 * time.Second))
		_ = websocket.JSON.Send(ws, map[string]any{"id": 1 << 30, "method": "browser.close", "params": map[string]any{}})
		ws.Close()
	})
	b.call("session.new", map[string]any{"capabilities": map[string]any{}})
	var tree struct {
		Contexts []struct {
			Context string `json:"context"`
		} `json:"contexts"`
	}
	b.callInto(&tree, "browsingContext.getTree", map[string]any{"maxDepth": 0})
	if len(tree.Contexts) > 0 {
		b.context = tree.Contexts[0].Context
	} else {
		var created struct {
			Context string `json:"context"`
		}
		b.callInto(&created, "browsingContext.create", map[string]any{"type": "tab"})
		b.context = created.Context
	}
	return b
}

// call sends one command and waits (at most a minute) for its answer,
// skipping any event in between; an error answer fails the test.
func (b *bidi) call(method string, params any) json.RawMessage {
	b.t.Helper()
	b.next++
	id := b.next
	if err := b.ws.SetDeadline(time.Now().Add(time.Minute)); err != nil {
		b.t.Fatal(err)
	}
	if err := websocket.JSON.Send(b.ws, map[string]any{"id": id, "method": method, "params": params}); err != nil {
		b.t.Fatalf("BiDi %s: sending: %v", method, err)
	}
	for {
		var msg struct {
			Type    string          `json:"type"`
			ID      *int            `json:"id"`
			Result  json.RawMessage `json:"result"`
			Error   string          `json:"error"`
			Message string          `json:"message"`
		}
		if err := websocket.JSON.Receive(b.ws, &msg); err != nil {
			b.t.Fatalf("BiDi %s: receiving: %v", method, err)
		}
		if msg.ID == nil || *msg.ID != id {
			continue // an event, or an answer to nothing we wait for
		}
		if msg.Type == "error" {
			b.t.Fatalf("BiDi %s: %s: %s", method, msg.Error, msg.Message)
		}
		return msg.Result
	}
}

func (b *bidi) callInto(into any, method string, params any) {
	b.t.Helper()
	if err := json.Unmarshal(b.call(method, params), into); err != nil {
		b.t.Fatalf("BiDi %s: decoding the answer: %v", method, err)
	}
}

// navigate loads url and waits for its load event.
func (b *bidi) navigate(url string) {
	b.t.Helper()
	b.call("browsingContext.navigate", map[string]any{"context": b.context, "url": url, "wait": "complete"})
}

// eval evaluates a JavaScript expression in the tab, awaiting a promise,
// and returns its value as a string: expressions here yield a string (or
// a boolean, returned as "true"/"false"). A thrown exception fails the
// test.
func (b *bidi) eval(expr string) string {
	b.t.Helper()
	var res struct {
		Type   string `json:"type"`
		Result struct {
			Type  string `json:"type"`
			Value any    `json:"value"`
		} `json:"result"`
		ExceptionDetails struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	b.callInto(&res, "script.evaluate", map[string]any{
		"expression": expr, "target": map[string]any{"context": b.context},
		"awaitPromise": true, "resultOwnership": "none"})
	if res.Type == "exception" {
		b.t.Fatalf("evaluating %s: %s", expr, res.ExceptionDetails.Text)
	}
	switch v := res.Result.Value.(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

// waitFor polls a JavaScript condition until it holds (at most a minute).
func (b *bidi) waitFor(cond string) {
	b.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for b.eval("!!("+cond+")") != "true" {
		if time.Now().After(deadline) {
			b.t.Fatalf("waited a minute for %s; page status: %q", cond, b.eval(`(document.getElementById('status')||{}).textContent||''`))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// set types value into the field sel as a user's edit does: the value,
// then an input event.
func (b *bidi) set(sel, value string) {
	b.t.Helper()
	b.eval(fmt.Sprintf(`(() => { const el = document.querySelector(%q); el.focus(); el.value = %q; el.dispatchEvent(new Event('input', {bubbles: true})); return '' })()`, sel, value))
}

func (b *bidi) click(sel string) {
	b.t.Helper()
	b.eval(fmt.Sprintf(`(() => { document.querySelector(%q).click(); return '' })()`, sel))
}

// The driver methods (browsers_test.go); navigate is above.
func (b *bidi) run(expr string)         { b.eval("(() => { (" + expr + "); return '' })()") }
func (b *bidi) text(expr string) string { return b.eval(expr) }

// TestFirefox drives the console's core flow in headless Firefox over
// WebDriver BiDi (issue #24 promises Chromium and Firefox): sign in with
// the admin key, run a granted check and read the drawn graph's nodes and
// granting edges, run a denied check and find its failing routes, with no
// Content-Security-Policy violation on the way.
func TestFirefox(t *testing.T) {
	b := newFirefox(t) // first: without Firefox the test skips before starting a server
	e := newEnv(t, envOptions{})
	writeSchema(t, e, testSchema)
	write(t, e, testRelationships...)

	b.navigate(e.url)
	defer watchCSP(b)(t)
	signIn(b, adminKey)
	if ua := b.eval(`navigator.userAgent`); !strings.Contains(ua, "Firefox/") {
		t.Fatalf("the browser is not Firefox: %q", ua)
	}

	// Granted: ana views d1 through the folder and her group.
	checkAnaGranted(t, runCheck(t, b, "document:d1", "view", "user:ana"))
	// The SVG is laid out: Firefox gives the drawn nodes a real size.
	if b.eval(`[...document.querySelectorAll('#check-graph g.gnode')].every(g => g.getBBox().width > 0)`) != "true" {
		t.Error("a graph node has no width in Firefox's layout")
	}

	// Denied: eve has no route; every route ends in a missing relationship.
	checkEveDenied(t, runCheck(t, b, "document:d1", "view", "user:eve"))
}
