package validation

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Kinds of error. Every *Error wraps exactly one of them; test with errors.Is.
var (
	// ErrYAML: the text is not well-formed YAML.
	ErrYAML = errors.New("malformed YAML")
	// ErrFormat: well-formed YAML of the wrong shape: a document that is not a
	// mapping, an unknown or repeated key, a list where text is expected.
	ErrFormat = errors.New("invalid validation file")
	// ErrSchemaFile: the file named by schemaFile cannot be used.
	ErrSchemaFile = errors.New("invalid schemaFile")
	// ErrRelationship: a line of the relationships block does not parse.
	ErrRelationship = errors.New("invalid relationship")
	// ErrAssertion: an entry of assertTrue, assertFalse or assertCaveated does
	// not parse.
	ErrAssertion = errors.New("invalid assertion")
	// ErrExpected: a key or an expected subject of the validation map does not
	// parse.
	ErrExpected = errors.New("invalid expected relation")
)

// Error is one problem at one place in a file.
type Error struct {
	File string
	Line int // 1-based; 0 when unknown
	Col  int // 1-based; 0 when unknown
	// Kind is one of the package's sentinel errors.
	Kind error
	// Msg says what is wrong, in the file's own terms.
	Msg string
	// Err is the underlying cause (for example a tuple parse error), or nil.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
		if e.Col > 0 {
			b.WriteString(":" + strconv.Itoa(e.Col))
		}
	}
	b.WriteString(": ")
	b.WriteString(e.Kind.Error())
	if e.Msg != "" {
		b.WriteString(": " + e.Msg)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the kind and the cause, so errors.Is matches either.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// ErrorList is every problem found in one Parse, sorted by position, at most
// one per line.
type ErrorList []*Error

// maxPrinted bounds how many errors Error prints; the rest are counted.
const maxPrinted = 10

func (l ErrorList) Error() string {
	switch len(l) {
	case 0:
		return "no errors"
	case 1:
		return l[0].Error()
	}
	var b strings.Builder
	for i, e := range l {
		if i == maxPrinted {
			fmt.Fprintf(&b, "\n(and %d more errors)", len(l)-maxPrinted)
			break
		}
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap exposes the errors to errors.Is and errors.As.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

// Err returns nil for an empty list and the list otherwise.
func (l ErrorList) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

// normalize sorts the list by file and position and keeps the first error of
// each line (a line with one mistake often yields several complaints).
func (l ErrorList) normalize() ErrorList {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i], l[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	var out ErrorList
	for _, e := range l {
		if n := len(out); n > 0 && e.Line > 0 && e.File == out[n-1].File && e.Line == out[n-1].Line {
			continue
		}
		out = append(out, e)
	}
	return out
}
