package validation

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// lineMap places each line of a scalar's value in the source. yaml.v3 gives
// the line of the scalar itself but not of the lines inside it, and block
// scalars differ: `|` keeps lines one for one, `>-` turns a blank source line
// into a newline and joins adjacent ones with a space. So instead of doing
// arithmetic per style, lineMap walks the source forward from the scalar's
// line, up to line end, and matches each value line (trimmed) against source
// lines (trimmed):
//
//   - an equal line is the match;
//   - a line that begins the value line followed by a space is a folded join;
//   - on the scalar's own line (a plain or quoted one-line scalar), a line
//     that contains the value line is the match.
//
// The walk only moves forward, so repeated lines map in order. A value line
// that cannot be found (escapes in a quoted string, say) maps to the scalar's
// line. Blank value lines map to 0.
func lineMap(src []string, n *yaml.Node, value string, end int) []int {
	vals := strings.Split(value, "\n")
	out := make([]int, len(vals))
	if end > len(src) || end <= 0 {
		end = len(src)
	}
	cur := n.Line
	for i, v := range vals {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		out[i] = n.Line
		for l := cur; l >= 1 && l <= end; l++ {
			s := strings.TrimSpace(src[l-1])
			if s == "" {
				continue
			}
			if s == v || strings.HasPrefix(v, s+" ") {
				out[i], cur = l, l+1
				break
			}
			if l == n.Line && strings.Contains(s, v) {
				out[i] = l
				break
			}
		}
	}
	return out
}

// column returns the 1-based column of text within source line l, or 0.
func column(src []string, l int, text string) int {
	if l < 1 || l > len(src) || text == "" {
		return 0
	}
	if i := strings.Index(src[l-1], text); i >= 0 {
		return i + 1
	}
	return 0
}
