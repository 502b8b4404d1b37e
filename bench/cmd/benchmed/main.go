// Command benchmed summarises `go test -bench -count N` output: the median
// of every metric per benchmark, and for each badger benchmark its ratio to
// the memindex (and scan) baseline measured in the same run.
//
//	go test -run '^$' -bench . -count 5 ./engine | tee out.txt
//	go run ./bench/cmd/benchmed < out.txt
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

var line = regexp.MustCompile(`^(Benchmark\S+?)(-\d+)?\s+(\d+)\s+(.*)$`)

type bench struct {
	name    string
	metrics map[string][]float64
	units   []string
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func parse(r io.Reader) []*bench {
	var order []*bench
	by := map[string]*bench{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		b := by[m[1]]
		if b == nil {
			b = &bench{name: m[1], metrics: map[string][]float64{}}
			by[m[1]] = b
			order = append(order, b)
		}
		f := strings.Fields(m[4])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			u := f[i+1]
			if _, ok := b.metrics[u]; !ok {
				b.units = append(b.units, u)
			}
			b.metrics[u] = append(b.metrics[u], v)
		}
	}
	return order
}

func human(ns float64) string {
	switch {
	case ns >= 1e9:
		return fmt.Sprintf("%.2fs", ns/1e9)
	case ns >= 1e6:
		return fmt.Sprintf("%.2fms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.1fµs", ns/1e3)
	}
	return fmt.Sprintf("%.0fns", ns)
}

func main() {
	benches := parse(os.Stdin)
	med := map[string]float64{}
	for _, b := range benches {
		if v, ok := b.metrics["ns/op"]; ok {
			med[b.name] = median(v)
		}
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "benchmark\truns\tmedian\tvs memindex\tvs scan\tother medians")
	for _, b := range benches {
		ns, ok := med[b.name]
		if !ok {
			continue
		}
		ratio := func(base string) string {
			other := strings.Replace(b.name, "/badger/", "/"+base+"/", 1)
			if other == b.name || med[other] == 0 {
				return ""
			}
			return fmt.Sprintf("×%.2f", ns/med[other])
		}
		var extra []string
		for _, u := range b.units {
			if u != "ns/op" {
				extra = append(extra, fmt.Sprintf("%g %s", median(b.metrics[u]), u))
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", strings.TrimPrefix(b.name, "Benchmark"), len(b.metrics["ns/op"]),
			human(ns), ratio("memindex"), ratio("scan"), strings.Join(extra, ", "))
	}
	tw.Flush()
}
