// Package promhist reads a Prometheus histogram from a kvsd's /metrics, for benchmark reports
// that set kvsd's own view (say, of a fragment's store and commit) beside what clients saw.
package promhist

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kvsd/kvsd/bench/internal/report"
)

// kvsd's histograms of a fragment's storage: Store.Append (media stored, synced or PUT, and
// index committed) and its two parts, the media write and the index's group commits.
const (
	StoreAppend = "kvsd_store_append_seconds"
	StoreMedia  = "kvsd_store_media_write_seconds"
	StoreCommit = "kvsd_store_commit_seconds"
)

// Histogram is a Prometheus histogram scraped from kvsd's /metrics: cumulative bucket counts
// by upper bound, and the sum and count.
type Histogram struct {
	buckets map[float64]float64
	sum     float64
	count   float64
}

// Scrape reads histogram name from the /metrics of the server at baseURL; a zero histogram on
// failure (the numbers are context, not the measurement).
func Scrape(ctx context.Context, hc *http.Client, baseURL, name string) Histogram {
	h := Histogram{buckets: map[float64]float64{}}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/metrics", nil)
	if err != nil {
		return h
	}
	resp, err := hc.Do(req)
	if err != nil {
		return h
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"_") {
			continue
		}
		key, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch {
		case key == name+"_sum":
			h.sum = v
		case key == name+"_count":
			h.count = v
		case strings.HasPrefix(key, name+`_bucket{le="`):
			le := strings.TrimSuffix(strings.TrimPrefix(key, name+`_bucket{le="`), `"}`)
			if b, err := strconv.ParseFloat(le, 64); err == nil {
				h.buckets[b] = v
			} else if le == "+Inf" {
				h.buckets[math.Inf(1)] = v
			}
		}
	}
	return h
}

// Since is the histogram of the observations made after old.
func (h Histogram) Since(old Histogram) Histogram {
	d := Histogram{buckets: map[float64]float64{}, sum: h.sum - old.sum, count: h.count - old.count}
	for b, v := range h.buckets {
		d.buckets[b] = v - old.buckets[b]
	}
	return d
}

// Plus is the histogram of both servers' observations (the same buckets).
func (h Histogram) Plus(o Histogram) Histogram {
	s := Histogram{buckets: map[float64]float64{}, sum: h.sum + o.sum, count: h.count + o.count}
	for b, v := range h.buckets {
		s.buckets[b] += v
	}
	for b, v := range o.buckets {
		s.buckets[b] += v
	}
	return s
}

// Describe gives the mean and the bucket bounds holding p50 and p99, e.g. "mean 12.3 ms,
// p50 ≤ 16 ms, p99 ≤ 32 ms".
func (h Histogram) Describe() string {
	if h.count <= 0 {
		return "n/a"
	}
	bounds := make([]float64, 0, len(h.buckets))
	for b := range h.buckets {
		bounds = append(bounds, b)
	}
	sort.Float64s(bounds)
	q := func(p float64) string {
		for _, b := range bounds {
			if h.buckets[b] >= p*h.count {
				if math.IsInf(b, 1) {
					return "> " + report.MS(time.Duration(bounds[len(bounds)-2]*float64(time.Second)))
				}
				return "≤ " + report.MS(time.Duration(b*float64(time.Second)))
			}
		}
		return "?"
	}
	return fmt.Sprintf("mean %s, p50 %s, p99 %s", report.MS(time.Duration(h.sum/h.count*float64(time.Second))), q(0.5), q(0.99))
}
