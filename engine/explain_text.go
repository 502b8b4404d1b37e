package engine

import (
	"strings"
)

// Text draws an explanation tree the way `ambit check --explain` draws a
// trace, one node a line:
//
//	dataset:d1#read  NO
//	└── exclusion  NO
//	    ├── union  NO
//	    │   ├── dataset:d1#owner  NO
//	    │   │   └── missing dataset:d1#owner@user:bob
//	    ...
//
// `ambit why` prints it, and the why-not golden files hold it.
func (w *Why) Text() string {
	var b strings.Builder
	var walk func(n *Why, lead, branch string)
	walk = func(n *Why, lead, branch string) {
		b.WriteString(lead + branch + n.line() + "\n")
		switch branch {
		case "├── ":
			lead += "│   "
		case "└── ":
			lead += "    "
		}
		for i, c := range n.Children {
			next := "├── "
			if i == len(n.Children)-1 {
				next = "└── "
			}
			walk(c, lead, next)
		}
	}
	if w != nil {
		walk(w, "", "")
	}
	return b.String()
}

// ResultText is a result as Text prints it: HAS, NO or CONDITIONAL with the
// missing context.
func ResultText(p Permissionship, missing []string) string {
	switch p {
	case HasPermission:
		return "HAS"
	case ConditionalPermission:
		return "CONDITIONAL (missing " + strings.Join(missing, ", ") + ")"
	}
	return "NO"
}

func (w *Why) line() string {
	var s string
	res := "  " + ResultText(w.Result, w.Missing)
	rel := ""
	if w.Relationship != nil {
		rel = w.Relationship.Key().String()
	}
	switch w.Kind {
	case WhyCheck:
		s = w.Resource.String() + "#" + w.Relation + res
	case WhyUnion, WhyIntersection, WhyExclusion:
		s = w.Kind.String() + res
	case WhyArrow:
		s = w.Resource.String() + " " + w.Relation + res
	case WhyRelationship:
		s = rel + "  (relationship)" + res
		if w.Relationship.Caveat != nil && w.Note != "" {
			return s + "  " + w.Note
		}
	case WhyMissing:
		if rel == "" {
			return "missing: " + w.Note
		}
		return "missing " + rel
	case WhyExpired:
		return "expired " + rel + "  (" + w.Note + ")"
	case WhyNoParent:
		return "no parent: " + w.Note
	default:
		s = w.Kind.String() + res
	}
	if w.Note != "" {
		s += "  — " + w.Note
	}
	return s
}
