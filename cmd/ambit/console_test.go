package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/ambit-authz/ambit/api/console"
)

// consoleCall makes one /ui/api/ call on the HTTP listener at addr and
// decodes the JSON answer.
func consoleCall(t *testing.T, c *http.Client, base, key, path, body string) (int, map[string]any) {
	t.Helper()
	method := http.MethodGet
	var rd io.Reader
	if body != "" {
		method, rd = http.MethodPost, strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+"/ui/api/"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("%s %s: HTTP %d, not JSON: %q", method, path, resp.StatusCode, data)
	}
	return resp.StatusCode, out
}

// `ambit serve` serves the console on --http-addr; its calls reach the
// node's gRPC API over loopback (plaintext, and TLS pinned to --tls-cert)
// with the caller's key, and nothing answers without one.
func TestServeConsole(t *testing.T) {
	_, certFile, keyFile, pool := testCA(t, t.TempDir())
	for _, tc := range []struct {
		name      string
		cert, key string
	}{{name: "plaintext"}, {name: "tls", cert: certFile, key: keyFile}} {
		t.Run(tc.name, func(t *testing.T) {
			a, _ := startServe(t, serveConfig{keys: []string{"k"}, tlsCert: tc.cert, tlsKey: tc.key, console: consoleOptions{enabled: true}})
			// With --tls-cert the HTTP listener serves HTTPS too.
			client, base := http.DefaultClient, "http://"+a.http
			if tc.cert != "" {
				client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}}
				base = "https://" + a.http
			}
			resp, err := client.Get(base + "/ui/")
			if err != nil {
				t.Fatal(err)
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !bytes.Contains(page, []byte(`<script src="app.js" defer>`)) {
				t.Fatalf("GET /ui/: HTTP %d, %.200q", resp.StatusCode, page)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); csp != console.CSP {
				t.Errorf("GET /ui/: Content-Security-Policy %q", csp)
			}
			if code, _ := consoleCall(t, client, base, "", "whoami", ""); code != http.StatusUnauthorized {
				t.Errorf("whoami without a key: HTTP %d, want 401", code)
			}
			if code, _ := consoleCall(t, client, base, "wrong", "schema", ""); code == http.StatusOK {
				t.Errorf("schema with a wrong key: HTTP %d", code)
			}
			if code, out := consoleCall(t, client, base, "k", "schema/write", `{"schema":"definition user {}\ndefinition doc {\n  relation viewer: user\n  permission view = viewer\n}"}`); code != 200 {
				t.Fatalf("schema/write: HTTP %d %v", code, out)
			}
			if code, out := consoleCall(t, client, base, "k", "relationships/write", `{"operation":"create","relationships":["doc:d#viewer@user:ana"]}`); code != 200 {
				t.Fatalf("relationships/write: HTTP %d %v", code, out)
			}
			code, out := consoleCall(t, client, base, "k", "check", `{"resource":"doc:d","permission":"view","subject":"user:ana"}`)
			if code != 200 || out["permissionship"] != "HAS" {
				t.Fatalf("check: HTTP %d %v", code, out)
			}
			code, out = consoleCall(t, client, base, "k", "cluster", "")
			if code != 200 {
				t.Fatalf("cluster: HTTP %d %v", code, out)
			}
			ms, _ := out["members"].([]any)
			if len(ms) != 1 {
				t.Fatalf("cluster: members %v (error %v)", out["members"], out["error"])
			}
			m := ms[0].(map[string]any)
			if m["role"] != "leader" || m["applied"].(float64) < 2 || m["lag"].(float64) != 0 {
				t.Errorf("cluster member %v: want the leader, applied at least 2 (schema and write), lag 0", m)
			}
		})
	}
}

// --console=false serves no console.
func TestServeConsoleOff(t *testing.T) {
	a, _ := startServe(t, serveConfig{keys: []string{"k"}})
	if code, _ := httpGet(t, "http://"+a.http+"/ui/"); code != http.StatusNotFound {
		t.Errorf("GET /ui/ with the console off: HTTP %d, want 404", code)
	}
}

// The console's flags have their AMBIT_* twins.
func TestConsoleFlagsFromEnv(t *testing.T) {
	t.Setenv("AMBIT_CONSOLE", "false")
	t.Setenv("AMBIT_CONSOLE_MAX_BODY", "1024")
	t.Setenv("AMBIT_CONSOLE_TIMEOUT", "5s")
	cmd := newServeCmd()
	if err := cmd.Flags().Parse(nil); err != nil {
		t.Fatal(err)
	}
	if err := flagsFromEnv(cmd.Flags()); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"console": "false", "console-max-body": "1024", "console-timeout": "5s"} {
		if v := cmd.Flags().Lookup(name).Value.String(); v != want {
			t.Errorf("--%s = %q from the environment, want %q", name, v, want)
		}
	}
}
