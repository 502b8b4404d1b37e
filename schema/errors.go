package schema

import (
	"sort"
	"strings"
)

// Error is one positioned error in schema source.
type Error struct {
	Pos Pos
	Msg string
	// Source is the text of the offending line (without its newline), used
	// to print a caret under Pos; "" if unknown.
	Source string
}

// Error prints `file:line:col: message`, then the offending line and a caret
// under the column.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Pos.String())
	b.WriteString(": ")
	b.WriteString(e.Msg)
	if e.Source != "" && e.Pos.Col > 0 {
		b.WriteString("\n\t")
		b.WriteString(e.Source)
		b.WriteString("\n\t")
		for i := 0; i < e.Pos.Col-1 && i < len(e.Source); i++ {
			if e.Source[i] == '\t' {
				b.WriteByte('\t')
			} else {
				b.WriteByte(' ')
			}
		}
		b.WriteByte('^')
	}
	return b.String()
}

// ErrorList is a list of *Error, sorted by position, at most one per line
// once returned by Compile, Parse or Format.
type ErrorList []*Error

// Error prints every error, one after another.
func (l ErrorList) Error() string {
	switch len(l) {
	case 0:
		return "no errors"
	case 1:
		return l[0].Error()
	}
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// Unwrap returns the errors, for errors.Is and errors.As.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

// Err returns l as an error, or nil if l is empty.
func (l ErrorList) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

// sortAndDedup sorts by position and keeps the first error of each line.
func (l ErrorList) sortAndDedup() ErrorList {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i].Pos, l[j].Pos
		if a.Filename != b.Filename {
			return a.Filename < b.Filename
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	out := l[:0]
	for i, e := range l {
		if i > 0 && e.Pos.Filename == l[i-1].Pos.Filename && e.Pos.Line == l[i-1].Pos.Line {
			continue
		}
		out = append(out, e)
	}
	return out
}

// errorSink collects errors during one Parse or Compile.
type errorSink struct {
	src  string
	list ErrorList
}

func (s *errorSink) add(pos Pos, msg string) {
	s.list = append(s.list, &Error{Pos: pos, Msg: msg, Source: lineAt(s.src, pos)})
}

func (s *errorSink) err() error {
	if len(s.list) == 0 {
		return nil
	}
	return s.list.sortAndDedup()
}

// lineAt returns the text of the line holding pos.
func lineAt(src string, pos Pos) string {
	if !pos.IsValid() || pos.Offset > len(src) {
		return ""
	}
	start := strings.LastIndexByte(src[:pos.Offset], '\n') + 1
	end := strings.IndexByte(src[pos.Offset:], '\n')
	if end < 0 {
		end = len(src)
	} else {
		end += pos.Offset
	}
	return strings.TrimRight(src[start:end], "\r")
}
