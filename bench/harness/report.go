package harness

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

func fmtUS(us float64) string {
	switch {
	case us >= 1e6:
		return fmt.Sprintf("%.2fs", us/1e6)
	case us >= 1e3:
		return fmt.Sprintf("%.2fms", us/1e3)
	}
	return fmt.Sprintf("%.0fµs", us)
}

// WriteText prints results as a table. Runs that had errors or wrong
// answers are marked in the table and explained below it, with samples.
func WriteText(w io.Writer, results ...*Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "endpoint\top\tconc\tsecs\trequests\tok/s\tp50\tp95\tp99\tp99.9\tmax\terrors\tallowed\t")
	for _, r := range results {
		mark := ""
		if !r.OK {
			mark = " !"
		}
		allowed := "-"
		if r.Checks > 0 {
			allowed = fmt.Sprintf("%.1f%%", 100*r.AllowedFraction)
		}
		l := r.Latency
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t%d%s\t%s\t\n", r.Endpoint, r.Op, r.Concurrency, r.Seconds,
			r.Requests, r.PerSecond, fmtUS(l.P50), fmtUS(l.P95), fmtUS(l.P99), fmtUS(l.P999), fmtUS(l.Max), r.Errors, mark, allowed)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range results {
		if len(r.Kinds) > 0 {
			kinds := make([]string, 0, len(r.Kinds))
			for k := range r.Kinds {
				kinds = append(kinds, k)
			}
			slices.Sort(kinds)
			for _, k := range kinds {
				s := r.Kinds[k]
				fmt.Fprintf(w, "  %s %s: %d ok, p50 %s, p99 %s, max %s\n", r.Endpoint, k, s.Count, fmtUS(s.P50), fmtUS(s.P99), fmtUS(s.Max))
			}
		}
		if r.Results > 0 {
			fmt.Fprintf(w, "  %s: %d lookup results streamed\n", r.Endpoint, r.Results)
		}
		if r.Written > 0 && r.Written != r.Requests-r.Errors {
			fmt.Fprintf(w, "  %s: %d relationships written, %.0f/s\n", r.Endpoint, r.Written, r.WrittenPerSecond)
		}
		if l := r.BackgroundWriteLatency; l != nil {
			fmt.Fprintf(w, "  %s background writes: %d ok (%.0f/s, %d nesting edges), p50 %s, p99 %s, max %s; %d skipped behind schedule\n", r.Endpoint,
				r.BackgroundWrites, float64(r.BackgroundWrites)/max(r.Seconds, 1e-9), r.BackgroundNests, fmtUS(l.P50), fmtUS(l.P99), fmtUS(l.Max), r.BackgroundWritesSkipped)
		}
		if r.BackgroundWriteErrors > 0 {
			fmt.Fprintf(w, "WARNING %s: %d background writes failed (samples below)\n", r.Endpoint, r.BackgroundWriteErrors)
		}
		if r.Errors > 0 || r.BackgroundWriteErrors > 0 {
			fmt.Fprintf(w, "WARNING %s: %d of %d requests failed (%.2f%%); ok/s and latencies count successful requests only:\n",
				r.Endpoint, r.Errors, r.Requests, 100*float64(r.Errors)/float64(max(r.Requests, 1)))
			for _, s := range r.ErrorSamples {
				fmt.Fprintf(w, "    %s\n", s)
			}
		}
		if r.Mismatches > 0 {
			fmt.Fprintf(w, "WARNING %s: %d of %d checks with a known answer got another one:\n", r.Endpoint, r.Mismatches, r.Known)
			for _, s := range r.MismatchSamples {
				fmt.Fprintf(w, "    %s\n", s)
			}
		}
	}
	return nil
}

// WriteComparison prints both results and their ratios.
func WriteComparison(w io.Writer, c *Comparison) error {
	if err := WriteText(w, c.A, c.B); err != nil {
		return err
	}
	note := ""
	if !c.OK {
		note = "  (NOT comparable as measured: a run had errors or wrong answers, see above)"
	}
	_, err := fmt.Fprintf(w, "%s / %s over %d alternating rounds: ok/s ×%.2f, p50 ×%.2f, p99 ×%.2f%s\n",
		c.A.Endpoint, c.B.Endpoint, c.Rounds, c.PerSecondRatio, c.P50Ratio, c.P99Ratio, note)
	return err
}

// WriteLoad prints a load result.
func WriteLoad(w io.Writer, r *LoadResult) error {
	_, err := fmt.Fprintf(w, "%s: loaded %s: %d relationships in %.2fs (%.0f/s, %s; schema %s)\n", r.Endpoint, r.Workload,
		r.Relationships, r.Duration.Seconds(), r.PerSecond, r.Method, strings.TrimSpace(fmtUS(float64(r.Schema)/1e3)))
	return err
}
