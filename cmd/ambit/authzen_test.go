package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/api"
	"github.com/ambit-authz/ambit/internal/conformance"
)

// azPost sends body to the AuthZEN endpoint path with the bearer key and
// returns the status and the body.
func azPost(t *testing.T, base, path, key, body string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("X-Request-ID", "req-42")
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

// todoFile is a decisions-*.json file of the AuthZEN Todo interop.
type todoFile struct {
	Evaluation []struct {
		Request  json.RawMessage `json:"request"`
		Expected bool            `json:"expected"`
	} `json:"evaluation"`
	Evaluations []struct {
		Request  json.RawMessage `json:"request"`
		Expected []struct {
			Decision bool `json:"decision"`
		} `json:"expected"`
	} `json:"evaluations"`
}

// TestAuthZENConformanceTodo serves schema/examples/authzen-todo.yaml and checks
// every decision of every file of the AuthZEN Todo interop scenario over
// HTTP, as the interop harness does.
func TestAuthZENConformanceTodo(t *testing.T) {
	dir := os.Getenv(conformance.EnvVar)
	if dir == "" {
		t.Skip(conformance.EnvVar + " is not set; skipping the AuthZEN Todo interop")
	}
	files, err := filepath.Glob(filepath.Join(dir, "authzen", "todo", "decisions-*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no decisions-*.json under %s/authzen/todo (%v)", dir, err)
	}
	const key = "todo-key"
	addrs, _ := startServe(t, serveConfig{keys: []string{key}, bootstrapFile: filepath.Join("..", "..", "schema", "examples", "authzen-todo.yaml")})
	base := "http://" + addrs.http
	total, matched := 0, 0
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var f todoFile
		if err := json.Unmarshal(data, &f); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		name := filepath.Base(path)
		for i, e := range f.Evaluation {
			total++
			code, body, hdr := azPost(t, base, "/access/v1/evaluation", key, string(e.Request))
			var got struct {
				Decision *bool `json:"decision"`
			}
			if code != http.StatusOK || json.Unmarshal(body, &got) != nil || got.Decision == nil {
				t.Errorf("%s evaluation[%d]: status %d, body %s", name, i, code, body)
				continue
			}
			if hdr.Get("X-Request-ID") != "req-42" {
				t.Errorf("%s evaluation[%d]: X-Request-ID not echoed (%q)", name, i, hdr.Get("X-Request-ID"))
			}
			if *got.Decision != e.Expected {
				t.Errorf("%s evaluation[%d]: decision %v, want %v; request %s", name, i, *got.Decision, e.Expected, e.Request)
				continue
			}
			matched++
		}
		for i, e := range f.Evaluations {
			total++
			code, body, _ := azPost(t, base, "/access/v1/evaluations", key, string(e.Request))
			var got struct {
				Evaluations []struct {
					Decision bool `json:"decision"`
				} `json:"evaluations"`
			}
			if code != http.StatusOK || json.Unmarshal(body, &got) != nil {
				t.Errorf("%s evaluations[%d]: status %d, body %s", name, i, code, body)
				continue
			}
			ok := len(got.Evaluations) == len(e.Expected)
			for j := range e.Expected {
				ok = ok && got.Evaluations[j].Decision == e.Expected[j].Decision
			}
			if !ok {
				t.Errorf("%s evaluations[%d]: got %s, want %+v", name, i, body, e.Expected)
				continue
			}
			matched++
		}
	}
	t.Logf("AuthZEN Todo interop: %d/%d decisions match", matched, total)
	if matched != total || total != 123 {
		t.Fatalf("%d/%d decisions match (the three files hold 123)", matched, total)
	}
}

// TestAuthZENServeAuth: the AuthZEN endpoints take the gRPC API's keys.
func TestAuthZENServeAuth(t *testing.T) {
	addrs, _ := startServe(t, serveConfig{keys: []string{"k1"}, bootstrapFile: filepath.Join("..", "..", "schema", "examples", "authzen-todo.yaml"),
		authzen: api.AuthZENOptions{MaxBodyBytes: 4096}})
	base := "http://" + addrs.http
	body := `{"subject":{"type":"user","id":"rick@the-citadel.com"},"action":{"name":"can_read_todos"},"resource":{"type":"todo","id":"todo-1"}}`
	for _, tc := range []struct {
		key  string
		code int
	}{{"", http.StatusUnauthorized}, {"wrong", http.StatusForbidden}, {"k1", http.StatusOK}} {
		code, b, hdr := azPost(t, base, "/access/v1/evaluation", tc.key, body)
		if code != tc.code {
			t.Errorf("key %q: status %d (%s), want %d", tc.key, code, b, tc.code)
		}
		if hdr.Get("X-Request-ID") != "req-42" {
			t.Errorf("key %q: X-Request-ID not echoed", tc.key)
		}
	}
	// --authzen-max-body reaches the handler.
	big := `{"subject":{"type":"user","id":"rick"},"context":{"pad":"` + strings.Repeat("x", 5000) + `"}}`
	if code, b, _ := azPost(t, base, "/access/v1/evaluation", "k1", big); code != http.StatusBadRequest || !bytes.Contains(b, []byte("4096")) {
		t.Errorf("body over --authzen-max-body: status %d, %s", code, b)
	}
	code, b := httpGet(t, base+"/.well-known/authzen-configuration")
	if code != http.StatusOK || !strings.Contains(b, `"access_evaluations_endpoint":"`+base+`/access/v1/evaluations"`) {
		t.Errorf("discovery: %d %s", code, b)
	}
}

// TestAuthZENOverHTTPS: with --tls-cert and --tls-key the HTTP listener
// serves HTTPS with the gRPC port's certificate: a TLS client that trusts
// the CA gets decisions and a discovery document naming https URLs, over
// HTTP/1.1 and HTTP/2; a plain-HTTP request is refused.
func TestAuthZENOverHTTPS(t *testing.T) {
	_, certFile, keyFile, pool := testCA(t, t.TempDir())
	addrs, _ := startServe(t, serveConfig{keys: []string{"k1"}, tlsCert: certFile, tlsKey: keyFile,
		bootstrapFile: filepath.Join("..", "..", "schema", "examples", "authzen-todo.yaml")})
	base := "https://" + addrs.http
	body := `{"subject":{"type":"user","id":"rick@the-citadel.com"},"action":{"name":"can_read_todos"},"resource":{"type":"todo","id":"todo-1"}}`
	for _, proto := range []string{"http/1.1", "h2"} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, NextProtos: []string{proto}}, ForceAttemptHTTP2: proto == "h2"}
		c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
		req, err := http.NewRequest(http.MethodPost, base+api.AuthZENEvaluation, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer k1")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", proto, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.TLS == nil || strings.TrimSpace(string(b)) != `{"decision":true}` {
			t.Errorf("%s: status %d, TLS %v, body %s; want 200 over TLS with decision true", proto, resp.StatusCode, resp.TLS != nil, b)
		}
		if want := map[string]int{"http/1.1": 1, "h2": 2}[proto]; resp.ProtoMajor != want {
			t.Errorf("%s: answered over %s", proto, resp.Proto)
		}
		resp, err = c.Get(base + api.AuthZENConfiguration)
		if err != nil {
			t.Fatal(err)
		}
		b, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `"access_evaluation_endpoint":"`+base+api.AuthZENEvaluation+`"`) {
			t.Errorf("%s: discovery does not name %s: %s", proto, base, b)
		}
		tr.CloseIdleConnections()
	}
	if code, b := httpGet(t, "http://"+addrs.http+"/healthz"); code != http.StatusBadRequest {
		t.Errorf("plain HTTP to the HTTPS listener: %d %s, want 400", code, b)
	}
}
