package validation

import "fmt"

// Failure is one assertion or oracle comparison that did not hold, as both
// runners (in-process and against a server) report it.
type Failure struct {
	File string
	Line int
	What string // the assertion or comparison, as text
	Want string
	Got  string
}

func (f Failure) String() string {
	return fmt.Sprintf("%s:%d: %s: want %s, got %s", f.File, f.Line, f.What, f.Want, f.Got)
}

// Report is the outcome of running one document.
type Report struct {
	File       string
	Doc        int
	Assertions int
	Oracle     int // oracle comparisons made
	Failures   []Failure
}
