package main

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"golang.org/x/term"
)

// progress reports a long transfer of relationships (import, export). On a
// terminal it keeps one line up to date, redrawn at most 10 times a second:
// the relationships so far, the rate and, when the total is known, the
// percent done and the time left. finish clears that line and prints a
// one-line summary; on anything but a terminal the summary is all it
// writes. Write errors are ignored: progress is a courtesy, not output.
type progress struct {
	w     io.Writer
	live  bool // draw the progress line (w is a terminal)
	now   func() time.Time
	verb  string // "import" or "export": "importing ...", "imported ..."
	total int64  // relationships expected; 0 when unknown

	start time.Time
	drawn time.Time // when the line was last drawn (start before the first)
	count int64
	shown bool // a progress line is on the screen
}

// progressEvery is the shortest time between two redraws.
const progressEvery = 100 * time.Millisecond

// clearLine returns the cursor to the start of the line and erases it.
const clearLine = "\r\x1b[K"

func newProgress(w io.Writer, live bool, now func() time.Time, verb string, total int64) *progress {
	t := now()
	return &progress{w: w, live: live, now: now, verb: verb, total: total, start: t, drawn: t}
}

// stderrProgress is a progress on stderr, live when stderr is a terminal.
func stderrProgress(stderr io.Writer, verb string, total int64) *progress {
	return newProgress(stderr, writerIsTerminal(stderr), time.Now, verb, total)
}

// writerIsTerminal reports whether w is a terminal.
func writerIsTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// add counts n more relationships and redraws the line if it is time to.
func (p *progress) add(n int) {
	p.count += int64(n)
	if !p.live {
		return
	}
	t := p.now()
	if t.Sub(p.drawn) < progressEvery {
		return
	}
	p.drawn = t
	p.shown = true
	fmt.Fprint(p.w, clearLine+p.line(t.Sub(p.start)))
}

// line is the progress line after elapsed.
func (p *progress) line(elapsed time.Duration) string {
	s := p.verb + "ing " + group(p.count)
	if p.total > 0 {
		s += " of " + group(p.total)
	}
	s += " relationships"
	if elapsed > 0 {
		s += ", " + group(int64(float64(p.count)/elapsed.Seconds())) + "/s"
	}
	if p.total > 0 {
		s += fmt.Sprintf(", %d%%", min(p.count*100/p.total, 100))
		if p.count > 0 && p.count < p.total {
			left := time.Duration(float64(elapsed) * float64(p.total-p.count) / float64(p.count))
			s += ", ETA " + left.Round(time.Second).String()
		}
	}
	return s
}

// clear erases the progress line, if one is shown; a failed transfer calls
// it before its error is printed.
func (p *progress) clear() {
	if p.shown {
		fmt.Fprint(p.w, clearLine)
		p.shown = false
	}
}

// finish clears the progress line and prints the summary.
func (p *progress) finish() {
	elapsed := p.now().Sub(p.start)
	p.clear()
	s := fmt.Sprintf("%sed %s relationships in %s", p.verb, group(p.count), roundElapsed(elapsed))
	if elapsed > 0 {
		s += " (" + group(int64(float64(p.count)/elapsed.Seconds())) + "/s)"
	}
	fmt.Fprintln(p.w, s)
}

// roundElapsed keeps three significant figures or so: 15ms, 1.53s, 2m3s.
func roundElapsed(d time.Duration) time.Duration {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond)
	case d < time.Minute:
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Second)
}

// group writes n with thousands separators: 1234567 is "1,234,567".
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}
