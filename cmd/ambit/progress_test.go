package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func TestProgressLine(t *testing.T) {
	var buf bytes.Buffer
	clock := newFakeClock()
	p := newProgress(&buf, true, clock.now, "import", 10_000)

	clock.advance(50 * time.Millisecond)
	p.add(100)
	if buf.Len() != 0 {
		t.Fatalf("drawn before 100ms had passed: %q", buf.String())
	}
	clock.advance(950 * time.Millisecond)
	p.add(1900)
	want := clearLine + "importing 2,000 of 10,000 relationships, 2,000/s, 20%, ETA 4s"
	if buf.String() != want {
		t.Fatalf("line = %q, want %q", buf.String(), want)
	}
	buf.Reset()
	clock.advance(4 * time.Second)
	p.add(8000)
	if want := clearLine + "importing 10,000 of 10,000 relationships, 2,000/s, 100%"; buf.String() != want {
		t.Fatalf("line at the end = %q, want %q", buf.String(), want)
	}
	buf.Reset()
	p.finish()
	if want := clearLine + "imported 10,000 relationships in 5s (2,000/s)\n"; buf.String() != want {
		t.Fatalf("finish = %q, want %q", buf.String(), want)
	}
}

func TestProgressExportHasNoPercent(t *testing.T) {
	var buf bytes.Buffer
	clock := newFakeClock()
	p := newProgress(&buf, true, clock.now, "export", 0)
	clock.advance(2 * time.Second)
	p.add(5000)
	if want := clearLine + "exporting 5,000 relationships, 2,500/s"; buf.String() != want {
		t.Fatalf("line = %q, want %q", buf.String(), want)
	}
}

// The line is redrawn at most every 100ms however often add is called.
func TestProgressThrottle(t *testing.T) {
	var buf bytes.Buffer
	clock := newFakeClock()
	p := newProgress(&buf, true, clock.now, "import", 1000)
	for range 100 { // one second in steps of 10ms
		clock.advance(10 * time.Millisecond)
		p.add(1)
	}
	if n := strings.Count(buf.String(), clearLine); n != 10 {
		t.Fatalf("%d redraws in one second, want 10:\n%q", n, buf.String())
	}
	for range 5 { // bursts within one 100ms window
		p.add(1)
	}
	if n := strings.Count(buf.String(), clearLine); n != 10 {
		t.Fatalf("%d redraws after a burst at the same instant, want still 10", n)
	}
}

// A transfer shorter than one redraw interval prints only the summary.
func TestProgressQuick(t *testing.T) {
	var buf bytes.Buffer
	clock := newFakeClock()
	p := newProgress(&buf, true, clock.now, "import", 3)
	clock.advance(15 * time.Millisecond)
	p.add(3)
	p.finish()
	if want := "imported 3 relationships in 15ms (200/s)\n"; buf.String() != want {
		t.Fatalf("output = %q, want %q", buf.String(), want)
	}
}

func TestProgressNotATerminal(t *testing.T) {
	var buf bytes.Buffer
	clock := newFakeClock()
	p := newProgress(&buf, false, clock.now, "import", 1000)
	for range 30 {
		clock.advance(100 * time.Millisecond)
		p.add(33)
	}
	p.clear()
	p.finish()
	if want := "imported 990 relationships in 3s (330/s)\n"; buf.String() != want {
		t.Fatalf("output = %q, want only the summary %q", buf.String(), want)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, w := range []io.Writer{&buf, f} {
		if writerIsTerminal(w) {
			t.Errorf("%T counts as a terminal", w)
		}
	}
}

func TestGroup(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 123456: "123,456", 1234567: "1,234,567", -1234: "-1,234"} {
		if got := group(n); got != want {
			t.Errorf("group(%d) = %q, want %q", n, got, want)
		}
	}
}

// import and export through the commands: stderr (not a terminal here) gets
// the one-line summary and no progress line.
func TestImportExportSummary(t *testing.T) {
	a, _ := startServe(t, serveConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli := func(args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		err := run(ctx, append(args, "--endpoint", a.grpc), &out, &errOut)
		return out.String(), errOut.String(), err
	}
	schemaFile := writeFile(t, "s.zed", "definition user {}\ndefinition doc {\n\trelation viewer: user\n}\n")
	if _, _, err := cli("schema", "write", schemaFile); err != nil {
		t.Fatal(err)
	}
	var rels strings.Builder
	for i := range 2500 {
		fmt.Fprintf(&rels, "doc:d%d#viewer@user:u%d\n", i, i%7)
	}
	relFile := writeFile(t, "rels.txt", rels.String())
	summary := regexp.MustCompile(`^(im|ex)ported 2,500 relationships in [0-9.]+[mµn]?s( \([0-9,]+/s\))?\n$`)

	out, errOut, err := cli("import", relFile)
	if err != nil || out != "imported 2500 relationships\n" || !summary.MatchString(errOut) {
		t.Fatalf("import: %v\nstdout %q\nstderr %q", err, out, errOut)
	}
	out, errOut, err = cli("export", "--consistency", "full")
	if err != nil || strings.Count(out, "\n") != 2500 || !summary.MatchString(errOut) || !strings.HasPrefix(errOut, "exported") {
		t.Fatalf("export: %v\n%d lines on stdout\nstderr %q", err, strings.Count(out, "\n"), errOut)
	}
}
