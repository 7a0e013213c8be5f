package console_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/browsertest"
	"github.com/kvsd/kvsd/internal/catalog/bolt"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/kvstest"
)

// The scale: the list of 1,000 streams and a day of 2-s fragments (43,200) on the
// timeline render without jank. The page measures itself: the longest task Chromium reports
// (PerformanceObserver 'longtask': tasks over 50 ms), the longest gap between two animation
// frames, and the time until the render is complete.

const (
	scaleStreams = 1000
	dayFragments = 43200
	// The bounds, with room for a busy CI machine: on a 2-core machine with kvsd in the test's
	// process, the longest task was 0–80 ms and the longest frame gap 17–133 ms; the list took
	// 1.4–2.0 s, the day 0.76–1.8 s (README, Console). The list before it was paged: a 320 ms
	// task and a 450 ms frame gap.
	maxLongTask   = 200 * time.Millisecond
	maxFrameGap   = 250 * time.Millisecond
	maxListRender = 5 * time.Second
	maxDayRender  = 10 * time.Second
)

// perfProbe starts measuring in the page: window.kvsdPerf.reset() starts over, .read() is
// {Ms: since the reset, LongestTask, LongTasks, MaxFrameGap}.
const perfProbe = `(() => {
  if (window.kvsdPerf) return true;
  const p = { start: 0, longest: 0, count: 0, gap: 0, last: 0 };
  new PerformanceObserver(l => { for (const e of l.getEntries()) { p.count++; p.longest = Math.max(p.longest, e.duration); } })
    .observe({ type: 'longtask' });
  const frame = t => { if (p.last) p.gap = Math.max(p.gap, t - p.last); p.last = t; requestAnimationFrame(frame); };
  requestAnimationFrame(frame);
  window.kvsdPerf = {
    reset() { p.start = performance.now(); p.longest = 0; p.count = 0; p.gap = 0; p.last = 0; return true; },
    read() { return { Ms: performance.now() - p.start, LongestTask: p.longest, LongTasks: p.count, MaxFrameGap: p.gap }; },
  };
  return true;
})()`

type perf struct {
	Ms, LongestTask, MaxFrameGap float64
	LongTasks                    int
}

func (p perf) String() string {
	return fmt.Sprintf("complete in %.0f ms, longest task %.0f ms (%d over 50 ms), longest frame gap %.0f ms", p.Ms, p.LongestTask, p.LongTasks, p.MaxFrameGap)
}

func (p perf) require(t *testing.T, what string, maxRender time.Duration) {
	t.Helper()
	t.Logf("%s: %s", what, p)
	require.Less(t, p.Ms, float64(maxRender.Milliseconds()), "%s: render time", what)
	require.Less(t, p.LongestTask, float64(maxLongTask.Milliseconds()), "%s: longest task", what)
	require.Less(t, p.MaxFrameGap, float64(maxFrameGap.Milliseconds()), "%s: longest frame gap", what)
}

// waitPerf waits until the expression done is true and reads the page's measurements then.
func waitPerf(t *testing.T, p *browsertest.Page, done string, timeout time.Duration) perf {
	t.Helper()
	var out perf
	p.WaitFor(&out, fmt.Sprintf(`(%s) && window.kvsdPerf.read()`, done), timeout)
	return out
}

// createStreams creates n streams named scale-0000 … through the API, a few at a time.
func createStreams(t *testing.T, srv *kvstest.Server, n int) {
	t.Helper()
	kv := srv.KinesisVideo()
	work := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range work {
				_, err := kv.CreateStream(context.Background(), &kinesisvideo.CreateStreamInput{
					StreamName: aws.String(fmt.Sprintf("scale-%04d", i)), DataRetentionInHours: aws.Int32(24), MediaType: aws.String("video/h264")})
				errs <- err
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

// fillDay writes count 2-s fragments ending at last into the index of the stream name, with
// kvsd stopped: index entries only (the catalog's bulk Import, as bench/ingest fills its
// ListFragments benchmark), no media, which listing never reads. Ingesting a day of video
// through PutMedia takes too long for a test on a small machine.
func fillDay(t *testing.T, dataDir, name string, count int, last time.Time) {
	t.Helper()
	ctx := context.Background()
	db, err := bolt.Open(filepath.Join(dataDir, "catalog.db"))
	require.NoError(t, err)
	defer db.Close()
	st, err := db.GetStream(ctx, name)
	require.NoError(t, err)
	key := fragstore.KeyOf(st)
	const headerID = "0123456789abcdef0123456789abcdef"
	headers := map[string][]byte{headerID: []byte("no media: index entries only")}
	first := last.Add(-time.Duration(count-1) * 2 * time.Second).Truncate(time.Millisecond)
	entries := make([]fragstore.Entry, 0, count)
	for i := range count {
		pt := first.Add(time.Duration(i) * 2 * time.Second).UTC()
		seq := uint64(pt.UnixMicro())
		size := int64(250_000 + (i%101)*400)
		entries = append(entries, fragstore.Entry{
			Fragment: &fragment.Fragment{Seq: seq, Number: fragment.FormatNumber(key.CreatedMs, seq), Timecode: uint64(pt.UnixMilli()),
				ProducerTime: pt, ServerTime: pt.Add(300 * time.Millisecond), Duration: 2 * time.Second, Size: size, HeaderID: headerID},
			Location: fragstore.Location{Segment: uint64(i/30) + 1, Offset: int64(i%30) * 260_000, Length: size},
		})
	}
	require.NoError(t, db.Import(ctx, key, headers, entries))
}

func TestConsoleScale(t *testing.T) {
	requireConsole(t)
	dir := t.TempDir()
	srv := kvstest.Start(t, kvstest.Options{DataDir: dir})
	began := time.Now()
	createStreams(t, srv, scaleStreams)
	srv.CreateStream(t, "day", 48)
	created := time.Since(began)
	srv.Stop(t)
	// The day ends 2 minutes ago, so the stream is not live (no LIVE session finds it).
	began = time.Now()
	fillDay(t, dir, "day", dayFragments, time.Now().Add(-2*time.Minute))
	t.Logf("%d streams created through the API in %v; %d fragments imported in %v", scaleStreams+1, created.Round(time.Millisecond),
		dayFragments, time.Since(began).Round(time.Millisecond))
	srv = kvstest.Start(t, kvstest.Options{DataDir: dir})

	p := browsertest.Open(t, 1280, 900)
	p.Goto(srv.URL + "/console/")
	p.Eval(nil, perfProbe)

	// The list: from signing in until the rows shown have their last fragment's age and the
	// doctor's finding.
	p.Eval(nil, `window.kvsdPerf.reset()`)
	signIn(t, p, kvstest.AccessKeyID, kvstest.SecretAccessKey)
	list := waitPerf(t, p, `(() => { const rows = document.querySelectorAll('#streams .stream-row');
		return rows.length > 0 && [...rows].every(r => !/…/.test(r.textContent)); })()`, 60*time.Second)
	var shown int
	p.Eval(&shown, `document.querySelectorAll('#streams .stream-row').length`)
	t.Logf("%d stream rows rendered", shown)
	list.require(t, fmt.Sprintf("the list of %d streams", scaleStreams+1), maxListRender)
	require.Equal(t, 50, shown, "a page of the list")
	require.Equal(t, "1–50 of 1001", p.Text("#page-info"))
	p.Click("#page-next")
	p.WaitFor(nil, `document.querySelector('#page-info').textContent === '51–100 of 1001'`, 5*time.Second)
	p.Fill("#filter", "scale-0999")
	p.Wait(`#streams .stream-row[data-stream="scale-0999"]`, 5*time.Second)
	p.WaitFor(nil, `document.querySelectorAll('#streams .stream-row').length === 1`, 5*time.Second)

	// A day of 2-s fragments: from choosing the 24-h window until all of them are drawn.
	p.Eval(nil, `(location.hash = '#/streams/day', true)`)
	p.Wait(`#timeline[data-loaded="true"]`, 20*time.Second)
	time.Sleep(2 * time.Second) // the page settles: the player's LIVE request, the thumbnails
	p.Eval(nil, `window.kvsdPerf.reset()`)
	p.Select("#window", fmt.Sprint(24*time.Hour.Milliseconds()))
	day := waitPerf(t, p, `(() => { const c = document.querySelector('#timeline');
		return c.dataset.loaded === 'true' && +c.dataset.fragments >= 43000; })()`, 60*time.Second)
	var drawn int
	p.Eval(&drawn, `+document.querySelector('#timeline').dataset.fragments`)
	t.Logf("%d fragments on the timeline", drawn)
	day.require(t, "a day of 2-s fragments", maxDayRender)

	// Zooming into the day stays smooth: the wheel turned a notch a frame for 20 frames, and
	// half a second more.
	p.Eval(nil, `window.kvsdPerf.reset()`)
	p.Eval(nil, `(() => { const c = document.querySelector('#timeline'), r = c.getBoundingClientRect();
		let n = 0;
		const notch = () => {
			c.dispatchEvent(new WheelEvent('wheel', { deltaY: -200, clientX: r.left + r.width / 2, clientY: r.top + 20, bubbles: true, cancelable: true }));
			if (++n < 20) requestAnimationFrame(notch);
		};
		requestAnimationFrame(notch);
		return true; })()`)
	zoom := waitPerf(t, p, `(() => { const c = document.querySelector('#timeline');
		return c.dataset.endMs - c.dataset.startMs < 3600e3 && window.kvsdPerf.read().Ms > 500; })()`, 10*time.Second)
	zoom.require(t, "zooming into the day with the wheel", time.Second+100*time.Millisecond)

	// The day's stream is not live: the player's LIVE session is refused, once, and nothing else.
	requireClean(t, p, srv.URL, map[string]int{"404: POST /getHLSStreamingSessionURL": 1})
}
