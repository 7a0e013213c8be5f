// Package diskuse keeps the media within its disk budget (`kvsd serve --max-disk-usage`) by
// evicting the oldest segments of all streams first, and says in the log, /metrics and
// `kvsd doctor` what it evicted, when the disk is full, and when a retention does not fit.
// One Guard runs as a loop owned by app.
package diskuse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/metric"
	"github.com/kvsd/kvsd/internal/stream"
)

// KeepTag is the stream tag (value "true") that exempts a stream's video from eviction: it
// still counts against the budget.
const KeepTag = "kvsd:KeepOverBudget"

// logEvery paces the eviction WARN lines: one per minute, with what was evicted since the last.
const logEvery = time.Minute

type store interface {
	Streams(ctx context.Context) ([]fragstore.Key, error)
	Oldest(ctx context.Context, k fragstore.Key) (*fragment.Fragment, error)
	EvictOldestSegment(ctx context.Context, k fragstore.Key) (fragstore.Eviction, error)
	StoredBytes(ctx context.Context, k fragstore.Key) (int64, error)
	DiskFull() (since time.Time, full bool)
}

type catalog interface {
	GetStream(ctx context.Context, name string) (*stream.Stream, error)
}

// Config wires a Guard.
type Config struct {
	Store    store
	Catalog  catalog
	Usage    func() int64  // bytes of media on disk (disk.Media.Usage)
	Dir      string        // the data dir: its file system's size and free space
	Limit    Size          // the budget; zero: none (the Guard still reports a full disk)
	Interval time.Duration // how often usage is checked; default 1 s
	Logger   *slog.Logger
	// Registerer receives the kvsd_disk_* series; nil keeps them unregistered.
	Registerer prometheus.Registerer
	Now        func() time.Time // nil: time.Now
}

// Guard enforces the budget and watches the disk.
type Guard struct {
	cfg Config
	log *slog.Logger
	m   *metrics

	mu       sync.Mutex
	space    space                      // the last check's numbers
	full     bool                       // the disk was full at the last check (logged once)
	keptOnly bool                       // over budget with only KeepTag streams holding video
	evicted  map[fragstore.Key]*evicted // since start, per stream
	unlogged evicted                    // evicted since the last WARN line
	streams  map[fragstore.Key]bool     // those in unlogged
	lastLog  time.Time
}

// space is what one check found.
type space struct {
	fsSize, fsFree int64 // of the file system holding Dir (free: available to kvsd)
	used, limit    int64 // media bytes; the budget in bytes, 0 for none
}

// evicted sums evictions.
type evicted struct {
	segments, fragments int
	bytes               int64
	video               time.Duration // the fragments' spans on the server timeline
	first, last         fragstore.Eviction
}

func (e *evicted) add(ev fragstore.Eviction) {
	if e.segments == 0 {
		e.first = ev
	}
	e.segments++
	e.fragments += ev.Fragments
	e.bytes += ev.Bytes
	e.video += ev.To.Sub(ev.From)
	e.last = ev
}

// New builds a Guard; it does nothing until Run.
func New(cfg Config) (*Guard, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Guard{cfg: cfg, log: log, m: m, evicted: map[fragstore.Key]*evicted{}, streams: map[fragstore.Key]bool{}}, nil
}

// Run checks every Interval until ctx ends.
func (g *Guard) Run(ctx context.Context) error {
	t := time.NewTicker(g.cfg.Interval)
	defer t.Stop()
	for {
		if err := g.Check(ctx); err != nil && ctx.Err() == nil {
			g.log.Error("disk budget check failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Check measures the disk, says when it became full or has room again, and evicts the oldest
// segments while the media is over the budget.
func (g *Guard) Check(ctx context.Context) error {
	sp, err := g.measure()
	if err != nil {
		return err
	}
	g.noteFull(sp)
	var errs []error
	if sp.limit > 0 && sp.used > sp.limit {
		errs = append(errs, g.evict(ctx, &sp))
	} else {
		g.setKeptOnly(false, sp)
	}
	g.mu.Lock()
	g.space = sp
	g.mu.Unlock()
	g.logEvictions(false)
	return errors.Join(errs...)
}

// measure reads the file system's numbers and the media's usage.
func (g *Guard) measure() (space, error) {
	size, free, err := statfs(g.cfg.Dir)
	if err != nil {
		return space{}, err
	}
	sp := space{fsSize: size, fsFree: free, used: g.cfg.Usage()}
	sp.limit = g.cfg.Limit.limit(sp.fsSize)
	g.m.used.Set(float64(sp.used))
	g.m.budget.Set(float64(sp.limit))
	g.m.free.Set(float64(sp.fsFree))
	return sp, nil
}

// noteFull logs the disk becoming full, and having room again, once each.
func (g *Guard) noteFull(sp space) {
	since, full := g.cfg.Store.DiskFull()
	g.mu.Lock()
	was := g.full
	g.full = full
	g.mu.Unlock()
	switch {
	case full && !was:
		g.m.full.Set(1)
		g.log.Error("the disk is full: PutMedia answers ERROR 5001 and producers resend until there is room; images and notifications wait",
			"data_dir", g.cfg.Dir, "since", since.Format(time.RFC3339), "filesystem_size", bytesText(sp.fsSize),
			"free", bytesText(sp.fsFree), "media", bytesText(sp.used), "budget", g.cfg.Limit.String())
	case !full && was:
		g.m.full.Set(0)
		g.log.Info("the disk has room again: fragments are stored", "data_dir", g.cfg.Dir, "free", bytesText(sp.fsFree), "media", bytesText(sp.used))
	}
}

// candidate is an evictable stream and its oldest fragment's server time.
type candidate struct {
	k      fragstore.Key
	oldest time.Time
}

// evict removes the oldest segment of all evictable streams, one at a time, until the media
// fits the budget.
func (g *Guard) evict(ctx context.Context, sp *space) error {
	keys, err := g.cfg.Store.Streams(ctx)
	if err != nil {
		return err
	}
	var cands []candidate
	var errs []error
	for _, k := range keys {
		st, err := g.cfg.Catalog.GetStream(ctx, k.Name)
		if err != nil || fragstore.KeyOf(st) != k {
			continue // deleted: the retention loop removes its data
		}
		if st.Tags[KeepTag] == "true" {
			continue
		}
		f, err := g.cfg.Store.Oldest(ctx, k)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if f != nil {
			cands = append(cands, candidate{k, f.ServerTime})
		}
	}
	for sp.used > sp.limit && len(cands) > 0 {
		i := 0
		for j, c := range cands {
			if c.oldest.Before(cands[i].oldest) {
				i = j
			}
		}
		c := cands[i]
		ev, err := g.cfg.Store.EvictOldestSegment(ctx, c.k)
		if err != nil {
			errs = append(errs, err)
		}
		if ev.Fragments > 0 {
			g.record(c.k, ev)
		}
		f, oerr := g.cfg.Store.Oldest(ctx, c.k)
		if ev.Fragments == 0 || f == nil || oerr != nil {
			cands = slices.Delete(cands, i, i+1)
		} else {
			cands[i].oldest = f.ServerTime
		}
		sp.used = g.cfg.Usage()
	}
	g.m.used.Set(float64(sp.used))
	g.setKeptOnly(sp.used > sp.limit && len(cands) == 0, *sp)
	return errors.Join(errs...)
}

// record counts one eviction.
func (g *Guard) record(k fragstore.Key, ev fragstore.Eviction) {
	g.m.evictedFragments.WithLabelValues(k.Name).Add(float64(ev.Fragments))
	g.m.evictedBytes.WithLabelValues(k.Name).Add(float64(ev.Bytes))
	g.m.evictedSeconds.WithLabelValues(k.Name).Add(ev.To.Sub(ev.From).Seconds())
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.evicted[k]
	if e == nil {
		e = &evicted{}
		g.evicted[k] = e
	}
	e.add(ev)
	g.unlogged.add(ev)
	g.streams[k] = true
}

// logEvictions writes what was evicted since the last line, at most once per logEvery unless
// now.
func (g *Guard) logEvictions(now bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	t := g.cfg.Now()
	if g.unlogged.segments == 0 || (!now && !g.lastLog.IsZero() && t.Sub(g.lastLog) < logEvery) {
		return
	}
	names := make([]string, 0, len(g.streams))
	for k := range g.streams {
		names = append(names, k.Name)
	}
	slices.Sort(names)
	u := g.unlogged
	g.log.Warn("disk budget reached: evicted the oldest video of all streams",
		"budget", g.cfg.Limit.String(), "media", bytesText(g.cfg.Usage()), "streams", names, "segments", u.segments,
		"fragments", u.fragments, "bytes", bytesText(u.bytes), "video", u.video.Round(time.Second),
		"from", u.first.From.Format(time.RFC3339), "to", u.last.To.Format(time.RFC3339))
	g.unlogged, g.streams, g.lastLog = evicted{}, map[fragstore.Key]bool{}, t
}

// setKeptOnly records (and logs once) that nothing evictable is left while over the budget.
func (g *Guard) setKeptOnly(v bool, sp space) {
	g.mu.Lock()
	was := g.keptOnly
	g.keptOnly = v
	g.mu.Unlock()
	if v && !was {
		g.m.keptOnly.Set(1)
		g.log.Warn("disk budget exceeded, and only streams tagged "+KeepTag+"=true hold video: nothing can be evicted, so the media grows until the disk is full",
			"budget", g.cfg.Limit.String(), "media", bytesText(sp.used))
	} else if !v && was {
		g.m.keptOnly.Set(0)
	}
}

// statfs returns the size of the file system holding dir and the bytes available to kvsd.
func statfs(dir string) (size, free int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("file system of %s: %w", dir, err)
	}
	return int64(st.Blocks) * st.Bsize, int64(st.Bavail) * st.Bsize, nil
}

type metrics struct {
	used, budget, free, full, keptOnly             prometheus.Gauge
	evictedFragments, evictedBytes, evictedSeconds *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		used:     metric.Gauge("kvsd_disk_media_bytes", "Bytes of fragment media on disk (all segment files)."),
		budget:   metric.Gauge("kvsd_disk_budget_bytes", "The media's disk budget (--max-disk-usage) in bytes; 0: none."),
		free:     metric.Gauge("kvsd_disk_free_bytes", "Bytes available on the data dir's file system."),
		full:     metric.Gauge("kvsd_disk_full", "1 while media writes fail for want of space (PutMedia answers ERROR 5001)."),
		keptOnly: metric.Gauge("kvsd_disk_budget_kept_only", "1 while over the budget with only streams tagged "+KeepTag+"=true holding video."),
		evictedFragments: metric.CounterVec("kvsd_disk_evicted_fragments_total",
			"Fragments evicted to keep the media within the disk budget.", "stream"),
		evictedBytes: metric.CounterVec("kvsd_disk_evicted_bytes_total", "Bytes evicted to keep the media within the disk budget.", "stream"),
		evictedSeconds: metric.CounterVec("kvsd_disk_evicted_seconds_total",
			"Seconds of video (server timeline) evicted to keep the media within the disk budget.", "stream"),
	}
	return m, metric.Register(reg, m.used, m.budget, m.free, m.full, m.keptOnly, m.evictedFragments, m.evictedBytes, m.evictedSeconds)
}
