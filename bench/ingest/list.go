package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/kvsd/kvsd/bench/internal/kvsdproc"
	"github.com/kvsd/kvsd/bench/internal/report"
	"github.com/kvsd/kvsd/internal/catalog/bolt"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
)

const (
	listStream     = "list-30d"
	listInterval   = 2 * time.Second
	listWindow     = time.Hour
	listMarkerFile = "bench-filled.json"
	listVersion    = 1 // bump when the fill changes
)

// listMarker describes a filled list data dir; it is written last, so a dir without one is
// an interrupted fill.
type listMarker struct {
	Version  int
	Stream   string
	FirstMs  int64 // producer time of the first fragment
	Count    int
	FillSecs float64
}

// fillListDir makes a kvsd data dir whose stream listStream holds count fragments 2 s apart
// (index entries only: no media, none is needed to list), or finds it in the cache.
func (b *bench) fillListDir(ctx context.Context, count int) (string, listMarker, bool, error) {
	dir := filepath.Join(b.cfg.cacheDir, fmt.Sprintf("list-%d-v%d", count, listVersion))
	var mk listMarker
	if raw, err := os.ReadFile(filepath.Join(dir, listMarkerFile)); err == nil &&
		json.Unmarshal(raw, &mk) == nil && mk.Version == listVersion && mk.Count == count && mk.Stream == listStream {
		return dir, mk, true, nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", mk, false, err
	}
	begin := time.Now()
	// The stream is created through the API, so that its record is what kvsd writes; retention
	// of a year keeps the cached dir usable (nothing expires while kvsd serves it).
	k, err := b.startKvsd("list-create", dir)
	if err != nil {
		return "", mk, false, err
	}
	err = k.createStreams(ctx, []string{listStream}, 24*365)
	if serr := k.Stop(); err == nil && serr != nil {
		err = fmt.Errorf("stop kvsd: %w", serr)
	}
	if err != nil {
		return "", mk, false, err
	}

	db, err := bolt.Open(filepath.Join(dir, "catalog.db"))
	if err != nil {
		return "", mk, false, err
	}
	defer db.Close()
	st, err := db.GetStream(ctx, listStream)
	if err != nil {
		return "", mk, false, err
	}
	key := fragstore.KeyOf(st)
	header := b.media.Raw[:b.media.HeaderEnd]
	sum := sha256.Sum256(header)
	headerID := hex.EncodeToString(sum[:16])
	headers := map[string][]byte{headerID: header}

	first := time.Now().Add(-time.Duration(count)*listInterval - time.Hour).Truncate(time.Second)
	mk = listMarker{Version: listVersion, Stream: listStream, FirstMs: first.UnixMilli(), Count: count}
	const batch = 50_000
	const perSegment = 30 // fragments per media segment: a minute, as kvsd's disk media cuts them
	entries := make([]fragstore.Entry, 0, batch)
	var off int64
	for i := range count {
		pt := first.Add(time.Duration(i) * listInterval).UTC()
		stime := pt.Add(300*time.Millisecond + time.Duration(i%97)*time.Millisecond)
		seq := uint64(stime.UnixMicro())
		size := int64(480_000 + (i%101)*400)
		if i%perSegment == 0 {
			off = 0
		}
		entries = append(entries, fragstore.Entry{
			Fragment: &fragment.Fragment{
				Seq: seq, Number: fragment.FormatNumber(key.CreatedMs, seq), Timecode: uint64(pt.UnixMilli()),
				ProducerTime: pt, ServerTime: stime, Duration: listInterval, Size: size, HeaderID: headerID,
			},
			Location: fragstore.Location{Segment: uint64(i/perSegment) + 1, Offset: off, Length: size},
		})
		off += size + 200
		if len(entries) == batch || i == count-1 {
			if err := db.Import(ctx, key, headers, entries); err != nil {
				return "", mk, false, fmt.Errorf("import index entries: %w", err)
			}
			entries = entries[:0]
			b.logf("list: filled %d of %d index entries", i+1, count)
		}
	}
	mk.FillSecs = time.Since(begin).Seconds()
	raw, _ := json.Marshal(mk)
	return dir, mk, false, os.WriteFile(filepath.Join(dir, listMarkerFile), raw, 0o644)
}

// listWindowOnce lists one window completely and returns the fragment count and the time of
// each call.
func (k *kvsd) listWindowOnce(ctx context.Context, fromMs int64) (int, []time.Duration, error) {
	toMs := fromMs + listWindow.Milliseconds()
	frags, calls, err := kvsdproc.ListFragments(ctx, k.http, k.URL, listStream, fromMs, toMs, 100)
	for _, f := range frags {
		if f.Ms < fromMs || f.Ms > toMs {
			return len(frags), calls, fmt.Errorf("fragment %s at %d ms is outside [%d, %d]", f.Number, f.Ms, fromMs, toMs)
		}
	}
	if err != nil {
		return len(frags), calls, fmt.Errorf("one window: %w", err)
	}
	return len(frags), calls, nil
}

// list runs section 3.
func (b *bench) list(ctx context.Context) error {
	count := int(b.cfg.listDays * 24 * float64(time.Hour/listInterval))
	fmt.Fprintf(b.out, "## 3. ListFragments, 1-hour windows in a %g-day index\n\n", b.cfg.listDays)
	b.logf("list: preparing a data dir with %d index entries", count)
	dir, mk, cached, err := b.fillListDir(ctx, count)
	if err != nil {
		return err
	}
	// Read the catalog once so that it is in the page cache, as the index of a server in use
	// would be; a cached data dir may have been evicted since (see damonNote).
	if err := readAll(filepath.Join(dir, "catalog.db")); err != nil {
		return err
	}
	k, err := b.startKvsd("list", dir)
	if err != nil && cached {
		// A data dir an older kvsd wrote may no longer open: fill it again.
		b.logf("list: kvsd does not start on the cached data dir (%v); filling it again", err)
		if err := os.Remove(filepath.Join(dir, listMarkerFile)); err != nil {
			return err
		}
		if dir, mk, cached, err = b.fillListDir(ctx, count); err != nil {
			return err
		}
		k, err = b.startKvsd("list", dir)
	}
	if err != nil {
		return err
	}
	defer k.Stop()
	rng := rand.New(rand.NewPCG(3, 4))
	span := int64(mk.Count)*listInterval.Milliseconds() - listWindow.Milliseconds()
	want := int(listWindow / listInterval)
	var calls, windows []time.Duration
	var cpu0 cpuSnap
	for i := range b.cfg.listWarmup + b.cfg.listWindows {
		from := mk.FirstMs + rng.Int64N(span)
		n, cs, err := k.listWindowOnce(ctx, from)
		if err != nil {
			return err
		}
		if n != want && n != want+1 { // +1: both ends inclusive, and a window can start on a fragment
			return fmt.Errorf("window at %d ms listed %d fragments, want %d", from, n, want)
		}
		if i < b.cfg.listWarmup {
			cpu0 = snapCPU(k.PID())
			continue
		}
		var sum time.Duration
		for _, c := range cs {
			sum += c
		}
		calls = append(calls, cs...)
		windows = append(windows, sum)
	}
	cpu := cpu0.to(snapCPU(k.PID()))
	dc, dw := report.NewDist(calls), report.NewDist(windows)
	ok := dc.Pct(99) <= 20*time.Millisecond
	catSize := int64(0)
	if fi, err := os.Stat(filepath.Join(dir, "catalog.db")); err == nil {
		catSize = fi.Size()
	}
	t := &report.Table{Head: []string{"ListFragments", "samples", "p50", "p90", "p99", "max", "target"}}
	t.AddDist("per call (MaxResults 1000)", dc, "p99 ≤ 20 ms: "+report.Verdict(ok))
	t.AddDist(fmt.Sprintf("per 1-hour window (%d fragments, %d calls)", want, len(dc)/max(1, len(dw))), dw, "(p99 ≤ 20 ms: "+report.Verdict(dw.Pct(99) <= 20*time.Millisecond)+")")
	t.Write(b.out)
	fill := fmt.Sprintf("filled in %.0f s", mk.FillSecs)
	if cached {
		fill = fmt.Sprintf("reused from the cache (filling took %.0f s)", mk.FillSecs)
	}
	fmt.Fprintf(b.out, "One stream whose index holds %d fragments (%g days at one per %s; index entries only, written with "+
		"the catalog's bulk Import, no media), catalog file %s, %s. Windows start at random (fixed seed) and are listed "+
		"with PRODUCER_TIMESTAMP, MaxResults 1000, following NextToken (the catalog file is read once before kvsd starts, so that it is in the page cache); each one is checked to return all %d fragments. "+
		"Times are signed HTTP POSTs over a kept-alive loopback connection, from sending the request to reading the "+
		"last byte of the answer; the first %s are not counted. One client, one call at a time. "+
		"CPU while measuring: kvsd %.2f cores, this program %.2f, kernel %.2f, other processes %.2f.\n\n",
		mk.Count, b.cfg.listDays, listInterval, report.MB(catSize), fill, want, report.Plural(b.cfg.listWarmup, "window"), cpu.server, cpu.self, cpu.kernel, cpu.other)
	b.results = append(b.results, result{What: "ListFragments: p99 per call ≤ 20 ms", Value: report.MS(dc.Pct(99)), OK: ok, Other: cpu.other})
	b.logf("list: per call p50 %s p99 %s; per window p50 %s p99 %s", report.MS(dc.Pct(50)), report.MS(dc.Pct(99)), report.MS(dw.Pct(50)), report.MS(dw.Pct(99)))
	return nil
}

// readAll reads a file to the end, which leaves it in the page cache.
func readAll(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(io.Discard, f)
	return err
}
