package validation

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// lookahead bounds how far lineMap searches for one value line. In a block
// scalar the match is the next non-blank source line, or a few lines further
// when `>` folded lines together.
const lookahead = 256

// lineMap places each line of a scalar's value in the source. yaml.v3 gives
// the line of the scalar itself but not of the lines inside it, and block
// scalars differ: `|` keeps lines one for one, `>-` turns a blank source line
// into a newline and joins adjacent ones with a space. So instead of doing
// arithmetic per style, lineMap walks the source forward from the scalar's
// line, up to line end, and matches each value line (trimmed) against source
// lines (trimmed): an equal line is the match, and so is a line that begins
// the value line followed by a space (a folded join).
//
// The walk only moves forward, so repeated lines map in order. A value line
// not found within lookahead source lines maps to the scalar's line; the bound
// keeps the walk linear on hostile input. Plain and quoted scalars (whose
// escapes and folding hide the source lines) map wholly to the scalar's line.
// Blank value lines map to 0.
func lineMap(src []string, n *yaml.Node, value string, end int) []int {
	vals := strings.Split(value, "\n")
	out := make([]int, len(vals))
	block := n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0
	if end > len(src) || end <= 0 {
		end = len(src)
	}
	cur := n.Line + 1
	for i, v := range vals {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		out[i] = n.Line
		if !block {
			continue
		}
		for l := cur; l >= 1 && l <= end && l < cur+lookahead; l++ {
			s := strings.TrimSpace(src[l-1])
			if s == "" {
				continue
			}
			if s == v || len(v) > len(s) && v[len(s)] == ' ' && strings.HasPrefix(v, s) {
				out[i], cur = l, l+1
				break
			}
		}
	}
	return out
}

// column returns the 1-based column of text within source line l; when the
// line holds only the start of text (a folded join), the column where the
// line's text starts; 0 when l is not a line.
func column(src []string, l int, text string) int {
	if l < 1 || l > len(src) || text == "" {
		return 0
	}
	if i := strings.Index(src[l-1], text); i >= 0 {
		return i + 1
	}
	return indent(src[l-1]) + 1
}

// columnOffsets returns, for each value line that lineMap placed inside a
// block scalar, the difference between a column in the value line and the
// same column in the source line: the source indentation less the value's.
// Elsewhere it is -1.
func columnOffsets(src []string, n *yaml.Node, value string, lines []int) []int {
	vals := strings.Split(value, "\n")
	out := make([]int, len(vals))
	for i, v := range vals {
		out[i] = -1
		l := lines[i]
		if l <= n.Line || l > len(src) {
			continue
		}
		out[i] = indent(src[l-1]) - indent(v)
	}
	return out
}

func indent(s string) int { return len(s) - len(strings.TrimLeft(s, " \t")) }
