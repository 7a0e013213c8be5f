package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/kvsd/kvsd/bench/internal/report"
)

// hlsTarget is one fragment as both paths fetch it.
type hlsTarget struct {
	url    string // getMP4MediaFragment.mp4 of the session
	number string // for GetMediaForFragmentList
}

// loadResult is one path's requests during one measurement.
type loadResult struct {
	reqs, bytes, errs int64
	firstErr          error
	lat               []time.Duration
	cpu               cpuUse
}

func (r *loadResult) merge(o *loadResult) *loadResult {
	m := &loadResult{reqs: r.reqs + o.reqs, bytes: r.bytes + o.bytes, errs: r.errs + o.errs, firstErr: r.firstErr,
		lat: append(append([]time.Duration{}, r.lat...), o.lat...)}
	if m.firstErr == nil {
		m.firstErr = o.firstErr
	}
	w1, w2 := r.cpu.wall.Seconds(), o.cpu.wall.Seconds()
	m.cpu = cpuUse{wall: r.cpu.wall + o.cpu.wall, server: r.cpu.server + o.cpu.server,
		self: (r.cpu.self*w1 + o.cpu.self*w2) / (w1 + w2), other: (r.cpu.other*w1 + o.cpu.other*w2) / (w1 + w2)}
	return m
}

func (r *loadResult) perSecond() float64 { return float64(r.reqs) / r.cpu.wall.Seconds() }

// perCPUSecond is requests per second of kvsd's CPU time.
func (r *loadResult) perCPUSecond() float64 { return float64(r.reqs) / r.cpu.server.Seconds() }

// hlsSession starts an ON_DEMAND fMP4 session over frags and returns its fragments' URLs.
func (k *kvsd) hlsSession(ctx context.Context, frags []fragInfo) ([]hlsTarget, string, error) {
	var out struct{ HLSStreamingSessionURL string }
	err := k.call(ctx, "getHLSStreamingSessionURL", map[string]any{"StreamName": archiveStream, "PlaybackMode": "ON_DEMAND",
		"ContainerFormat": "FRAGMENTED_MP4", "Expires": 43200, "MaxMediaPlaylistFragmentResults": len(frags),
		"HLSFragmentSelector": map[string]any{"FragmentSelectorType": "PRODUCER_TIMESTAMP", "TimestampRange": map[string]any{
			"StartTimestamp": epoch(frags[0].Producer), "EndTimestamp": epoch(frags[len(frags)-1].Producer.Add(time.Millisecond))}}}, &out)
	if err != nil {
		return nil, "", err
	}
	master, err := k.get(ctx, out.HLSStreamingSessionURL)
	if err != nil {
		return nil, "", err
	}
	mediaURL := resolveURI(out.HLSStreamingSessionURL, firstURI(string(master)))
	media, err := k.get(ctx, mediaURL)
	if err != nil {
		return nil, "", err
	}
	var targets []hlsTarget
	var initURL string
	for _, line := range strings.Split(string(media), "\n") {
		if u, ok := strings.CutPrefix(line, `#EXT-X-MAP:URI="`); ok && initURL == "" {
			initURL = resolveURI(mediaURL, strings.TrimSuffix(u, `"`))
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		u := resolveURI(mediaURL, line)
		pu, err := url.Parse(u)
		if err != nil {
			return nil, "", err
		}
		targets = append(targets, hlsTarget{url: u, number: pu.Query().Get("FragmentNumber")})
	}
	if len(targets) != len(frags) || initURL == "" {
		return nil, "", fmt.Errorf("media playlist lists %d fragments (want %d), init segment %q:\n%.2000s", len(targets), len(frags), initURL, media)
	}
	return targets, initURL, nil
}

func firstURI(playlist string) string {
	for _, line := range strings.Split(playlist, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			return line
		}
	}
	return ""
}

// resolveURI makes a playlist URI absolute against the playlist's URL.
func resolveURI(base, ref string) string {
	b, err := url.Parse(base)
	if err != nil {
		return ref
	}
	r, err := url.Parse(ref)
	if err != nil {
		return ref
	}
	return b.ResolveReference(r).String()
}

// drain reads a response body to its end and returns its length.
func drain(resp *http.Response) (int64, error) {
	defer resp.Body.Close()
	return io.Copy(io.Discard, resp.Body)
}

// fetchHLS gets one fMP4 media fragment.
func (k *kvsd) fetchHLS(ctx context.Context, t hlsTarget) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := k.http.Do(req)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		drain(resp)
		return 0, fmt.Errorf("getMP4MediaFragment.mp4: %d", resp.StatusCode)
	}
	return drain(resp)
}

// fetchRaw gets one fragment's stored bytes with GetMediaForFragmentList.
func (k *kvsd) fetchRaw(ctx context.Context, t hlsTarget) (int64, error) {
	resp, err := k.post(ctx, "getMediaForFragmentList", map[string]any{"StreamName": archiveStream, "Fragments": []string{t.number}})
	if err != nil {
		return 0, err
	}
	return drain(resp)
}

// runClients has n clients fetch targets back to back for dur, each starting at its own
// place in the list, and measures kvsd's CPU meanwhile.
func runClients(ctx context.Context, k *kvsd, n int, dur time.Duration, targets []hlsTarget,
	fetch func(context.Context, hlsTarget) (int64, error)) *loadResult {
	res := &loadResult{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	snap := snapCPU(k.PID())
	until := time.Now().Add(dur)
	for c := range n {
		wg.Go(func() {
			var lat []time.Duration
			var reqs, bytes, errs int64
			var firstErr error
			for i := c * len(targets) / n; time.Now().Before(until) && ctx.Err() == nil; i++ {
				start := time.Now()
				nb, err := fetch(ctx, targets[i%len(targets)])
				if err != nil {
					if errs++; firstErr == nil {
						firstErr = err
					}
					continue
				}
				lat = append(lat, time.Since(start))
				reqs++
				bytes += nb
			}
			mu.Lock()
			defer mu.Unlock()
			res.reqs, res.bytes, res.errs = res.reqs+reqs, res.bytes+bytes, res.errs+errs
			res.lat = append(res.lat, lat...)
			if res.firstErr == nil {
				res.firstErr = firstErr
			}
		})
	}
	wg.Wait()
	res.cpu = snap.to(snapCPU(k.PID()), 0)
	return res
}

// hls runs section 2.
func (b *bench) hls(ctx context.Context) error {
	a, err := b.archive(ctx)
	if err != nil {
		return err
	}
	frags := a.frags[:min(len(a.frags), 1000)]
	n := b.cfg.hlsClients
	fmt.Fprintf(b.out, "## 2. Serving HLS: fMP4 media fragments against the raw fragments\n\n")
	k, err := b.startKvsd("hls", a.dir)
	if err != nil {
		return err
	}
	defer k.Stop()
	targets, initURL, err := k.hlsSession(ctx, frags)
	if err != nil {
		return err
	}
	if _, err := k.get(ctx, initURL); err != nil {
		return err
	}
	b.logf("hls: %d fragments, %d clients, warm-up", len(targets), n)
	for _, t := range targets { // page cache, lazy initialisation
		if _, err := k.fetchRaw(ctx, t); err != nil {
			return err
		}
		if _, err := k.fetchHLS(ctx, t); err != nil {
			return err
		}
	}
	half := b.cfg.hlsDuration / 2
	var raw, hls *loadResult
	for i, path := range []string{"raw", "hls", "hls", "raw"} { // neither always runs on a warmer machine
		fetch := k.fetchRaw
		if path == "hls" {
			fetch = k.fetchHLS
		}
		r := runClients(ctx, k, n, half, targets, fetch)
		b.logf("hls: half %d (%s): %d requests, %.0f/s, kvsd %.2f cores", i+1, path, r.reqs, r.perSecond(), r.cpu.serverCores())
		if path == "hls" {
			hls = mergeLoad(hls, r)
		} else {
			raw = mergeLoad(raw, r)
		}
	}
	if err := k.Alive(); err != nil {
		return err
	}
	ratio := hls.perCPUSecond() / raw.perCPUSecond()
	ok := ratio >= 0.5 && hls.errs == 0 && raw.errs == 0

	t := &report.Table{Head: []string{"path", "requests", "per second", "MB/s", "kvsd CPU", "**requests per kvsd CPU-second**",
		"MB per kvsd CPU-second", "p50 / p99 per request", "client / other CPU", "errors"}}
	for _, row := range []struct {
		name string
		r    *loadResult
	}{{"raw: GetMediaForFragmentList, 1 fragment", raw}, {"HLS: getMP4MediaFragment.mp4", hls}} {
		r := row.r
		d := report.NewDist(r.lat)
		t.Add(row.name, r.reqs, fmt.Sprintf("%.0f", r.perSecond()), fmt.Sprintf("%.0f", float64(r.bytes)/1e6/r.cpu.wall.Seconds()),
			fmt.Sprintf("%.2f cores", r.cpu.serverCores()), fmt.Sprintf("%.0f", r.perCPUSecond()),
			fmt.Sprintf("%.0f", float64(r.bytes)/1e6/r.cpu.server.Seconds()), report.MS(d.Pct(50))+" / "+report.MS(d.Pct(99)),
			report.Cores(r.cpu.self)+" / "+report.Cores(r.cpu.other), r.errs)
	}
	t.Add("HLS/raw", "", fmt.Sprintf("%.0f %%", 100*hls.perSecond()/raw.perSecond()), "", "",
		fmt.Sprintf("**%.0f %%** (target ≥ 50 %%: %s)", 100*ratio, report.Verdict(ok)), "", "", "", "")
	t.Write(b.out)
	fmt.Fprintf(b.out, "%d clients over keep-alive connections fetch the %d fragments of the archive (1080p, %s each) back to back, "+
		"each from its own place in the list, for %s per path in halves ordered raw, HLS, HLS, raw, after fetching every fragment "+
		"once both ways. Raw: signed `POST /getMediaForFragmentList` with one fragment number, the stored Matroska. HLS: "+
		"`GET getMP4MediaFragment.mp4` of an ON_DEMAND FRAGMENTED_MP4 session over the same fragments (token check, index "+
		"lookup, remux to a CMAF fragment). The load generator shares the machine's cores with kvsd, so requests per "+
		"second are bounded by both; **requests per kvsd CPU-second** (fragments per second per core) is the figure "+
		"the target compares.\n\n", n, len(targets), b.media.FragDur.Round(time.Millisecond), b.cfg.hlsDuration)
	if err := firstErr(raw, hls); err != nil {
		fmt.Fprintf(b.out, "- errors: %v\n\n", err)
	}
	b.results = append(b.results, result{What: "HLS fMP4 fragments per kvsd CPU-second ≥ 50 % of raw", Value: fmt.Sprintf("%.0f %%", 100*ratio), OK: ok,
		Other: (raw.cpu.other + hls.cpu.other) / 2})
	return nil
}

func mergeLoad(acc, r *loadResult) *loadResult {
	if acc == nil {
		return r
	}
	return acc.merge(r)
}

func firstErr(rs ...*loadResult) error {
	for _, r := range rs {
		if r.firstErr != nil {
			return r.firstErr
		}
	}
	return nil
}
