// Package report formats the benchmark programs' results: percentiles of
// durations, units, and the Markdown tables their reports are made of.
package report

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Dist is a sorted sample of durations.
type Dist []time.Duration

// NewDist sorts a copy of d.
func NewDist(d []time.Duration) Dist {
	s := slices.Clone(d)
	slices.Sort(s)
	return s
}

// Pct is the nearest-rank percentile p (0-100); 0 for an empty sample.
func (d Dist) Pct(p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(p/100*float64(len(d))+0.999999) - 1
	return d[max(0, min(i, len(d)-1))]
}

// Max is the largest duration; 0 for an empty sample.
func (d Dist) Max() time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[len(d)-1]
}

// MS formats a duration in milliseconds, with fewer decimals the longer it is.
func MS(d time.Duration) string {
	switch {
	case d >= 100*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/1e6)
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2f ms", float64(d)/1e6)
}

// MB formats bytes in whole MB (10^6 bytes), the unit of the targets.
func MB(b int64) string { return fmt.Sprintf("%.0f MB", float64(b)/1e6) }

// Table is a Markdown table.
type Table struct {
	Head []string
	rows [][]string
}

// Add appends a row, each cell formatted with fmt.Sprint.
func (t *Table) Add(cells ...any) {
	row := make([]string, len(cells))
	for i, c := range cells {
		row[i] = fmt.Sprint(c)
	}
	t.rows = append(t.rows, row)
}

// AddDist appends the row of a sample of durations: label, the sample's size, p50, p90, p99
// and max in milliseconds, then the cells after.
func (t *Table) AddDist(label string, d Dist, after ...any) {
	t.Add(append([]any{label, len(d), MS(d.Pct(50)), MS(d.Pct(90)), MS(d.Pct(99)), MS(d.Max())}, after...)...)
}

// Write writes the table, its columns padded to one width, and an empty line.
func (t *Table) Write(w io.Writer) {
	width := make([]int, len(t.Head))
	for i, h := range t.Head {
		width[i] = len([]rune(h))
	}
	for _, r := range t.rows {
		for i, c := range r {
			if i < len(width) {
				width[i] = max(width[i], len([]rune(c)))
			}
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		b.WriteString("|")
		for i := range width {
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			fmt.Fprintf(&b, " %s%s |", c, strings.Repeat(" ", width[i]-len([]rune(c))))
		}
		fmt.Fprintln(w, b.String())
	}
	line(t.Head)
	sep := make([]string, len(width))
	for i := range width {
		sep[i] = strings.Repeat("-", width[i])
	}
	line(sep)
	for _, r := range t.rows {
		line(r)
	}
	fmt.Fprintln(w)
}

// Verdict says whether a target was met.
func Verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**MISSED**"
}

// Cores formats a CPU use in cores.
func Cores(c float64) string { return fmt.Sprintf("%.2f", c) }

// Plural is "1 noun" or "n nouns".
func Plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// MB1 formats bytes in MB (10^6 bytes) with one decimal.
func MB1(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }

// Result is one target's outcome.
type Result struct {
	What, Value string
	OK          bool
	Other       float64 // other processes' CPU while it was measured, in cores; < 0: not measured
}

// Met reports whether every target was met.
func Met(results []Result) bool {
	for _, r := range results {
		if !r.OK {
			return false
		}
	}
	return true
}

// WriteTargets writes the report's "Targets" section: each result, and a warning where other
// processes used more than 0.2 cores during a measurement.
func WriteTargets(w io.Writer, results []Result) {
	fmt.Fprintf(w, "## Targets\n\n")
	t := &Table{Head: []string{"target", "measured", "result", "other processes' CPU meanwhile"}}
	disturbed := false
	for _, r := range results {
		other := "–"
		if r.Other >= 0 {
			other = fmt.Sprintf("%.2f cores", r.Other)
		}
		t.Add(r.What, r.Value, Verdict(r.OK), other)
		disturbed = disturbed || r.Other > 0.2
	}
	t.Write(w)
	if disturbed {
		fmt.Fprintf(w, "> Other processes (not this benchmark) used more than 0.2 cores during some measurements: "+
			"those numbers are less trustworthy; repeat them on a quiet machine.\n\n")
	}
}
