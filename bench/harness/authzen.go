package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/ambit-authz/ambit/bench/workload"
	"github.com/ambit-authz/ambit/tuple"
)

// AuthZEN operations: the workload's queries sent to ambit's AuthZEN
// endpoints over HTTP/1.1 with keep-alive (Client.AuthZEN must be set).
const (
	// OpAuthZENEvaluation: one check per POST /access/v1/evaluation.
	OpAuthZENEvaluation Op = "authzen-evaluation"
	// OpAuthZENEvaluations: BulkSize checks per POST /access/v1/evaluations.
	OpAuthZENEvaluations Op = "authzen-evaluations"
	// OpAuthZENSearchResource: one LookupResources query per POST
	// /access/v1/search/resource, every page (LookupLimit per page, 0: the
	// server's default page).
	OpAuthZENSearchResource Op = "authzen-search-resource"
)

// AuthZENClient sends AuthZEN requests to one server.
type AuthZENClient struct {
	base  string
	token string
	http  *http.Client
}

// NewAuthZENClient returns a client of the AuthZEN endpoints at base
// ("http://host:port"), keeping up to conns connections alive.
func NewAuthZENClient(base, token string, conns int) *AuthZENClient {
	t := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute, ForceAttemptHTTP2: false}
	return &AuthZENClient{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{Transport: t, Timeout: time.Minute}}
}

func (c *AuthZENClient) post(ctx context.Context, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(data))
	}
	return json.Unmarshal(data, out)
}

func azSubject(s tuple.SubjectRef) map[string]any {
	m := map[string]any{"type": s.Type, "id": s.ID}
	if s.Relation != "" {
		m["properties"] = map[string]any{"relation": s.Relation}
	}
	return m
}

func azEvaluation(ch workload.Check) map[string]any {
	m := map[string]any{"subject": azSubject(ch.Subject), "action": map[string]any{"name": ch.Permission},
		"resource": map[string]any{"type": ch.Resource.Type, "id": ch.Resource.ID}}
	if ch.Context != nil {
		m["context"] = ch.Context
	}
	return m
}

type azDecision struct {
	Decision bool `json:"decision"`
}

// answeredAZ records an AuthZEN decision: true is allowed; false is denied,
// or conditional when the workload expects a conditional answer.
func (wk *worker) answeredAZ(ch workload.Check, allowed bool) {
	wk.checks++
	if allowed {
		wk.allowed++
	}
	if ch.Expect == workload.Unknown {
		return
	}
	wk.known++
	want := ch.Expect == workload.Allowed
	if allowed != want {
		wk.mismatches++
		wk.misSamples = addSamples(wk.misSamples, fmt.Sprintf("%s: got decision %v, want %s", ch, allowed, ch.Expect))
	}
}

func (wk *worker) doAuthZEN(ctx context.Context, op Op) error {
	c := wk.c.AuthZEN
	if c == nil {
		return fmt.Errorf("harness: %s needs the AuthZEN HTTP endpoint", op)
	}
	switch op {
	case OpAuthZENEvaluation:
		ch := wk.q.Check()
		var d azDecision
		if err := c.post(ctx, "/access/v1/evaluation", azEvaluation(ch), &d); err != nil {
			return err
		}
		wk.answeredAZ(ch, d.Decision)
	case OpAuthZENEvaluations:
		checks := make([]workload.Check, wk.cfg.BulkSize)
		items := make([]map[string]any, len(checks))
		for i := range checks {
			checks[i] = wk.q.Check()
			items[i] = azEvaluation(checks[i])
		}
		var out struct {
			Evaluations []struct {
				Decision bool           `json:"decision"`
				Context  map[string]any `json:"context"`
			} `json:"evaluations"`
		}
		if err := c.post(ctx, "/access/v1/evaluations", map[string]any{"evaluations": items}, &out); err != nil {
			return err
		}
		if len(out.Evaluations) != len(checks) {
			return fmt.Errorf("%d evaluations for %d items", len(out.Evaluations), len(checks))
		}
		for i, e := range out.Evaluations {
			if e.Context["error"] != nil {
				return fmt.Errorf("%w: %s: %v", errBulkItem, checks[i], e.Context["error"])
			}
			wk.answeredAZ(checks[i], e.Decision)
		}
	case OpAuthZENSearchResource:
		lr := wk.q.LookupResources()
		req := map[string]any{"subject": azSubject(lr.Subject), "action": map[string]any{"name": lr.Permission},
			"resource": map[string]any{"type": lr.ResourceType}}
		if lr.Context != nil {
			req["context"] = lr.Context
		}
		token := ""
		for {
			page := map[string]any{"token": token}
			if wk.cfg.LookupLimit > 0 {
				page["limit"] = wk.cfg.LookupLimit
			}
			req["page"] = page
			var out struct {
				Results []json.RawMessage `json:"results"`
				Page    struct {
					NextToken string `json:"next_token"`
				} `json:"page"`
			}
			if err := c.post(ctx, "/access/v1/search/resource", req, &out); err != nil {
				return err
			}
			wk.results += int64(len(out.Results))
			if out.Page.NextToken == "" {
				return nil
			}
			token = out.Page.NextToken
		}
	default:
		return fmt.Errorf("harness: operation %q cannot be sent", op)
	}
	return nil
}
