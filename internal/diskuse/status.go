package diskuse

import (
	"context"
	"fmt"
	"time"

	"github.com/kvsd/kvsd/internal/diag"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/stream"
)

// minRateSpan is the least stored video a stream needs before its byte rate is trusted.
const minRateSpan = time.Minute

// Diagnose reports the disk (full, budget, what is left), what the budget evicted of st, and
// whether st's retention fits, with the arithmetic. It implements diag.Source.
func (g *Guard) Diagnose(ctx context.Context, st *stream.Stream) diag.Report {
	r := diag.Report{Component: "disk"}
	add := func(l diag.Level, code, fix, format string, args ...any) {
		r.Findings = append(r.Findings, diag.Finding{Level: l, Code: code, Message: fmt.Sprintf(format, args...), Fix: fix})
	}
	sp, err := g.measure()
	if err != nil {
		add(diag.Error, "DISK_UNREADABLE", "Check that the data dir exists and kvsd may read it.", "cannot read the data dir's file system %s: %v", g.cfg.Dir, err)
		return r
	}
	budget := "no disk budget (--max-disk-usage)"
	if sp.limit > 0 {
		budget = fmt.Sprintf("the disk budget is %s (--max-disk-usage %s)", bytesText(sp.limit), g.cfg.Limit)
	}
	room := fmt.Sprintf("the data dir %s is on a file system of %s with %s free; kvsd's media uses %s, %s",
		g.cfg.Dir, bytesText(sp.fsSize), bytesText(sp.fsFree), bytesText(sp.used), budget)
	if since, full := g.cfg.Store.DiskFull(); full {
		add(diag.Error, "DISK_FULL",
			"Free space on that file system, or set kvsd serve --max-disk-usage (e.g. 90%) so that kvsd evicts the oldest video itself. Ingest resumes by itself once there is room; producers resend what was refused.",
			"the disk is full since %s ago: fragments are refused with ERROR 5001 and images and notifications wait; %s",
			g.cfg.Now().Sub(since).Round(time.Second), room)
	} else {
		add(diag.Info, "DISK_SPACE", "", "%s", room)
	}
	k := fragstore.KeyOf(st)
	g.mu.Lock()
	keptOnly := g.keptOnly
	var ev evicted
	if e := g.evicted[k]; e != nil {
		ev = *e
	}
	g.mu.Unlock()
	if keptOnly {
		add(diag.Error, "BUDGET_ONLY_KEPT",
			"Raise --max-disk-usage, delete streams you no longer need, or remove the tag from streams whose video may go: aws kinesisvideo untag-stream --stream-name NAME --tag-key-list "+KeepTag+" --endpoint-url …",
			"the media (%s) is over the disk budget (%s) and only streams tagged %s=true hold video, which is never evicted: the media grows until the disk is full", bytesText(sp.used), bytesText(sp.limit), KeepTag)
	}
	if st.Tags[KeepTag] == "true" {
		add(diag.Info, "BUDGET_KEPT", "", "this stream is tagged %s=true: its video counts against the disk budget but is never evicted (retention still applies)", KeepTag)
	}
	if ev.segments > 0 {
		add(diag.Info, "BUDGET_EVICTED", "",
			"the disk budget evicted %d segments of this stream since kvsd started: %d fragments, %s of video, %s; the first from %s, the last up to %s (server time)",
			ev.segments, ev.fragments, ev.video.Round(time.Second), bytesText(ev.bytes),
			ev.first.From.UTC().Format(time.RFC3339), ev.last.To.UTC().Format(time.RFC3339))
	}
	if f := g.retentionFit(ctx, st, sp, ev.segments > 0); f != nil {
		r.Findings = append(r.Findings, *f)
	}
	return r
}

// usage is one stream's stored bytes and span.
type usage struct {
	bytes  int64
	span   time.Duration // now − its oldest fragment's server time
	retain time.Duration
	kept   bool
}

// rate is bytes per hour, 0 when the stream holds too little video to tell.
func (u usage) rate() float64 {
	if u.span < minRateSpan || u.bytes == 0 {
		return 0
	}
	return float64(u.bytes) / u.span.Hours()
}

// retentionFit says, with the arithmetic, when st's retention does not fit the budget (or the
// disk): the hours kept now against those asked once the budget evicted from it, otherwise what
// all streams' retentions need at today's rates against what there is.
func (g *Guard) retentionFit(ctx context.Context, st *stream.Stream, sp space, evictedHere bool) *diag.Finding {
	if st.RetentionHours == 0 {
		return nil
	}
	keys, err := g.cfg.Store.Streams(ctx)
	if err != nil {
		return nil
	}
	now := g.cfg.Now()
	var this usage
	var need float64  // bytes all streams' retentions need at their rates
	var total float64 // bytes per hour of all streams
	for _, k := range keys {
		s, err := g.cfg.Catalog.GetStream(ctx, k.Name)
		if err != nil || fragstore.KeyOf(s) != k {
			continue
		}
		u := usage{retain: time.Duration(s.RetentionHours) * time.Hour, kept: s.Tags[KeepTag] == "true"}
		u.bytes, _ = g.cfg.Store.StoredBytes(ctx, k)
		if f, err := g.cfg.Store.Oldest(ctx, k); err == nil && f != nil {
			u.span = now.Sub(f.ServerTime)
		}
		need += u.rate() * u.retain.Hours()
		total += u.rate()
		if k == fragstore.KeyOf(st) {
			this = u
		}
	}
	asked := float64(st.RetentionHours)
	fix := fmt.Sprintf("Raise --max-disk-usage to at least %s, lower retentions (aws kinesisvideo update-data-retention), or record less (bitrate, streams)", bytesText(int64(need)))
	if this.rate() == 0 {
		return nil // too little video stored to tell its rate
	}
	if evictedHere && this.span < this.retain {
		return &diag.Finding{Level: diag.Warn, Code: "RETENTION_OVER_BUDGET", Fix: fix + ".",
			Message: fmt.Sprintf("the disk budget keeps %s of this stream, its retention asks for %.0f h: it stores %s per hour (%s in %s), so %.0f h need about %s; all streams' retentions need about %s at their current rates, and the budget is %s",
				hoursText(this.span), asked, bytesText(int64(this.rate())), bytesText(this.bytes), hoursText(this.span),
				asked, bytesText(int64(this.rate()*asked)), bytesText(int64(need)), bytesText(sp.limit))}
	}
	capacity, what := sp.limit, "the disk budget"
	if capacity == 0 {
		capacity, what = sp.used+sp.fsFree, "the disk (media plus free space)"
	}
	if need <= float64(capacity) {
		return nil
	}
	fit := float64(capacity) / total // hours of every stream, as eviction takes the oldest of all first
	consequence := "the oldest video of all streams will be evicted"
	if sp.limit == 0 {
		consequence = "the disk will fill and ingest stop with ERROR 5001"
	}
	return &diag.Finding{Level: diag.Warn, Code: "RETENTION_EXCEEDS_DISK", Fix: fix + ".",
		Message: fmt.Sprintf("the streams' retentions need about %s at their current rates (this stream: %s per hour × %.0f h = %s), but %s holds %s: at all streams' %s per hour, about %.1f h of this stream's %.0f h fit, and %s",
			bytesText(int64(need)), bytesText(int64(this.rate())), asked, bytesText(int64(this.rate()*asked)),
			what, bytesText(capacity), bytesText(int64(total)), fit, asked, consequence)}
}

// hoursText writes a stored span in hours, or minutes when under two hours.
func hoursText(d time.Duration) string {
	if d < 2*time.Hour {
		return fmt.Sprintf("%.0f min", d.Minutes())
	}
	return fmt.Sprintf("%.1f h", d.Hours())
}
