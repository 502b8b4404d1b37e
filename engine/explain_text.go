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

// Reasons lists why a denied (or conditional) explanation is not a grant,
// one sentence each, in tree order, without repeats: the relationships that
// would grant ("needs dataset:d1#editor@user:bob"), the groups whose
// membership would ("needs membership of a group that holds ...: group:lab"),
// the exclusions that removed the subject ("excluded by ..."), caveats that
// failed or lacked context with the values they saw, relationships that
// expired, arrows with no parent. It reads only the branches that denied: a
// route that granted, and the subtracted side of an exclusion (whose
// missing relationships are what let the subject in), say nothing. A grant
// has no reasons.
func (w *Why) Reasons() []string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	// A sub-problem evaluated twice has its children only the first time
	// ("as evaluated above"), which may be on a route that granted and so
	// is not read: the second one reads the first.
	first := map[string]*Why{}
	var index func(n *Why)
	index = func(n *Why) {
		if n.Kind == WhyCheck && n.Note != memoNote {
			k := n.Resource.String() + "#" + n.Relation
			if first[k] == nil {
				first[k] = n
			}
		}
		for _, c := range n.Children {
			index(c)
		}
	}
	if w != nil {
		index(w)
	}
	read := map[*Why]bool{}
	var walk func(n *Why)
	walk = func(n *Why) {
		if n == nil || n.Result == HasPermission || read[n] {
			return
		}
		read[n] = true
		if n.Kind == WhyCheck && n.Note == memoNote {
			walk(first[n.Resource.String()+"#"+n.Relation])
			return
		}
		rel := ""
		if n.Relationship != nil {
			rel = n.Relationship.Key().String()
		}
		switch n.Kind {
		case WhyMissing:
			if rel != "" {
				add("needs " + rel)
			} else {
				add("needs " + strings.TrimPrefix(n.Note, "or "))
			}
		case WhyExpired:
			add(rel + " " + n.Note)
		case WhyRelationship:
			if n.Relationship.Caveat != nil && n.Note != "" && !strings.HasSuffix(n.Note, "= true") {
				add(rel + ": " + n.Note)
			}
		case WhyNoParent:
			add(n.Note)
		case WhyExclusion:
			add(n.Note)
			if len(n.Children) > 0 {
				walk(n.Children[0]) // the base; the subtracted side denied nothing
			}
			return
		case WhyCheck:
			if strings.HasPrefix(n.Note, "needs ") || strings.HasPrefix(n.Note, "the schema gives") || strings.HasPrefix(n.Note, "type ") {
				add(n.Note)
			}
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(w)
	return out
}
