package schema

import (
	"fmt"
	"strings"
	"testing"
)

// benchSchema generates a schema of n document-like definitions, each with
// relations, subject sets, caveats, arrows and every operator.
func benchSchema(n int) string {
	var b strings.Builder
	b.WriteString("use expiration\n\ncaveat ip_ok(ip ipaddress, cidr string) {\n\tip.in_cidr(cidr)\n}\n\ndefinition user {}\n\n")
	for i := range n {
		parent := fmt.Sprintf("res%04d", i)
		if i > 0 {
			parent = fmt.Sprintf("res%04d", i-1)
		}
		fmt.Fprintf(&b, `definition res%04d {
	relation parent: %s
	relation owner: user | user with expiration
	relation editor: user | res%04d#owner
	relation viewer: user | user:* with ip_ok
	relation banned: user
	permission edit = owner + editor
	permission view = (viewer + edit - banned) & owner
	permission inherited = parent.any(owner) + parent->owner
}

`, i, parent, i)
	}
	return b.String()
}

func BenchmarkCompile(b *testing.B) {
	for _, n := range []int{10, 1000} {
		src := benchSchema(n)
		b.Run(fmt.Sprintf("defs=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Compile("bench.zed", src); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	src := benchSchema(1000)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("bench.zed", src); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFormat(b *testing.B) {
	src := benchSchema(1000)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Format("bench.zed", src); err != nil {
			b.Fatal(err)
		}
	}
}

// subjectSetSchema generates n definitions of 30 relations, each allowing
// a subject set of another definition's relation: 30n `x#rel` references
// over a graph of 30n relations, none with a wildcard (issue 16: checking
// each reference for a wildcard walked the graph again).
func subjectSetSchema(n int) string {
	var b strings.Builder
	b.WriteString("definition user {}\n")
	for i := range n {
		fmt.Fprintf(&b, "definition def%d {\n", i)
		for j := range 30 {
			fmt.Fprintf(&b, "\trelation rel%d: user | def%d#rel%d\n", j, (i+j+1)%n, (j+1)%30)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

func BenchmarkCompileSubjectSets(b *testing.B) {
	for _, n := range []int{100, 500, 1700} {
		src := subjectSetSchema(n)
		b.Run(fmt.Sprintf("defs=%d/KB=%d", n, len(src)>>10), func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				if _, err := Compile("sets.zed", src); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDeclarationsSubjectSets is what the raft state machine pays for a
// schema write now (the schema guard reads both schemas' declarations), on
// the schemas of BenchmarkCompileSubjectSets.
func BenchmarkDeclarationsSubjectSets(b *testing.B) {
	for _, n := range []int{100, 500, 1700} {
		src := subjectSetSchema(n)
		b.Run(fmt.Sprintf("defs=%d/KB=%d", n, len(src)>>10), func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				if _, err := Declarations("sets.zed", src); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
