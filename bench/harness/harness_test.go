package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/bench/workload"
	"github.com/ambit-authz/ambit/tuple"
)

func loaded(t *testing.T, f *fake, w *workload.Workload) *Client {
	t.Helper()
	c := startFake(t, f)
	res, err := Load(context.Background(), c, w, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Relationships != int64(w.Len()) {
		t.Fatalf("loaded %d relationships, want %d", res.Relationships, w.Len())
	}
	return c
}

func short(op Op) Config {
	return Config{Op: op, Concurrency: 3, Duration: 300 * time.Millisecond, Warmup: 50 * time.Millisecond, Seed: 1}
}

func TestLoadImportsOrFallsBack(t *testing.T) {
	w := workload.MustNew("deep", workload.Small, 1)
	for _, noImport := range []bool{false, true} {
		f := &fake{noImport: noImport}
		c := startFake(t, f)
		res, err := Load(context.Background(), c, w, LoadOptions{Batch: 2000})
		if err != nil {
			t.Fatal(err)
		}
		want := map[bool]string{false: "ImportBulkRelationships", true: "WriteRelationships"}[noImport]
		if res.Method != want || res.Relationships != int64(w.Len()) || len(f.rels) != w.Len() {
			t.Errorf("noImport=%v: %s, %d relationships reported, %d stored, want %s and %d", noImport, res.Method,
				res.Relationships, len(f.rels), want, w.Len())
		}
		if got, _ := f.sawToken.Load().(string); got != "Bearer sekret" {
			t.Errorf("authorization header %q", got)
		}
	}
}

func TestEveryOpRuns(t *testing.T) {
	for _, name := range []string{"deep", "caveats"} {
		w := workload.MustNew(name, workload.Small, 1)
		f := &fake{}
		c := loaded(t, f, w)
		startAuthZENFake(t, f, c)
		for _, op := range Ops {
			r, err := Run(context.Background(), c, w, short(op))
			if err != nil {
				t.Fatal(err)
			}
			if r.Requests == 0 || !r.OK || r.Errors != 0 {
				t.Fatalf("%s %s: %d requests, %d errors %v, %d mismatches %v", name, op, r.Requests, r.Errors, r.ErrorSamples, r.Mismatches, r.MismatchSamples)
			}
			if r.Latency.Count != uint64(r.Requests) || r.Latency.P50 <= 0 || r.Latency.P50 > r.Latency.P99 || r.Latency.P99 > r.Latency.Max {
				t.Errorf("%s %s: latency %+v for %d requests", name, op, r.Latency, r.Requests)
			}
			switch op {
			case OpCheck, OpCheckBulk, OpAuthZENEvaluation, OpAuthZENEvaluations:
				// The queries are drawn to be allowed about half the time: within
				// 0.3–0.7, widened by four standard deviations of a fair coin
				// over this many checks (a short run on a loaded machine makes few).
				slack := 2 / math.Sqrt(float64(max(r.Checks, int64(1))))
				if r.Checks < r.Requests || r.AllowedFraction < 0.3-slack || r.AllowedFraction > 0.7+slack || r.Known == 0 {
					t.Errorf("%s %s: %d checks, allowed %.2f, %d known", name, op, r.Checks, r.AllowedFraction, r.Known)
				}
			case OpLookupResources, OpLookupSubjects, OpAuthZENSearchResource:
				if r.Results == 0 {
					t.Errorf("%s %s: no lookup results", name, op)
				}
			case OpMixed:
				// 95 % of a mix is checks: with n requests all are checks with
				// probability 0.95^n, so only a run of 200+ requests (0.004 %)
				// must show a second kind; a loaded machine may do fewer.
				if r.Checks == 0 || (r.Requests >= 200 && len(r.Kinds) < 2) {
					t.Errorf("%s mixed: %d requests, %d checks, kinds %v", name, r.Requests, r.Checks, r.Kinds)
				}
			}
		}
	}
}

// Write runs with --batch N send N distinct TOUCHes per request and count
// the relationships written.
func TestWriteBatch(t *testing.T) {
	w := workload.MustNew("deep", workload.Small, 1)
	f := &fake{}
	c := loaded(t, f, w)
	cfg := short(OpWrite)
	cfg.Warmup, cfg.WriteBatch = 0, 25
	r, err := Run(context.Background(), c, w, cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	sizes, written := f.writeSizes, f.written
	f.mu.Unlock()
	if !r.OK || r.Requests == 0 || len(sizes) != int(r.Requests) {
		t.Fatalf("%d requests (server saw %d), ok %v, errors %v", r.Requests, len(sizes), r.OK, r.ErrorSamples)
	}
	if r.Written != 25*r.Requests || r.WrittenPerSecond <= r.PerSecond {
		t.Errorf("written %d (%.0f/s) for %d requests (%.0f/s), want 25 per request", r.Written, r.WrittenPerSecond, r.Requests, r.PerSecond)
	}
	// The fake appends each request's updates in one piece.
	at := len(written) - 25*len(sizes)
	for i, n := range sizes {
		if n != 25 {
			t.Fatalf("request %d had %d updates, want 25", i, n)
		}
		seen := map[string]bool{}
		for _, rel := range written[at : at+n] {
			if seen[rel.String()] {
				t.Fatalf("request %d names %s twice", i, rel)
			}
			seen[rel.String()] = true
		}
		at += n
	}
	var out bytes.Buffer
	if err := WriteText(&out, r); err != nil {
		t.Fatal(err)
	}
	if want := " relationships written, "; !strings.Contains(out.String(), want) {
		t.Errorf("report lacks %q:\n%s", want, out.String())
	}
}

// A run with errors says so in every output, and its rate counts only
// successful requests.
func TestErrorsAreReported(t *testing.T) {
	w := workload.MustNew("deep", workload.Small, 1)
	c := loaded(t, &fake{failEvery: 4}, w)
	r, err := Run(context.Background(), c, w, short(OpCheck))
	if err != nil {
		t.Fatal(err)
	}
	if r.OK || r.Errors == 0 || len(r.ErrorSamples) == 0 || !strings.Contains(r.ErrorSamples[0], "Unavailable") {
		t.Fatalf("ok=%v errors=%d samples=%v", r.OK, r.Errors, r.ErrorSamples)
	}
	if r.Latency.Count != uint64(r.Requests-r.Errors) {
		t.Errorf("latency counts %d, successful requests %d", r.Latency.Count, r.Requests-r.Errors)
	}
	var text bytes.Buffer
	if err := WriteText(&text, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "WARNING") || !strings.Contains(text.String(), "failed") {
		t.Errorf("text report hides the errors:\n%s", text.String())
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back["ok"] != false || back["errors"].(float64) == 0 {
		t.Errorf("JSON report hides the errors: %s", b)
	}
}

// Wrong answers to checks known by construction are caught.
func TestMismatchesAreReported(t *testing.T) {
	w := workload.MustNew("wide", workload.Small, 1)
	c := loaded(t, &fake{invert: true}, w)
	r, err := Run(context.Background(), c, w, short(OpCheck))
	if err != nil {
		t.Fatal(err)
	}
	if r.OK || r.Mismatches == 0 || r.Mismatches != r.Known {
		t.Fatalf("ok=%v mismatches=%d known=%d", r.OK, r.Mismatches, r.Known)
	}
	var text bytes.Buffer
	WriteText(&text, r)
	if !strings.Contains(text.String(), "got another one") {
		t.Errorf("text report hides the mismatches:\n%s", text.String())
	}
}

func TestCompare(t *testing.T) {
	w := workload.MustNew("deep", workload.Small, 1)
	a, b := loaded(t, &fake{}, w), loaded(t, &fake{failEvery: 3}, w)
	b.Endpoint = "fake-b"
	cfg := short(OpCheck)
	cfg.Duration = 400 * time.Millisecond
	cmp, err := Compare(context.Background(), a, b, w, cfg, 2)
	if err != nil {
		t.Fatal(err)
	}
	if cmp.A.Requests == 0 || cmp.B.Requests == 0 || cmp.PerSecondRatio <= 0 || cmp.OK {
		t.Fatalf("a %d requests, b %d, ratio %.2f, ok %v", cmp.A.Requests, cmp.B.Requests, cmp.PerSecondRatio, cmp.OK)
	}
	if cmp.A.Seconds < 0.38 {
		t.Errorf("a measured for %.2fs over two rounds of 0.2s", cmp.A.Seconds)
	}
	var text bytes.Buffer
	if err := WriteComparison(&text, cmp); err != nil {
		t.Fatal(err)
	}
	if s := text.String(); !strings.Contains(s, "alternating rounds") || !strings.Contains(s, "NOT comparable") {
		t.Errorf("comparison output:\n%s", s)
	}
}

func TestProgressLine(t *testing.T) {
	w := workload.MustNew("deep", workload.Small, 1)
	c := loaded(t, &fake{}, w)
	var buf syncBuffer
	cfg := short(OpCheck)
	cfg.Duration, cfg.Warmup, cfg.Progress = 1200*time.Millisecond, 0, &buf
	if _, err := Run(context.Background(), c, w, cfg); err != nil {
		t.Fatal(err)
	}
	if s := buf.String(); !strings.Contains(s, "\rfake check: 1s/1s") || !strings.HasSuffix(s, "\r\x1b[K") {
		t.Errorf("progress output %q", s)
	}
}

func TestConfigErrors(t *testing.T) {
	w := workload.MustNew("deep", workload.Small, 1)
	c := startFake(t, &fake{})
	for _, cfg := range []Config{{Op: "nope"}, {Op: OpCheck, Consistency: "sometimes"}} {
		if _, err := Run(context.Background(), c, w, cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}

// A run with --write-rate sends writes beside its workers, reported apart;
// nesting writes add fresh groups under the workload's groups and delete
// them again, oldest first.
func TestBackgroundWrites(t *testing.T) {
	w := workload.MustNew("deep", workload.Small, 1)
	f := &fake{}
	c := loaded(t, f, w)
	cfg := short(OpCheck)
	cfg.Warmup, cfg.WriteRate, cfg.NestFraction = 0, 200, 1
	r, err := Run(context.Background(), c, w, cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	written, deleted := f.touched, f.deleted
	f.mu.Unlock()
	if !r.OK || r.Checks == 0 {
		t.Fatalf("ok %v, %d checks, errors %v", r.OK, r.Checks, r.ErrorSamples)
	}
	if r.BackgroundWrites < 2 || r.BackgroundNests != r.BackgroundWrites || r.BackgroundWriteLatency == nil {
		t.Fatalf("%d background writes, %d nesting, latency %v; want at least 2, all nesting", r.BackgroundWrites, r.BackgroundNests, r.BackgroundWriteLatency)
	}
	if int64(len(written)+len(deleted)) != r.BackgroundWrites {
		t.Fatalf("the server saw %d touches and %d deletes for %d writes", len(written), len(deleted), r.BackgroundWrites)
	}
	for i, rel := range written {
		if rel.Resource.Type != "group" || rel.Subject.Type != "group" || rel.Subject.Relation != "member" || !strings.HasPrefix(rel.Subject.ID, "bench-nest-") {
			t.Fatalf("touch %d is no nesting edge: %s", i, rel)
		}
	}
	// Every delete names an edge the server holds (the fake refuses
	// others: an edge whose touch was still in flight), once.
	if len(deleted) == 0 {
		t.Fatal("no nesting edge was deleted")
	}
	gone := map[tuple.Key]bool{}
	for i, rel := range deleted {
		if gone[rel.Key()] || !slices.Contains(written, rel) {
			t.Fatalf("delete %d of %s: deleted before, or never written", i, rel)
		}
		gone[rel.Key()] = true
	}
	if r.Requests != r.Checks {
		t.Errorf("%d requests for %d checks: the writes were counted as the run's requests", r.Requests, r.Checks)
	}
	var out bytes.Buffer
	if err := WriteText(&out, r); err != nil {
		t.Fatal(err)
	}
	if want := " background writes: "; !strings.Contains(out.String(), want) {
		t.Errorf("report lacks %q:\n%s", want, out.String())
	}
}
