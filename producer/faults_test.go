package producer_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/app"
	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/putmedia"
	"github.com/kvsd/kvsd/producer"
)

// startBehindProxy starts kvsd with GetDataEndpoint answering the proxy, so
// that PutMedia goes through it, and returns a handle that reaches kvsd
// directly (control plane and reads).
func startBehindProxy(t *testing.T, p *faultProxy) *kvstest.Server {
	t.Helper()
	srv := kvstest.Start(t, kvstest.Options{Configure: func(c *app.Config) { c.PublicURL = p.URL() }})
	p.target.Store(srv.Addr.String())
	return kvstest.Attach("http://" + srv.Addr.String())
}

// proxiedRun is the setup of a fault test: kvsd behind a faultProxy with
// stream "cam", a clip, and a Fast config with 400 ms fragments from a fixed
// start whose data endpoint is the proxy.
type proxiedRun struct {
	direct *kvstest.Server // kvsd itself, for the control plane and reads
	data   []byte
	start  time.Time
	cfg    producer.Config
}

func newProxiedRun(t *testing.T, px *faultProxy, seconds float64) *proxiedRun {
	t.Helper()
	r := &proxiedRun{direct: startBehindProxy(t, px), data: clip(t, seconds, 10), start: time.UnixMilli(1_700_000_000_000)}
	createStream(t, r.direct, "cam", 24)
	r.cfg = baseConfig(r.direct, "cam")
	r.cfg.Fast, r.cfg.StartTime, r.cfg.FragmentDuration = true, r.start, 400*time.Millisecond
	return r
}

// requireStored checks that kvsd holds exactly want (frames of the clip).
func (r *proxiedRun) requireStored(t *testing.T, want []mkv.Frame) {
	t.Helper()
	requireAllFrames(t, want, storedFragments(t, r.direct, "cam"), r.start)
}

// runFile streams data (a file, Fast unless paced) with cfg and returns the
// stats; Run must succeed.
func runFile(t *testing.T, cfg producer.Config, data []byte) producer.Stats {
	t.Helper()
	p, err := producer.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := p.Run(ctx, producer.NewMKVSource(bytes.NewReader(data), false))
	require.NoError(t, err)
	return st
}

// A connection cut in the middle of the body: the producer reconnects and
// resends from the first fragment not persisted; every frame arrives.
func TestResendAfterConnectionCut(t *testing.T) {
	px := newFaultProxy(t)
	r := newProxiedRun(t, px, 4)
	px.cutAfter = int64(len(r.data) / 2)
	st := runFile(t, r.cfg, r.data)
	require.True(t, px.faulted.Load(), "the proxy cut the connection")
	require.Positive(t, st.Reconnects)
	require.Zero(t, st.Pending+st.Skipped+st.Dropped)
	r.requireStored(t, sourceFrames(t, r.data))
}

// A retriable ERROR (5000) in the ack stream: the producer reconnects and
// resends; every frame arrives.
func TestResendAfterRetriableErrorAck(t *testing.T) {
	px := newFaultProxy(t)
	px.inject, px.errorAck = 3, errorAckJSON(5000, "INTERNAL_ERROR")
	r := newProxiedRun(t, px, 4)
	var evs events
	r.cfg.OnEvent = evs.add
	st := runFile(t, r.cfg, r.data)
	require.True(t, px.faulted.Load(), "the proxy injected the ERROR")
	// The first reconnect is the ERROR's; later ones may meet the old session still open.
	var ae *producer.AckError
	require.ErrorAs(t, evs.first(producer.EventReconnect).Err, &ae)
	require.Equal(t, 5000, ae.ID)
	require.Positive(t, st.Reconnects)
	require.Zero(t, st.Pending+st.Skipped+st.Dropped)
	r.requireStored(t, sourceFrames(t, r.data))
}

// A connection that takes the body but answers nothing (a half-dead peer)
// is dropped after AckTimeout and the fragments are resent.
func TestSilentConnectionRestarted(t *testing.T) {
	px := newFaultProxy(t)
	px.silence = true
	r := newProxiedRun(t, px, 2)
	r.cfg.AckTimeout = 500 * time.Millisecond
	var evs events
	r.cfg.OnEvent = evs.add
	st := runFile(t, r.cfg, r.data)
	require.True(t, px.faulted.Load())
	require.ErrorContains(t, evs.first(producer.EventReconnect).Err, "no acknowledgement for the data sent")
	require.Zero(t, st.Pending+st.Skipped+st.Dropped)
	r.requireStored(t, sourceFrames(t, r.data))
}

// A non-retriable ERROR (4002) skips exactly that fragment, says which and
// why, and the rest of the file still arrives.
func TestSkipOnNonRetriableErrorAck(t *testing.T) {
	px := newFaultProxy(t)
	px.inject, px.errorAck = 3, errorAckJSON(4002, "MAX_FRAGMENT_DURATION_REACHED")
	r := newProxiedRun(t, px, 4)
	var evs events
	r.cfg.OnEvent = evs.add
	st := runFile(t, r.cfg, r.data)
	require.Equal(t, int64(1), st.Skipped, evs.String())
	require.Zero(t, st.Pending+st.Dropped)

	var skipped producer.Event
	for _, ev := range evs.evs {
		if ev.Kind == producer.EventFragmentSkipped {
			skipped = ev
		}
	}
	var ae *producer.AckError
	require.ErrorAs(t, skipped.Err, &ae)
	require.Equal(t, 4002, ae.ID)
	// The third fragment: 0.8 s into the file.
	require.Equal(t, r.start.Add(800*time.Millisecond), skipped.Timecode)
	require.Contains(t, ae.Error(), "MAX_FRAGMENT_DURATION_REACHED")

	// Every frame but the skipped fragment's (it lasts until the next one).
	from, to := skipped.Timecode.UnixMilli(), skipped.Timecode.Add(skipped.Duration).UnixMilli()
	require.Equal(t, int64(400), to-from)
	all := sourceFrames(t, r.data)
	var want []mkv.Frame
	for _, f := range all {
		if ts := r.start.UnixMilli() + f.Timecode; ts < from || ts >= to {
			want = append(want, f)
		}
	}
	require.Len(t, want, 90)
	// The proxy ends the connection when kvsd acknowledges the start of the skipped fragment,
	// and kvsd may have received that fragment whole by then and kept it (a real KVS would
	// not have). Such a copy started arriving before the ERROR; one that arrived later would
	// be the producer sending a skipped fragment again.
	stored := storedFragments(t, r.direct, "cam")
	for _, f := range stored {
		if f.Producer == from {
			require.LessOrEqual(t, f.Server, px.injectedAt.Load(), "the skipped fragment was sent again")
			want = all
		}
	}
	requireAllFrames(t, want, stored, r.start)
}

// kvsd restarted (same data dir, same port) in the middle of a paced
// upload: the producer gets ERROR 5000 or a refused connection, retries,
// and every frame arrives.
func TestServerRestartMidUpload(t *testing.T) {
	dir := t.TempDir()
	srv := kvstest.Start(t, kvstest.Options{DataDir: dir})
	addr := srv.Addr.String()
	createStream(t, srv, "cam", 24)
	data := clip(t, 3, 10)
	start := time.UnixMilli(1_700_000_000_000)
	cfg := baseConfig(srv, "cam")
	cfg.StartTime, cfg.FragmentDuration = start, 400*time.Millisecond // paced: 3 s
	firstPersisted, refused := make(chan struct{}), make(chan struct{})
	var once, refusedOnce sync.Once
	cfg.OnEvent = func(ev producer.Event) {
		switch {
		case ev.Kind == producer.EventFragmentPersisted:
			once.Do(func() { close(firstPersisted) })
		case ev.Kind == producer.EventReconnect && errors.Is(ev.Err, syscall.ECONNREFUSED):
			refusedOnce.Do(func() { close(refused) })
		}
	}
	p, err := producer.New(cfg)
	require.NoError(t, err)
	type result struct {
		st  producer.Stats
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := p.Run(context.Background(), producer.NewMKVSource(bytes.NewReader(data), false))
		done <- result{st, err}
	}()
	select { // mid-upload: a fragment is in, most of the file is not
	case <-firstPersisted:
	case <-time.After(20 * time.Second):
		t.Fatal("no fragment persisted")
	}
	srv.Stop(t)
	select { // the producer finds nothing listening
	case <-refused:
	case <-time.After(20 * time.Second):
		t.Fatal("the producer never found the port closed")
	}
	srv2 := kvstest.Start(t, kvstest.Options{DataDir: dir, Configure: func(c *app.Config) { c.Listen = addr }})
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not finish after the restart")
	}
	require.NoError(t, r.err)
	require.Positive(t, r.st.Reconnects)
	require.Zero(t, r.st.Pending+r.st.Skipped+r.st.Dropped)
	requireAllFrames(t, sourceFrames(t, data), storedFragments(t, srv2, "cam"), start)
}

// Connections are rotated at fragment boundaries (here every 0.5 s, in
// production before 45 minutes) without resending anything.
func TestConnectionRotation(t *testing.T) {
	srv := kvstest.Start(t)
	createStream(t, srv, "cam", 24)
	data := clip(t, 2, 5)
	start := time.UnixMilli(1_700_000_000_000)
	cfg := baseConfig(srv, "cam")
	cfg.StartTime, cfg.FragmentDuration, cfg.ConnectionAge = start, 200*time.Millisecond, 500*time.Millisecond
	st := runFile(t, cfg, data)
	require.Zero(t, st.Pending+st.Skipped+st.Dropped+st.Reconnects)
	stored := storedFragments(t, srv, "cam")
	require.Len(t, stored, int(st.Fragments), "no fragment sent twice")
	uids := map[string]bool{}
	for _, f := range stored {
		hdr, _, err := mkv.ReadFrames(f.Media, mkv.Limits{})
		require.NoError(t, err)
		uids[string(hdr.SegmentUID)] = true
	}
	require.GreaterOrEqual(t, len(uids), 3, "one MKV header per connection")
	requireAllFrames(t, sourceFrames(t, data), stored, start)
}

// Stopping a live source (Ctrl-C) completes the fragment being built, ends
// the body and waits for the last acks: everything read is persisted.
func TestStopFlushesLiveSource(t *testing.T) {
	srv := kvstest.Start(t)
	createStream(t, srv, "cam", 24)
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25",
		"-t", "20", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "10", "-flush_packets", "1", "-f", "matroska", "-")
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	src := producer.NewMKVSource(out, true)
	defer src.Close()

	cfg := baseConfig(srv, "cam")
	cfg.FragmentDuration = time.Second
	// Stop (as Ctrl-C does) once two fragments are persisted: mid-fragment.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var persisted atomic.Int32
	var stopAt atomic.Int64
	cfg.OnEvent = func(ev producer.Event) {
		if ev.Kind == producer.EventFragmentPersisted && persisted.Add(1) == 2 {
			stopAt.Store(time.Now().UnixNano())
			cancel()
		}
	}
	p, err := producer.New(cfg)
	require.NoError(t, err)
	began := time.Now()
	st, err := p.Run(ctx, src)
	require.NoError(t, err)
	require.NotZero(t, stopAt.Load(), "stopped by the test, not the timeout")
	require.Less(t, time.Since(time.Unix(0, stopAt.Load())), producer.DefaultStopTimeout)
	require.Zero(t, st.Pending+st.Skipped+st.Dropped)
	require.Greater(t, st.Fragments, int64(2), "the fragment being built was sent too")
	require.Greater(t, st.Frames, int64(50))

	stored := storedFragments(t, srv, "cam")
	require.Len(t, stored, int(st.Fragments))
	n := 0
	for _, f := range stored {
		n += len(f.Frames)
		require.True(t, f.Frames[0].Keyframe)
	}
	require.Equal(t, int(st.Frames), n, "every frame read is in the stream")
	// A live source is stamped with the wall clock.
	require.InDelta(t, began.UnixMilli(), stored[0].Producer, 2000)
}

// Streams that keep no data never answer PERSISTED: fragments are released
// on RECEIVED.
func TestRetentionZeroReleasesOnReceived(t *testing.T) {
	srv := kvstest.Start(t)
	createStream(t, srv, "live", 0)
	cfg := baseConfig(srv, "live")
	cfg.Fast, cfg.FragmentDuration = true, 400*time.Millisecond
	st := runFile(t, cfg, clip(t, 2, 10))
	require.Equal(t, st.Fragments, st.Persisted)
	require.Zero(t, st.Pending)
}

// A missing stream is reported as such, without retrying.
func TestMissingStreamIsFatal(t *testing.T) {
	srv := kvstest.Start(t)
	p, err := producer.New(baseConfig(srv, "nope"))
	require.NoError(t, err)
	_, err = p.Run(context.Background(), producer.NewMKVSource(bytes.NewReader(clip(t, 1, 10)), false))
	require.ErrorIs(t, err, producer.ErrStreamNotFound)
}

// Another codec is refused before anything is sent, naming it.
func TestVP8Refused(t *testing.T) {
	data := kvstest.FFmpegMKV(t, "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-t", "1", "-c:v", "libvpx", "-f", "webm", "-")
	_, err := producer.NewMKVSource(bytes.NewReader(data), false).Track(context.Background())
	require.ErrorIs(t, err, producer.ErrUnsupportedCodec)
	require.EqualError(t, err, "unsupported codec: kvsd streams H.264/H.265, this is VP8")
}

// Tag limits are checked before anything is sent.
func TestTagLimits(t *testing.T) {
	long := strings.Repeat("x", 300)
	pairs := func(n int) []producer.Tag {
		var out []producer.Tag
		for i := range n {
			out = append(out, producer.Tag{Name: "k" + string(rune('a'+i)), Value: "v"})
		}
		return out
	}
	for _, tc := range []struct {
		name string
		cfg  producer.Config
		want string
	}{
		{"11 pairs", producer.Config{Metadata: pairs(11)}, "11 tags: at most 10"},
		{"6 pairs, both events", producer.Config{Metadata: pairs(6), Notify: true, ImageGeneration: true}, "use at most 5 tags"},
		{"long name", producer.Config{Metadata: []producer.Tag{{Name: long[:129], Value: "v"}}}, "129 bytes: at most 128"},
		{"long value", producer.Config{Metadata: []producer.Tag{{Name: "k", Value: long[:257]}}}, "257 bytes: at most 256"},
		{"reserved name", producer.Config{Metadata: []producer.Tag{{Name: "AWS_X", Value: "v"}}}, "names starting with AWS are reserved"},
		{"long prefix", producer.Config{ImageGeneration: true, ImagePrefix: long[:257]}, "image prefix of 257 bytes"},
		{"AWS prefix", producer.Config{ImageGeneration: true, ImagePrefix: "AWSfoo"}, "must not start with AWS"},
		{"prefix without images", producer.Config{ImagePrefix: "p"}, "needs image generation"},
		{"duplicate", producer.Config{Metadata: []producer.Tag{{Name: "k", Value: "1"}, {Name: "k", Value: "2"}}}, "given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.ValidateTags()
			require.ErrorIs(t, err, producer.ErrInvalidConfig)
			require.ErrorContains(t, err, tc.want)
		})
	}
	ok := producer.Config{Metadata: pairs(10), ImageGeneration: true, ImagePrefix: strings.Repeat("p", 256)}
	require.NoError(t, ok.ValidateTags())
	require.False(t, errors.Is(ok.ValidateTags(), producer.ErrInvalidConfig))
}

// A connection that still holds the stream (the old one may, right after a reconnect, or a
// half-open one after a crash) does not keep the producer out: its new connection takes over,
// as on AWS. The holder's body ends after kvsd stopped reading it; the reads below go over the
// same default transport (kvsd closes a PutMedia's connection, so none reads the leftover body).
func TestTakesOverAHeldStream(t *testing.T) {
	// The new connection's fragments are stored once the holder has ended: at the latest after
	// the grace a superseded connection gets to finish its own (1 s here, not 10).
	srv := kvstest.Start(t, kvstest.Options{Configure: func(c *app.Config) { c.IngestSupersededGrace = time.Second }})
	createStream(t, srv, "cam", 24)
	data := clip(t, 2, 10)
	pr, pw := io.Pipe()
	held := make(chan error, 1)
	go func() {
		held <- srv.PutMediaClient().Put(context.Background(), putmedia.Request{StreamName: "cam", Body: pr}, nil)
	}()
	_, err := pw.Write(data[:100]) // a header's start: the session is open
	require.NoError(t, err)

	start := time.UnixMilli(1_700_000_000_000)
	cfg := baseConfig(srv, "cam")
	cfg.Fast, cfg.StartTime = true, start
	st := runFile(t, cfg, data)
	require.Zero(t, st.Reconnects)
	require.Zero(t, st.Pending+st.Skipped+st.Dropped)
	pw.Close()
	<-held
	requireAllFrames(t, sourceFrames(t, data), storedFragments(t, srv, "cam"), start)
}

// When PutMedia cannot get through, stopping waits StopTimeout and then
// reports which fragments were not confirmed.
func TestStopReportsUnconfirmed(t *testing.T) {
	px := newFaultProxy(t)
	r := newProxiedRun(t, px, 2)
	px.target.Store("127.0.0.1:1") // PutMedia goes nowhere
	r.cfg.StopTimeout = 300 * time.Millisecond
	p, err := producer.New(r.cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st, err := p.Run(ctx, producer.NewMKVSource(bytes.NewReader(r.data), false))
	require.NoError(t, err)
	require.Equal(t, int64(5), st.Pending)
	require.Zero(t, st.Persisted)
	require.Positive(t, st.Reconnects)
	start := r.start
	require.Equal(t, []time.Time{start, start.Add(400 * time.Millisecond), start.Add(800 * time.Millisecond),
		start.Add(1200 * time.Millisecond), start.Add(1600 * time.Millisecond)}, st.Unconfirmed)
}

// gatedSource hands out an inner source's frames and stops before frame at[i] until gate i is
// opened, so a test can change the stream between fragments while one connection streams.
type gatedSource struct {
	producer.Source
	at    []int
	gates []chan struct{}
	n     int
}

func newGatedSource(inner producer.Source, at ...int) *gatedSource {
	g := &gatedSource{Source: inner, at: at}
	for range at {
		g.gates = append(g.gates, make(chan struct{}))
	}
	return g
}

func (g *gatedSource) ReadFrame(ctx context.Context) (producer.Frame, error) {
	for i, at := range g.at {
		if g.n == at {
			select {
			case <-g.gates[i]:
			case <-ctx.Done():
				return producer.Frame{}, ctx.Err()
			}
		}
	}
	g.n++
	return g.Source.ReadFrame(ctx)
}

// Retention changed across 0 while one connection streams (6 → 0 → 2 hours): the connection goes
// on, every fragment is acknowledged, and the stream holds exactly the fragments completed while
// retention was above 0 (KVS keeps nothing at 0): no video is lost around either change.
func TestRetentionChangesAcrossZeroLoseNothing(t *testing.T) {
	// While retention is 0, a sweep would rightly expire fragments 0-39 (their retention is then
	// 0 too); this test is about what ingest keeps, so no sweep runs during it.
	srv := kvstest.Start(t, kvstest.Options{Configure: func(c *app.Config) { c.RetentionInterval = time.Hour }})
	createStream(t, srv, "cam", 6)
	data := clip(t, 6, 10) // 150 frames, a keyframe every 10: 15 fragments of 400 ms
	src := sourceFrames(t, data)
	start := time.UnixMilli(1_700_000_000_000)
	cfg := baseConfig(srv, "cam")
	cfg.Fast, cfg.StartTime, cfg.FragmentDuration = true, start, 400*time.Millisecond
	persisted := make(chan struct{}, len(src))
	var evs events
	cfg.OnEvent = func(ev producer.Event) {
		evs.add(ev)
		if ev.Kind == producer.EventFragmentPersisted {
			persisted <- struct{}{}
		}
	}
	waitPersisted := func(n int) {
		t.Helper()
		for range n {
			select {
			case <-persisted:
			case <-time.After(30 * time.Second):
				t.Fatalf("waiting for PERSISTED: %s", &evs)
			}
		}
	}
	setRetention := func(from, to int32) {
		t.Helper()
		kv := srv.KinesisVideo()
		d, err := kv.DescribeStream(context.Background(), &kinesisvideo.DescribeStreamInput{StreamName: aws.String("cam")})
		require.NoError(t, err)
		op, change := types.UpdateDataRetentionOperationDecreaseDataRetention, from-to
		if to > from {
			op, change = types.UpdateDataRetentionOperationIncreaseDataRetention, to-from
		}
		_, err = kv.UpdateDataRetention(context.Background(), &kinesisvideo.UpdateDataRetentionInput{StreamName: aws.String("cam"),
			CurrentVersion: d.StreamInfo.Version, Operation: op, DataRetentionChangeInHours: aws.Int32(change)})
		require.NoError(t, err)
	}

	// A fragment is complete when the next one's keyframe arrives: frame 50 completes the 5th.
	gated := newGatedSource(producer.NewMKVSource(bytes.NewReader(data), false), 50, 100)
	p, err := producer.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan producer.Stats, 1)
	go func() {
		st, err := p.Run(ctx, gated)
		assert.NoError(t, err)
		done <- st
	}()
	waitPersisted(4) // frames 0-39
	setRetention(6, 0)
	close(gated.gates[0])
	waitPersisted(5) // frames 40-89 are acknowledged but not kept
	setRetention(0, 2)
	close(gated.gates[1])
	st := <-done

	require.Zero(t, st.Reconnects, "the connection survives both changes: %s", &evs)
	require.Zero(t, st.Pending+st.Skipped+st.Dropped, "%s", &evs)
	require.Equal(t, int64(15), st.Persisted)
	kept := append(slices.Clone(src[:40]), src[90:]...)
	requireAllFrames(t, kept, storedFragments(t, srv, "cam"), start)
}
