package validation

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ambit-authz/ambit/tuple"
)

// caveatMark is how an expected subject is marked as caveated.
const caveatMark = "[...]"

// parseExpectedSubject reads one string of an expected-relations list:
//
//	[subject] is <type:id#relation>/<type:id#relation>
//
// where subject is `type:id[#relation]`, optionally followed by `[...]`
// (caveated), and a wildcard may carry exclusions: `type:* - {a, b[...]}`.
// The `is ...` part may be left out.
func parseExpectedSubject(text string) (ExpectedSubject, error) {
	es := ExpectedSubject{Text: text}
	s := strings.TrimSpace(text)
	if !strings.HasPrefix(s, "[") {
		return es, errors.New("expected `[subject] is <type:id#relation>`: missing '[' before the subject")
	}
	end := closingBracket(s)
	if end < 0 {
		return es, errors.New("missing ']' after the subject")
	}
	if err := es.parseSubject(s[1:end]); err != nil {
		return es, err
	}
	via, err := parseVia(strings.TrimSpace(s[end+1:]))
	if err != nil {
		return es, err
	}
	es.Via = via
	return es, nil
}

// closingBracket returns the index of the ']' that closes the '[' at s[0],
// or -1.
func closingBracket(s string) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			depth++
		case ']':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// parseSubject reads the part between the outer brackets.
func (es *ExpectedSubject) parseSubject(s string) error {
	s = strings.TrimSpace(s)
	head, excl, hasExcl := s, "", false
	if i := strings.IndexByte(s, '{'); i >= 0 {
		if !strings.HasSuffix(s, "}") {
			return fmt.Errorf("subject %q: missing '}' closing the exclusions", s)
		}
		before, ok := strings.CutSuffix(strings.TrimSpace(s[:i]), "-")
		if !ok {
			return fmt.Errorf("subject %q: exclusions are written `type:* - {type:a, type:b}`", s)
		}
		head, excl, hasExcl = strings.TrimSpace(before), s[i+1:len(s)-1], true
	}
	sub, caveated, err := caveatedSubject(head)
	if err != nil {
		return err
	}
	es.Subject, es.Caveated = sub, caveated
	if !hasExcl {
		return nil
	}
	if !sub.IsWildcard() {
		return fmt.Errorf("subject %q: only a wildcard subject (type:*) can have exclusions", head)
	}
	if strings.TrimSpace(excl) == "" {
		return fmt.Errorf("subject %q: empty exclusion set", s)
	}
	for part := range strings.SplitSeq(excl, ",") {
		x, caveated, err := caveatedSubject(part)
		if err != nil {
			return fmt.Errorf("exclusion: %w", err)
		}
		es.Excluded = append(es.Excluded, x)
		es.ExcludedCaveated = append(es.ExcludedCaveated, caveated)
	}
	return nil
}

// caveatedSubject reads `type:id[#relation]` optionally followed by `[...]`.
func caveatedSubject(s string) (tuple.SubjectRef, bool, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return tuple.SubjectRef{}, false, errors.New("empty subject")
	}
	s, caveated := strings.CutSuffix(s, caveatMark)
	s = strings.TrimSpace(s)
	if strings.ContainsAny(s, "[]{}") {
		return tuple.SubjectRef{}, false, fmt.Errorf("subject %q: a caveated subject is written `type:id%s`", s, caveatMark)
	}
	sub, err := tuple.ParseSubject(s)
	if err != nil {
		return sub, false, fmt.Errorf("subject %q: %w", s, err)
	}
	return sub, caveated, nil
}

// parseVia reads `is <type:id#relation>/<type:id#relation>...` (or nothing).
func parseVia(s string) ([]tuple.SubjectRef, error) {
	if s == "" {
		return nil, nil
	}
	rest, ok := strings.CutPrefix(s, "is")
	if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '\t') {
		return nil, fmt.Errorf("after the subject: expected `is <type:id#relation>`, found %q", clip(s))
	}
	rest = strings.TrimSpace(rest)
	var via []tuple.SubjectRef
	for {
		if !strings.HasPrefix(rest, "<") {
			return nil, fmt.Errorf("expected '<type:id#relation>', found %q", clip(rest))
		}
		end := strings.IndexByte(rest, '>')
		if end < 0 {
			return nil, fmt.Errorf("missing '>' in %q", clip(rest))
		}
		obj, rel, err := parseONR(rest[1:end])
		if err != nil {
			return nil, fmt.Errorf("<%s>: %w", clip(rest[1:end]), err)
		}
		via = append(via, tuple.SubjectRef{Type: obj.Type, ID: obj.ID, Relation: rel})
		rest = strings.TrimSpace(rest[end+1:])
		if rest == "" {
			return via, nil
		}
		after, ok := strings.CutPrefix(rest, "/")
		if !ok {
			return nil, fmt.Errorf("expected '/' between relations, found %q", clip(rest))
		}
		rest = strings.TrimSpace(after)
	}
}
