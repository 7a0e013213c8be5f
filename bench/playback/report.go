package main

// Copied from bench/ingest/stats.go (each benchmark is its own main package).

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// dist is a sorted sample of durations.
type dist []time.Duration

func newDist(d []time.Duration) dist {
	s := slices.Clone(d)
	slices.Sort(s)
	return s
}

// pct is the nearest-rank percentile p (0-100); 0 for an empty sample.
func (d dist) pct(p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(p/100*float64(len(d))+0.999999) - 1
	return d[max(0, min(i, len(d)-1))]
}

func (d dist) max() time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[len(d)-1]
}

func ms(d time.Duration) string {
	switch {
	case d >= 100*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/1e6)
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2f ms", float64(d)/1e6)
}

// mb formats bytes in MB (10^6 bytes).
func mb(b int64) string { return fmt.Sprintf("%.0f MB", float64(b)/1e6) }

// table writes a Markdown table.
type table struct {
	head []string
	rows [][]string
}

func (t *table) add(cells ...any) {
	row := make([]string, len(cells))
	for i, c := range cells {
		row[i] = fmt.Sprint(c)
	}
	t.rows = append(t.rows, row)
}

func (t *table) write(w io.Writer) {
	width := make([]int, len(t.head))
	for i, h := range t.head {
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
	line(t.head)
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

// verdict says whether a target was met.
func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**MISSED**"
}

func cores(c float64) string { return fmt.Sprintf("%.2f", c) }

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// mb1 formats bytes in MB (10^6 bytes) with one decimal.
func mb1(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }
