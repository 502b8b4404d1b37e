package main

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
)

// `ambit check --explain` asks the server for the check with with_tracing
// and prints its debug trace (see api/trace.go) as a tree: one line per
// sub-problem, "resource#permission  RESULT", and one per relationship a
// sub-problem relied on, "resource#relation@subject  (relationship)":
//
//	document:d1#view  HAS_PERMISSION
//	├── document:d1#viewer  HAS_PERMISSION
//	│   └── group:lab#member  HAS_PERMISSION
//	│       └── group:lab#member@user:ana  (relationship)
//	└── document:d1#banned  NO_PERMISSION
//
// A conditional node names the missing context; a caveated relationship
// shows its caveat, the context it was evaluated with and the outcome.
// Under a node that grants (or conditionally grants) the permission, a
// NO_PERMISSION branch is folded to its own line (… marks hidden
// sub-problems) and dimmed on a terminal; --all unfolds it. Under a
// NO_PERMISSION node every branch is shown, since together they are why the
// check failed. --json prints the whole response, debug_trace included
// (with durations), as protobuf JSON.

// explainText renders the debug trace of r, or says the server sent none.
func explainText(r *v1.CheckPermissionResponse, all, dim bool) (string, error) {
	trace := r.GetDebugTrace().GetCheck()
	if trace == nil {
		return "", errors.New("the server returned no debug trace (does it support with_tracing?)")
	}
	return strings.TrimSuffix(renderExplain(trace, explainStyle{all: all, dim: dim}), "\n"), nil
}

// dimOutput reports whether w is a terminal (a character device) and NO_COLOR
// is unset.
func dimOutput(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// explainStyle says how renderExplain draws a trace.
type explainStyle struct {
	all bool // unfold NO_PERMISSION branches under granting nodes
	dim bool // dim NO_PERMISSION lines with ANSI escapes
}

const (
	ansiDim   = "\x1b[2m"
	ansiReset = "\x1b[0m"
)

// renderExplain draws a check's debug trace as a tree, one line per node.
func renderExplain(t *v1.CheckDebugTrace, style explainStyle) string {
	var b strings.Builder
	var walk func(n *v1.CheckDebugTrace, lead, branch string, folded bool)
	walk = func(n *v1.CheckDebugTrace, lead, branch string, folded bool) {
		subs := n.GetSubProblems().GetTraces()
		line := explainLine(n)
		if folded && len(subs) > 0 {
			line += " …"
		}
		if style.dim && n.GetResult() == v1.CheckDebugTrace_PERMISSIONSHIP_NO_PERMISSION {
			line = ansiDim + line + ansiReset
		}
		b.WriteString(lead + branch + line + "\n")
		if folded {
			return
		}
		switch branch {
		case "├── ":
			lead += "│   "
		case "└── ":
			lead += "    "
		}
		for i, c := range subs {
			next := "├── "
			if i == len(subs)-1 {
				next = "└── "
			}
			fold := !style.all && c.GetResult() == v1.CheckDebugTrace_PERMISSIONSHIP_NO_PERMISSION &&
				n.GetResult() != v1.CheckDebugTrace_PERMISSIONSHIP_NO_PERMISSION
			walk(c, lead, next, fold)
		}
	}
	walk(t, "", "", false)
	return b.String()
}

// explainLine is one node's text, without the tree drawing. A node resolved
// without sub-problems and not from a cache is a relationship the server
// relied on (from SpiceDB: the subject found directly in the relation).
func explainLine(n *v1.CheckDebugTrace) string {
	res := n.GetResource().GetObjectType() + ":" + n.GetResource().GetObjectId() + "#" + n.GetPermission()
	result := strings.TrimPrefix(n.GetResult().String(), "PERMISSIONSHIP_")
	info := n.GetCaveatEvaluationInfo()
	var b strings.Builder
	if n.GetSubProblems() == nil && !n.GetWasCachedResult() {
		b.WriteString(res + "@" + subjectText(n.GetSubject()))
		if info.GetCaveatName() != "" {
			b.WriteString("[" + info.GetCaveatName() + "]")
		}
		b.WriteString("  (relationship)")
		if info != nil {
			b.WriteString("  " + caveatText(info))
		} else if n.GetResult() != v1.CheckDebugTrace_PERMISSIONSHIP_HAS_PERMISSION {
			b.WriteString("  " + result)
		}
	} else {
		b.WriteString(res + "  " + result)
		if missing := info.GetPartialCaveatInfo().GetMissingRequiredContext(); len(missing) > 0 {
			b.WriteString("  missing context: " + strings.Join(missing, ", "))
		}
		s := n.GetSubject()
		if n.GetResult() == v1.CheckDebugTrace_PERMISSIONSHIP_HAS_PERMISSION && len(n.GetSubProblems().GetTraces()) == 0 &&
			s.GetOptionalRelation() == n.GetPermission() && s.GetObject().GetObjectType() == n.GetResource().GetObjectType() &&
			s.GetObject().GetObjectId() == n.GetResource().GetObjectId() {
			b.WriteString("  (the subject)")
		}
		if n.GetWasCachedResult() {
			b.WriteString("  (cached)")
		}
	}
	if e := n.GetOptionalExpiresAt(); e != nil {
		b.WriteString("  expires " + e.AsTime().UTC().Format(time.RFC3339))
	}
	return b.String()
}

func subjectText(s *v1.SubjectReference) string {
	t := s.GetObject().GetObjectType() + ":" + s.GetObject().GetObjectId()
	if r := s.GetOptionalRelation(); r != "" {
		t += "#" + r
	}
	return t
}

// caveatText is a caveat evaluation: `caveat NAME {EXPR} with CONTEXT = OUTCOME`.
func caveatText(c *v1.CaveatEvalInfo) string {
	var b strings.Builder
	b.WriteString("caveat " + c.GetCaveatName())
	if e := c.GetExpression(); e != "" {
		b.WriteString(" {" + strings.Join(strings.Fields(e), " ") + "}")
	}
	if ctx := c.GetContext(); len(ctx.GetFields()) > 0 {
		if j, err := json.Marshal(ctx.AsMap()); err == nil {
			b.WriteString(" with " + string(j))
		}
	}
	switch c.GetResult() {
	case v1.CaveatEvalInfo_RESULT_TRUE:
		b.WriteString(" = true")
	case v1.CaveatEvalInfo_RESULT_FALSE:
		b.WriteString(" = false")
	case v1.CaveatEvalInfo_RESULT_MISSING_SOME_CONTEXT:
		b.WriteString(" = missing " + strings.Join(c.GetPartialCaveatInfo().GetMissingRequiredContext(), ", "))
	default:
		b.WriteString(" = " + strings.ToLower(strings.TrimPrefix(c.GetResult().String(), "RESULT_")))
	}
	return b.String()
}
