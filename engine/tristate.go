package engine

import (
	"slices"
)

// tri is a three-valued result: no, yes, or conditional on caveat context
// that was not supplied (missing names the parameters).
type tri struct {
	state   uint8
	missing []string
}

const (
	stNo uint8 = iota
	stYes
	stMaybe
)

var (
	triNo  = tri{state: stNo}
	triYes = tri{state: stYes}
)

func maybe(missing []string) tri { return tri{state: stMaybe, missing: missing} }

func (t tri) yes() bool   { return t.state == stYes }
func (t tri) no() bool    { return t.state == stNo }
func (t tri) maybe() bool { return t.state == stMaybe }

// or is Kleene disjunction.
func (t tri) or(o tri) tri {
	switch {
	case t.yes() || o.yes():
		return triYes
	case t.maybe() && o.maybe():
		return maybe(mergeNames(t.missing, o.missing))
	case t.maybe():
		return t
	case o.maybe():
		return o
	}
	return triNo
}

// and is Kleene conjunction.
func (t tri) and(o tri) tri {
	switch {
	case t.no() || o.no():
		return triNo
	case t.maybe() && o.maybe():
		return maybe(mergeNames(t.missing, o.missing))
	case t.maybe():
		return t
	case o.maybe():
		return o
	}
	return triYes
}

// not is Kleene negation.
func (t tri) not() tri {
	switch t.state {
	case stYes:
		return triNo
	case stNo:
		return triYes
	}
	return t
}

// mergeNames returns the sorted union of two sorted name lists.
func mergeNames(a, b []string) []string {
	if len(a) == 0 {
		return b
	}
	if len(b) == 0 {
		return a
	}
	out := make([]string, 0, len(a)+len(b))
	out = append(out, a...)
	out = append(out, b...)
	slices.Sort(out)
	return slices.Compact(out)
}
