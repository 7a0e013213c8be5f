package console_test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/browsertest"
	"github.com/kvsd/kvsd/internal/console"
	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/videosrc"
	"github.com/kvsd/kvsd/producer"
)

// The console in headless Chromium against a real kvsd fed by a real producer: what a person
// setting kvsd up does in it, at a desktop size and at a phone's 390 px.

// requireConsole skips (or fails under CI=true) unless the bundle is embedded and Chromium runs.
func requireConsole(t *testing.T) {
	t.Helper()
	if !console.New(console.Config{}).Built() {
		msg := "console: the bundle is not built into this test binary (make build, or scripts/console.sh, builds it)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + "; CI=true, so this fails instead of skipping")
		}
		t.Skip(msg)
	}
	browsertest.RequirePage(t)
}

// camera streams a live 320×240 test pattern (libx264, a keyframe a second) to name in 1-s
// fragments, as kvsd put testsrc does, until stop is called; it returns once the first fragment
// is persisted.
func camera(t *testing.T, srv *kvstest.Server, name string) (stop func()) {
	t.Helper()
	src, err := videosrc.NewTestSource(videosrc.TestOptions{Width: 320, Height: 240, FPS: 25, GOP: 25, Bitrate: 300_000})
	require.NoError(t, err)
	// Every fragment carries a tag of the producer's, which the timeline shows on hover.
	return kvstest.Produce(t, srv, name, src, func(c *producer.Config) {
		c.Metadata = []producer.Tag{{Name: "site", Value: "gate 2"}}
	})
}

func signIn(t *testing.T, p *browsertest.Page, key, secret string) {
	t.Helper()
	p.Fill("#accessKeyId", key)
	p.Fill("#secretAccessKey", secret)
	p.Click("#signin button[type=submit]")
}

// refusedAs signs in with a bad pair and returns the explanation shown, checking its reason.
func refusedAs(t *testing.T, p *browsertest.Page, key, secret, reason string) string {
	t.Helper()
	signIn(t, p, key, secret)
	p.Wait(fmt.Sprintf("#signin-error[data-reason=%q]", reason), 10*time.Second)
	return p.Text("#signin-error")
}

// noSidewaysScroll fails when the page is wider than its viewport.
func noSidewaysScroll(t *testing.T, p *browsertest.Page, where string) {
	t.Helper()
	var w struct{ Scroll, Client int }
	p.Eval(&w, `({Scroll: document.documentElement.scrollWidth, Client: document.documentElement.clientWidth})`)
	require.LessOrEqual(t, w.Scroll, w.Client, "%s scrolls sideways", where)
}

// videoAdvances waits until the video plays and its currentTime moves on by a second.
func videoAdvances(t *testing.T, p *browsertest.Page, mode string) {
	t.Helper()
	p.Wait(fmt.Sprintf("#player[data-mode=%q]", mode), 10*time.Second)
	var t0 float64
	p.WaitFor(&t0, `(() => { const v = document.querySelector('#player video'); return v && !v.paused && v.currentTime > 0 && v.currentTime; })()`, 20*time.Second)
	p.WaitFor(nil, fmt.Sprintf(`document.querySelector('#player video').currentTime > %f`, t0+1), 15*time.Second)
}

// requireClean fails when the page had an uncaught error, logged an error other than the
// refusals the test caused (a CSP violation is one), or sent a request anywhere but kvsd.
// refused counts the expected error responses by "STATUS: METHOD /path".
func requireClean(t *testing.T, p *browsertest.Page, origin string, refused map[string]int) {
	t.Helper()
	l := p.Log()
	require.Empty(t, l.Errors, "uncaught script errors\n%s", l)
	got := map[string]int{}
	for _, c := range l.Console {
		if strings.HasPrefix(c, "error: Failed to load resource: the server responded with a status of") {
			continue // Chromium's own line for a response counted below
		}
		if r, ok := strings.CutPrefix(c, "response "); ok {
			got[strings.Replace(r, origin, "", 1)]++
			continue
		}
		require.False(t, strings.HasPrefix(c, "error:"), "page console: %s", c)
	}
	if refused == nil {
		refused = map[string]int{}
	}
	require.Equal(t, refused, got, "error responses\n%s", l)
	require.NotEmpty(t, l.Requests)
	for _, r := range l.Requests {
		_, u, _ := strings.Cut(r, " ")
		require.True(t, strings.HasPrefix(u, origin+"/") || strings.HasPrefix(u, "blob:"+origin+"/"), "a request left kvsd's origin: %s", r)
	}
}

// screenshot saves the viewport, scrolled to the element sel names ("": the top), as
// $KVSD_CONSOLE_SCREENSHOTS/<name>.jpg when that variable names a folder: the README's pictures
// (docs/console) are taken this way.
func screenshot(t *testing.T, p *browsertest.Page, name, sel string) {
	t.Helper()
	dir := os.Getenv("KVSD_CONSOLE_SCREENSHOTS")
	if dir == "" {
		return
	}
	if sel == "" {
		p.Eval(nil, `window.scrollTo(0, 0)`)
	} else {
		p.Eval(nil, fmt.Sprintf(`document.querySelector(%q).scrollIntoView({block: 'start'})`, sel))
	}
	time.Sleep(300 * time.Millisecond) // a frame or two of video after the scroll
	p.Screenshot(filepath.Join(dir, name+".jpg"), false)
}

func TestConsoleDesktop(t *testing.T) {
	requireConsole(t)
	srv := kvstest.Start(t)
	srv.CreateStream(t, "cam", 24)
	stop := camera(t, srv, "cam")
	origin := srv.URL

	p := browsertest.Open(t, 1280, 900)
	p.Goto(origin + "/console/")

	// Sign-in: each wrong pair is named for what is wrong.
	msg := refusedAs(t, p, "AKIAKVSDNOSUCHKEY001", kvstest.SecretAccessKey, "unknown-key")
	require.Contains(t, msg, `does not know the access key ID "AKIAKVSDNOSUCHKEY001"`)
	msg = refusedAs(t, p, kvstest.AccessKeyID, "not-the-secret", "wrong-secret")
	require.Contains(t, msg, "secret access key is wrong")
	signIn(t, p, kvstest.AccessKeyID, kvstest.SecretAccessKey)
	p.Wait(`#streams .stream-row[data-stream="cam"]`, 10*time.Second)
	var stored struct{ Secret, Cookie string }
	p.Eval(&stored, `({Secret: sessionStorage.getItem('kvsd.console.credentials') || '', Cookie: document.cookie})`)
	require.Contains(t, stored.Secret, kvstest.SecretAccessKey, "the secret is kept in sessionStorage")
	require.Empty(t, stored.Cookie)
	p.WaitFor(nil, `/ago/.test(document.querySelector('.stream-row[data-stream="cam"] .age').textContent)`, 10*time.Second)
	// The doctor's worst finding for each stream: no image configuration yet.
	p.WaitFor(nil, `document.querySelector('.stream-row[data-stream="cam"] .health').textContent === 'IMAGE_CONFIG_MISSING'`, 10*time.Second)
	// The ingest rate of the newest fragments (the camera sends about 300 kbit/s), and no images.
	var rate string
	p.WaitFor(&rate, `(() => { const r = document.querySelector('.stream-row[data-stream="cam"] .rate').textContent; return /bit\/s$/.test(r) && r; })()`, 10*time.Second)
	kbps, err := strconv.ParseFloat(strings.TrimSuffix(rate, " kbit/s"), 64)
	require.NoError(t, err, "ingest rate %q", rate)
	require.InDelta(t, 300, kbps, 200, "ingest rate %q", rate)
	require.Equal(t, "not configured", p.Text(`.stream-row[data-stream="cam"] .images`))

	// Create a stream; the aws CLI command for it is shown.
	p.Click("#create summary")
	p.Fill("#new-name", "made-in-console")
	p.Fill("#new-retention", "2")
	require.Contains(t, p.Text("#create .cmd code"),
		"aws kinesisvideo create-stream --stream-name made-in-console --data-retention-in-hours 2 --media-type video/h264 --endpoint-url "+origin)
	p.Click("#create button[type=submit]")
	p.Wait(`#streams .stream-row[data-stream="made-in-console"]`, 10*time.Second)

	// The stream: live video plays.
	p.Click(`a[href="#/streams/cam"]`)
	videoAdvances(t, p, "live")

	// A pause in the camera's stream is a gap on the timeline. The camera runs 6 s of video
	// first, so that the range selected below (5 s to 1 s before the gap) holds video.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		frags := srv.ListFragments(t, "cam")
		last := frags[len(frags)-1]
		assert.GreaterOrEqual(c, last.Producer+last.Length-frags[0].Producer, int64(6000))
	}, 20*time.Second, 100*time.Millisecond, "6 s of video before the pause")
	stopping := time.Now()
	stop()
	stopped := time.Now()
	time.Sleep(4 * time.Second)
	camera(t, srv, "cam")
	time.Sleep(2 * time.Second)
	p.Select("#window", "60000")
	var gap struct{ Start, End int64 }
	p.WaitFor(&gap, `(() => { const g = document.querySelector('#gaps .gap'); return g && {Start: +g.dataset.startMs, End: +g.dataset.endMs}; })()`, 15*time.Second)
	require.GreaterOrEqual(t, gap.End-gap.Start, int64(3000), "gap %+v", gap)
	// The camera completes the fragment it is building when it stops: the gap starts at the
	// stop, give or take a fragment (1 s) and the last frame's length.
	require.GreaterOrEqual(t, gap.Start, stopping.Add(-1500*time.Millisecond).UnixMilli(), "the gap starts where the camera paused")
	require.LessOrEqual(t, gap.Start, stopped.Add(time.Second).UnixMilli(), "the gap starts where the camera paused")

	// Clicking the timeline before the gap plays the archive from that moment.
	var tl struct{ Start, End, Width float64 }
	p.Eval(&tl, `(() => { const c = document.querySelector('#timeline'); return {Start: +c.dataset.startMs, End: +c.dataset.endMs, Width: c.getBoundingClientRect().width}; })()`)
	at := float64(gap.Start) - 2500
	require.Greater(t, at, tl.Start)
	x := (at - tl.Start) / (tl.End - tl.Start) * tl.Width
	// Hovering a fragment names it, with its producer's tags.
	p.Hover("#timeline", x, 20)
	var info string
	p.WaitFor(&info, `(() => { const t = document.querySelector('#timeline-info').textContent; return /tags: site=gate 2$/.test(t) && t; })()`, 10*time.Second)
	require.Regexp(t, `^Fragment 9[0-9]{46}: .*KiB; producer .*, server .*; tags: site=gate 2$`, info)
	p.ClickAt("#timeline", x, 20)
	videoAdvances(t, p, "archive")
	var first float64
	p.WaitFor(&first, `+document.querySelector('#playing-at').dataset.firstMs`, 10*time.Second)
	clicked := tl.Start + x/tl.Width*(tl.End-tl.Start)
	require.InDelta(t, clicked, first, 1000, "the archive plays from the moment clicked (program date of the playhead)")
	screenshot(t, p, "stream", "#player")

	// Clip export downloads an MP4 that ffprobe decodes.
	p.Select("#clip-len", "10000")
	clip := filepath.Join(t.TempDir(), "clip.mp4")
	name := p.Download("#clip-export", clip, 30*time.Second)
	require.True(t, strings.HasPrefix(name, "cam-") && strings.HasSuffix(name, ".mp4"), name)
	requireDecodes(t, clip)

	// A range dragged across the timeline, zoomed in first (+ zooms around the cursor, at the
	// moment clicked), is what Export MP4 exports: the clip lasts as long as the selection, to
	// within a fragment (1 s).
	selFrom, selTo := float64(gap.Start-5000), float64(gap.Start-1000)
	require.GreaterOrEqual(t, selFrom, float64(srv.ListFragments(t, "cam")[0].Producer), "the camera ran 5 s before the gap")
	p.Press("#timeline", "+")
	p.WaitFor(nil, `(() => { const c = document.querySelector('#timeline'); return c.dataset.endMs - c.dataset.startMs < 31000; })()`, 5*time.Second)
	p.Eval(&tl, `(() => { const c = document.querySelector('#timeline'); return {Start: +c.dataset.startMs, End: +c.dataset.endMs, Width: c.getBoundingClientRect().width}; })()`)
	require.InDelta(t, 30000, tl.End-tl.Start, 1, "+ halves the 60-s window")
	require.True(t, tl.Start <= selFrom && selTo <= tl.End, "the range to select is in view: %+v", tl)
	px := func(ms float64) float64 { return (ms - tl.Start) / (tl.End - tl.Start) * tl.Width }
	p.Drag("#timeline", px(selFrom), 20, px(selTo), 20)
	var sel struct{ Start, End, From, To float64 }
	p.WaitFor(&sel, `(() => { const c = document.querySelector('#timeline'), r = document.querySelector('#clip-range');
		return c.dataset.selStartMs && {Start: +c.dataset.selStartMs, End: +c.dataset.selEndMs, From: +r.dataset.fromMs, To: +r.dataset.toMs}; })()`, 5*time.Second)
	msPerPx := (tl.End - tl.Start) / tl.Width
	require.InDelta(t, selFrom, sel.Start, 2*msPerPx, "the selection starts where the drag did")
	require.InDelta(t, selTo, sel.End, 2*msPerPx, "the selection ends where the drag did")
	require.Equal(t, []float64{sel.Start, sel.End}, []float64{sel.From, sel.To}, "the clip is the selection")
	selClip := filepath.Join(t.TempDir(), "selection.mp4")
	p.Download("#clip-export", selClip, 30*time.Second)
	requireDecodes(t, selClip)
	clipSecs := probeDuration(t, selClip)
	t.Logf("selected %.3f s, the clip lasts %.3f s", (sel.End-sel.Start)/1000, clipSecs)
	require.InDelta(t, (sel.End-sel.Start)/1000, clipSecs, 1.05, "the clip lasts as long as the selection, to within a fragment")
	// The keyboard selects too: Escape clears the selection, Shift and an arrow make one.
	p.Press("#timeline", "Escape")
	p.WaitFor(nil, `document.querySelector('#timeline').dataset.selStartMs === ''`, 5*time.Second)
	p.Press("#timeline", "Shift+ArrowLeft")
	p.WaitFor(nil, `(() => { const c = document.querySelector('#timeline'); return c.dataset.selEndMs - c.dataset.selStartMs > 0; })()`, 5*time.Second)
	p.Click("#clip-clear")
	p.Wait("#clip-len", 5*time.Second)

	// Panning: zoomed in to 15 s of the 60-s window, ◀ and ▶ move the view by half of it, a
	// drag along the time axis by as much time as the pixels dragged; the span stays.
	p.Press("#timeline", "+")
	p.WaitFor(nil, `(() => { const c = document.querySelector('#timeline'); return c.dataset.endMs - c.dataset.startMs < 16000; })()`, 5*time.Second)
	type window struct{ Start, End, RangeStart, RangeEnd, Width, Height float64 }
	view := func() window {
		var w window
		p.Eval(&w, `(() => { const c = document.querySelector('#timeline'), d = c.dataset, r = c.getBoundingClientRect();
			return {Start: +d.startMs, End: +d.endMs, RangeStart: +d.rangeStartMs, RangeEnd: +d.rangeEndMs, Width: r.width, Height: r.height}; })()`)
		return w
	}
	v := view()
	span := v.End - v.Start
	require.InDelta(t, 15000, span, 1, "+ halves the 30-s view")
	moved := func(from window, want float64, how string) window {
		t.Helper()
		var to window
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if to = view(); math.Abs(to.Start-from.Start-want) <= 2 || time.Now().After(deadline) {
				break
			}
		}
		require.InDelta(t, want, to.Start-from.Start, 2, "%s moves the view's start by %.0f ms: %+v → %+v", how, want, from, to)
		require.InDelta(t, span, to.End-to.Start, 2, "%s keeps the span", how)
		return to
	}
	pan := func(from window, dir string) window {
		if dir == "left" {
			p.Click("#pan-left")
			return moved(from, -span/2, "◀")
		}
		p.Click("#pan-right")
		return moved(from, span/2, "▶")
	}
	if v.Start-v.RangeStart >= span/2+5000 {
		v = pan(pan(v, "left"), "right")
	} else { // near the window's start: room on the right
		v = pan(pan(pan(v, "right"), "right"), "left")
	}
	// A drag along the axis (its foot) a quarter of the width to the left shows later moments,
	// to the right earlier ones.
	axisY, drag := v.Height-6, v.Width/4
	if v.RangeEnd-v.End > span/4+5000 {
		p.Drag("#timeline", v.Width/2, axisY, v.Width/2-drag, axisY)
		v = moved(v, span/4, "a drag to the left on the axis")
	} else {
		p.Drag("#timeline", v.Width/2, axisY, v.Width/2+drag, axisY)
		v = moved(v, -span/4, "a drag to the right on the axis")
	}
	p.WaitFor(nil, `document.querySelector('#timeline').dataset.selStartMs === ''`, time.Second) // a pan selects nothing
	p.Press("#timeline", "-")
	p.WaitFor(nil, `(() => { const c = document.querySelector('#timeline'); return c.dataset.endMs - c.dataset.startMs > 29000; })()`, 5*time.Second)

	// Thumbnails of the window, from GetImages.
	p.WaitFor(nil, `[...document.querySelectorAll('#thumbs img')].some(i => i.complete && i.naturalWidth === 160)`, 20*time.Second)

	// The doctor: no image configuration yet.
	p.Wait(`#findings .finding[data-code="IMAGE_CONFIG_MISSING"]`, 10*time.Second)
	// Configuring images: kvsd's validation shows at the field it names, then the doctor finds
	// the fragments untagged, and the fix, the stream tag, is a select away.
	p.Fill("#img-uri", "s3://images/cam")
	p.Fill("#img-interval", "100")
	p.Click("#img-save")
	p.Wait("#img-interval-error", 10*time.Second)
	require.Contains(t, p.Text("#img-interval-error"), "SamplingInterval must be at least 200 ms")
	require.Contains(t, p.Text("#images-config .cmd code"), `aws kinesisvideo update-image-generation-configuration --stream-name cam --image-generation-configuration '{"Status":"ENABLED"`)
	p.Fill("#img-interval", "1000")
	p.Click("#img-save")
	p.Wait(`#findings .finding[data-code="FRAGMENTS_UNTAGGED"]`, 10*time.Second)
	require.Contains(t, p.Text(`#findings .finding[data-code="FRAGMENTS_UNTAGGED"]`), "kvsd:ImageGeneration=ALL_FRAGMENTS")
	screenshot(t, p, "doctor", "#doctor-h")
	p.Select("#img-policy", "ALL_FRAGMENTS")
	p.Wait(`#tags li[data-key="kvsd:ImageGeneration"]`, 10*time.Second)
	p.WaitFor(nil, `!document.querySelector('#findings .finding[data-code="FRAGMENTS_UNTAGGED"]')`, 10*time.Second)
	// Images of the fragments persisted since are delivered, as the doctor counts them.
	delivered := `#findings .finding[data-code="IMAGES_DELIVERED"]`
	for deadline := time.Now().Add(30 * time.Second); ; {
		p.Wait(delivered, 10*time.Second)
		if text := p.Text(delivered); regexp.MustCompile(`(^|[^0-9])[1-9][0-9]* images delivered`).MatchString(text) {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("no image delivered: %s", text)
		}
		time.Sleep(time.Second)
		p.Click("#doctor-h + button")
	}

	// The gallery lists the delivered images, newest first, each loaded through a URL presigned
	// in the page, with its S3 URI and metadata; a click plays the video at the image's moment.
	// The oldest image shown, once it is 5 s old: the archive after a newer one may be too short
	// to play a second of (the session ends where the archive did when it was made).
	var card struct {
		Key  string
		Ms   float64
		Age  float64
		Text string
	}
	for deadline := time.Now().Add(30 * time.Second); card.Key == "" || card.Age < 5000; {
		p.Click("#gallery-refresh")
		time.Sleep(500 * time.Millisecond)
		p.Eval(&card, `(() => { const cs = document.querySelectorAll('#gallery .image-card'); const c = cs[cs.length - 1];
			return c ? {Key: c.dataset.key, Ms: +c.dataset.ms, Age: Date.now() - c.dataset.ms, Text: c.innerText} : {}; })()`)
		require.False(t, time.Now().After(deadline), "no image of 5 s ago in the gallery: %+v", card)
	}
	require.Regexp(t, `^cam/111122223333_cam_[0-9]{13}_[0-9a-f-]{36}\.jpg$`, card.Key)
	p.WaitFor(nil, `(() => { const i = document.querySelector('#gallery .image-card img'); return i && i.complete && i.naturalWidth > 0; })()`, 10*time.Second)
	require.Contains(t, card.Text, "s3://images/"+card.Key)
	require.Regexp(t, `fragment 9[0-9]{46}`, card.Text)
	screenshot(t, p, "gallery", "#gallery")
	p.Eval(nil, `(() => { const cs = document.querySelectorAll('#gallery .image-card'); cs[cs.length - 1].querySelector('button').click(); return true; })()`)
	p.WaitFor(nil, fmt.Sprintf(`(() => { const f = +document.querySelector('#playing-at').dataset.firstMs; return f > 0 && Math.abs(f - %f) < 1000; })()`, card.Ms), 20*time.Second)
	videoAdvances(t, p, "archive")

	// After the shown oldest image's second, the gallery still lists it and nothing older; after
	// a time to come, nothing.
	local := func(ms float64) string {
		var s string
		p.Eval(&s, fmt.Sprintf(`(() => { const d = new Date(%f); d.setMinutes(d.getMinutes() - d.getTimezoneOffset()); return d.toISOString().slice(0, 19); })()`, ms))
		return s
	}
	p.Fill("#gallery-after", local(card.Ms))
	p.WaitFor(nil, fmt.Sprintf(`(() => { const cs = [...document.querySelectorAll('#gallery .image-card')];
		return cs.length > 0 && cs.some(c => c.dataset.key === %q) && cs.every(c => +c.dataset.ms >= %f); })()`, card.Key, card.Ms-1000), 10*time.Second)
	p.Fill("#gallery-after", local(float64(time.Now().Add(time.Hour).UnixMilli())))
	p.Wait("#gallery-empty", 10*time.Second)
	require.Equal(t, "No images delivered after that time.", p.Text("#gallery-empty"))
	p.Fill("#gallery-after", "")
	p.Wait("#gallery .image-card", 10*time.Second)

	// Back in the list, the stream's row counts the images delivered (kvsdStreamStatus's Images).
	p.Click(`a[href="#/"]`)
	p.WaitFor(nil, `/^[1-9][0-9]* delivered(, [1-9][0-9]* waiting)?$/.test(document.querySelector('.stream-row[data-stream="cam"] .images').textContent)`, 10*time.Second)
	p.Eval(nil, `document.querySelector('details[open]')?.removeAttribute('open') ?? true`)
	screenshot(t, p, "streams", "") // every column filled: the rate, the images delivered, the doctor

	requireClean(t, p, origin, map[string]int{"403: POST /listStreams": 2, "400: POST /updateImageGenerationConfiguration": 1})
}

// requireDecodes fails unless ffprobe reads a 320×240 H.264 video of some length from path.
func requireDecodes(t *testing.T, path string) {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "json", path).CombinedOutput()
	require.NoError(t, err, "%s", out)
	var probe struct {
		Streams []struct {
			CodecName    string `json:"codec_name"`
			Width        int    `json:"width"`
			NbReadFrames string `json:"nb_read_frames"`
		} `json:"streams"`
	}
	require.NoError(t, json.Unmarshal(out, &probe), "%s", out)
	require.Len(t, probe.Streams, 1, "%s", out)
	require.Equal(t, "h264", probe.Streams[0].CodecName)
	require.Equal(t, 320, probe.Streams[0].Width)
	require.NotContains(t, []string{"", "0"}, probe.Streams[0].NbReadFrames, "%s", out)
}

// probeDuration is the length in seconds ffprobe gives the file at path.
func probeDuration(t *testing.T, path string) float64 {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "default=nw=1:nk=1", path).CombinedOutput()
	require.NoError(t, err, "%s", out)
	d, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	require.NoError(t, err, "%s", out)
	return d
}

// At a phone's 390 px: nothing scrolls sideways, and the keyboard alone opens a stream and
// plays the archive from the timeline.
func TestConsolePhone(t *testing.T) {
	requireConsole(t)
	srv := kvstest.Start(t)
	const name = "camera-on-the-third-floor-by-the-north-staircase-door"
	srv.CreateStream(t, name, 24)
	camera(t, srv, name)
	origin := srv.URL

	p := browsertest.Open(t, 390, 844)
	p.Goto(origin + "/console/")
	noSidewaysScroll(t, p, "the sign-in page")
	signIn(t, p, kvstest.AccessKeyID, kvstest.SecretAccessKey)
	p.Wait(fmt.Sprintf(`#streams .stream-row[data-stream=%q]`, name), 10*time.Second)
	noSidewaysScroll(t, p, "the streams list")

	p.Press(fmt.Sprintf(`a[href="#/streams/%s"]`, name), "Enter")
	videoAdvances(t, p, "live")
	noSidewaysScroll(t, p, "the stream page")
	p.Press("#timeline", "Home")
	p.Press("#timeline", "Enter")
	videoAdvances(t, p, "archive")
	noSidewaysScroll(t, p, "the stream page playing the archive")
	screenshot(t, p, "phone", "")
	requireClean(t, p, origin, nil)
}

// A device clock 20 minutes slow is told apart from a wrong key or secret.
func TestConsoleClockSkew(t *testing.T) {
	requireConsole(t)
	srv := kvstest.Start(t)
	p := browsertest.Open(t, 1280, 800)
	p.SetClock(time.Now().Add(-20 * time.Minute))
	p.Goto(srv.URL + "/console/")
	msg := refusedAs(t, p, kvstest.AccessKeyID, kvstest.SecretAccessKey, "clock-skew")
	require.Contains(t, msg, "20 min behind kvsd's")
	screenshot(t, p, "clock-skew", "")
	requireClean(t, p, srv.URL, map[string]int{"403: POST /listStreams": 1})
}
