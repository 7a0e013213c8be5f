package imagegen

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
)

// A generator with more streams than cores falls behind. The engine keeps it fair (turns of
// turnFragments, round-robin) and its memory bounded (per stream: one decoder, one fragment's
// bytes and at most one fragment's rendered images; the backlog stays in the store). This file
// makes it visible: each stream's lag, a WARN when the lag passes Config.LagWarn, and the
// fragments that expired (retention, or the disk budget) before their images were made.

// lag is how far the stream's image work is behind: from the server time of its oldest
// fragment not yet handled to now; 0 when caught up.
func (s status) lag(now time.Time) time.Duration {
	if s.behindSince.IsZero() {
		return 0
	}
	return max(now.Sub(s.behindSince), 0)
}

// setBehind records the oldest fragment not yet handled (nil: caught up) and logs a WARN when
// the lag passes LagWarn, once until it falls back under half of it.
func (g *Generator) setBehind(t *task, oldest *fragment.Fragment) {
	var since time.Time
	if oldest != nil {
		since = oldest.ServerTime
	}
	now := g.cfg.Now()
	t.mu.Lock()
	t.status.tracked, t.status.behindSince = true, since
	lag := t.status.lag(now)
	warn := lag > g.cfg.LagWarn && !t.status.lagWarned
	switch {
	case warn:
		t.status.lagWarned = true
	case lag < g.cfg.LagWarn/2 && t.status.lagWarned:
		t.status.lagWarned = false
		defer g.log.Info("image generation caught up with the stream", "stream", t.key.Name, "lag", lag.Round(time.Second))
	}
	queued := t.status.queued
	t.mu.Unlock()
	if warn {
		g.log.Warn("image generation is behind: more streams want images than the cores rendering them can serve; streams are served in turn",
			"stream", t.key.Name, "lag", lag.Round(time.Second), "threshold", g.cfg.LagWarn, "fragments_waiting", queued,
			"render_workers", g.cfg.RenderWorkers)
	}
}

// noteExpired counts fragments that were gone (expired or evicted) before their images were
// made, and logs it once per stream.
func (g *Generator) noteExpired(t *task, n uint64, why string) {
	if n == 0 {
		return
	}
	g.metrics.expired.WithLabelValues(t.key.Name).Add(float64(n))
	t.mu.Lock()
	t.status.expired += n
	first := !t.status.expiredLogged
	t.status.expiredLogged = true
	lag := t.status.lag(g.cfg.Now())
	t.mu.Unlock()
	if first {
		g.log.Warn("fragments expired before their images were made: image generation is too far behind for the stream's retention or the disk budget (logged once per stream; kvsd_images_expired_fragments_total counts them all)",
			"stream", t.key.Name, "fragments", n, "why", why, "lag", lag.Round(time.Second))
	}
}

// checkExpired finds fragments after the cursor that are gone: the store removes the oldest
// first, so when the cursor's own fragment is still stored nothing after it is missing, and
// when it is gone the sequence numbers between it and the oldest fragment left are (fragments
// that failed to persist leave gaps too, rarely, and are counted with them).
func (g *Generator) checkExpired(ctx context.Context, t *task, frags []*fragment.Fragment) {
	if t.cursor == 0 {
		return
	}
	next := uint64(0)
	if len(frags) > 0 {
		if frags[0].Seq == t.cursor+1 {
			return
		}
		next = frags[0].Seq
	} else {
		last, err := g.cfg.Store.LastSeq(ctx, t.key)
		if err != nil || last <= t.cursor {
			return
		}
		next = last + 1
	}
	if _, err := g.cfg.Store.Fragment(ctx, t.key, t.cursor); !errors.Is(err, fragstore.ErrNotFound) {
		return
	}
	g.noteExpired(t, next-t.cursor-1, "removed from the store while waiting")
}

// lagCollector exports kvsd_images_lag_seconds{stream}, computed when scraped, so that a
// stream that waits for its turn shows its lag growing.
type lagCollector struct{ g *Generator }

var lagDesc = prometheus.NewDesc("kvsd_images_lag_seconds",
	"How far image generation is behind an enabled stream: now minus the server time of its oldest fragment not yet handled; 0 when caught up.",
	[]string{"stream"}, nil)

func (c lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- lagDesc }

func (c lagCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.g.cfg.Now()
	c.g.mu.Lock()
	tasks := make([]*task, 0, len(c.g.tasks))
	for _, t := range c.g.tasks {
		tasks = append(tasks, t)
	}
	c.g.mu.Unlock()
	for _, t := range tasks {
		s := t.snapshot()
		if s.tracked {
			ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, s.lag(now).Seconds(), t.key.Name)
		}
	}
}
