package workload

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteValidationFile writes the workload as a SpiceDB validation file
// (`schema:`, `relationships:` and, when assertions > 0, `assertions:`
// drawn from 4×assertions generated checks: those whose answer is known by
// construction, up to assertions each of assertTrue, assertFalse and
// assertCaveated), which `ambit validate` and `zed validate` can load.
func (w *Workload) WriteValidationFile(out io.Writer, assertions int) error {
	bw := bufio.NewWriterSize(out, 1<<16)
	bw.WriteString("schema: |-\n")
	for line := range strings.SplitSeq(strings.TrimRight(w.Schema(), "\n"), "\n") {
		if line == "" {
			bw.WriteString("\n")
			continue
		}
		bw.WriteString("  ")
		// YAML indentation must be spaces; keep the schema's tabs as spaces.
		for strings.HasPrefix(line, "\t") {
			bw.WriteString("  ")
			line = line[1:]
		}
		bw.WriteString(line)
		bw.WriteString("\n")
	}
	bw.WriteString("relationships: |-\n")
	for r := range w.Relationships() {
		bw.WriteString("  ")
		bw.WriteString(r.String())
		bw.WriteString("\n")
	}
	if assertions > 0 {
		lists := map[Expect][]string{}
		q := w.Queries(w.Seed)
		for range assertions * 4 {
			c := q.Check()
			if c.Expect == Unknown || len(lists[c.Expect]) >= assertions {
				continue
			}
			s := c.String()
			if len(c.Context) > 0 {
				b, err := json.Marshal(c.Context)
				if err != nil {
					return fmt.Errorf("workload: assertion context: %w", err)
				}
				s += " with " + string(b)
			}
			lists[c.Expect] = append(lists[c.Expect], s)
		}
		bw.WriteString("assertions:\n")
		for _, k := range []struct {
			e   Expect
			key string
		}{{Allowed, "assertTrue"}, {Denied, "assertFalse"}, {Conditional, "assertCaveated"}} {
			if len(lists[k.e]) == 0 {
				continue
			}
			fmt.Fprintf(bw, "  %s:\n", k.key)
			for _, s := range lists[k.e] {
				fmt.Fprintf(bw, "    - '%s'\n", strings.ReplaceAll(s, "'", "''"))
			}
		}
	}
	return bw.Flush()
}
