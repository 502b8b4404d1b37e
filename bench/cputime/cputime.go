// Package cputime reads the CPU time the process has used, so benchmarks on
// a shared machine can report CPU per operation next to wall time: wall time
// grows with other processes' load, CPU time much less.
package cputime

import "time"

// Process returns the user plus system CPU time used by the process so far,
// all threads included (GC and background goroutines too), or 0 where the
// platform does not say (then Supported is false).
func Process() time.Duration { return process() }

// Supported reports whether Process measures anything on this platform.
func Supported() bool { return supported }
