package imagegen

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/diag"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/stream"
	"github.com/kvsd/kvsd/internal/streamwork"
)

func ms(t time.Time) int64 { return t.UnixMilli() }

// TestDeliversTaggedFragments checks keys, content types, metadata, the image count per
// fragment, the frame at each sample time and the OnDelivered hook.
func TestDeliversTaggedFragments(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	var delivered []Delivered
	e.start(func(c *Config) {
		c.OnDelivered = func(_ context.Context, st *stream.Stream, d Delivered) {
			mu.Lock()
			defer mu.Unlock()
			require.Equal(t, "cam", st.Name)
			delivered = append(delivered, d)
		}
	})
	st := e.createStream("cam", 24)
	q, w := "90", 320
	e.configure("cam", imageConfig("s3://images/some/path", 400, func(c *stream.ImageGenerationConfiguration) {
		c.FormatConfig, c.WidthPixels = map[string]string{"JPEGQuality": q}, &w
	}))
	// Samples lie on the multiples of 400 ms on the producer clock: fragments starting on one.
	base := time.UnixMilli(time.Now().Add(-time.Minute).UnixMilli() / 2000 * 2000)
	frags := e.put("cam",
		frag{start: base, tags: []mkv.SimpleTag{imageTag, {Name: fragment.TagImagePrefix, Value: "front"}, {Name: "zone", Value: "A"}}},
		frag{start: base.Add(time.Second)}, // no tag: no images (AWS's rule)
		frag{start: base.Add(2 * time.Second), tags: []mkv.SimpleTag{imageTag}},
	)
	keys := e.objs.wait(t, 6)
	e.settle("cam")
	require.Len(t, e.objs.keys(), 6, "3 samples (0, 400, 800 ms) of each tagged 1-s fragment")

	want := map[string]string{} // key → frame data
	for i, f := range []*fragment.Fragment{frags[0], frags[2]} {
		for _, off := range []int{0, 400, 800} {
			at := f.ProducerTime.Add(time.Duration(off) * time.Millisecond)
			prefix := ""
			if i == 0 {
				prefix = "front_"
			}
			key := fmt.Sprintf("images/some/path/%s111122223333_cam_%d_%s.jpg", prefix, ms(at), imageID(st.ARN, f.Number, at))
			want[key] = fmt.Sprintf("f%d fmt=0 q=90 320x0", off)
		}
	}
	for _, k := range keys {
		o := e.objs.get(k)
		require.Contains(t, want, k)
		require.Equal(t, want[k], string(o.body), k)
		require.Equal(t, "image/jpeg", o.contentType)
	}
	o := e.objs.get(keys[len(keys)-1])
	f := frags[0]
	if !strings.Contains(keys[len(keys)-1], "front_") {
		f = frags[2]
	}
	require.Equal(t, fmt.Sprint(ms(f.ProducerTime)), o.meta[MetaProducerTimestamp])
	require.Equal(t, fmt.Sprint(ms(f.ServerTime)), o.meta[MetaServerTimestamp])
	require.Equal(t, f.Number, o.meta[MetaFragmentNumber])
	for _, k := range keys {
		if strings.Contains(k, "front_") {
			require.Equal(t, "A", e.objs.get(k).meta["zone"])
		}
	}
	mu.Lock()
	require.Len(t, delivered, 6)
	require.Equal(t, frags[0].Number, delivered[0].FragmentNumber)
	require.True(t, frags[0].ProducerTime.Equal(delivered[0].ImageTime))
	require.True(t, strings.HasPrefix(delivered[0].URI, "s3://images/some/path/front_111122223333_cam_"), delivered[0].URI)
	mu.Unlock()
	made, _, renders := e.decs.counts()
	require.Equal(t, 1, made, "one decoder per stream, reused")
	require.Equal(t, 2, renders, "one render per tagged fragment")
}

// TestStreamTagServerTimelineAndPNG: the kvsd:ImageGeneration=ALL_FRAGMENTS stream tag makes
// untagged fragments eligible; SERVER_TIMESTAMP keys use the server clock.
func TestStreamTagServerTimelineAndPNG(t *testing.T) {
	e := newEnv(t)
	e.start()
	st := e.createStream("cam", 24)
	require.NoError(t, e.svc.Tag(context.Background(), stream.Ref{Name: "cam"}, map[string]string{StreamTag: AllFragments}))
	e.configure("cam", imageConfig("s3://images", 500, func(c *stream.ImageGenerationConfiguration) {
		c.ImageSelectorType, c.Format = "SERVER_TIMESTAMP", "PNG"
	}))
	producer := time.Now().Add(-time.Hour).Truncate(time.Second)
	server := time.UnixMilli(time.Now().Add(-time.Minute).UnixMilli() / 1000 * 1000) // on the 500-ms grid
	f := e.put("cam", frag{start: producer, server: server})[0]
	keys := e.objs.wait(t, 2)
	require.Equal(t, []string{
		fmt.Sprintf("images/111122223333_cam_%d_%s.png", ms(server), imageID(st.ARN, f.Number, server)),
		fmt.Sprintf("images/111122223333_cam_%d_%s.png", ms(server)+500, imageID(st.ARN, f.Number, server.Add(500*time.Millisecond))),
	}, keys)
	require.Equal(t, "image/png", e.objs.get(keys[0]).contentType)
	require.Equal(t, "f480 fmt=1 q=80 0x0", string(e.objs.get(keys[1]).body), "the frame on screen at 500 ms is the one at 480 ms")
}

// TestConfigurationAppliesFromTheNextFragment: fragments stored while images are not enabled
// never get images, even once enabled; disabling stops them.
func TestConfigurationAppliesFromTheNextFragment(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.createStream("cam", 24)
	base := time.Now().Add(-time.Minute).Truncate(time.Second)
	e.put("cam", seconds(base, 2, imageTag)...)
	e.settle("cam")
	e.configure("cam", imageConfig("s3://images", 1000))
	e.settle("cam")
	require.Empty(t, e.objs.keys(), "fragments from before the configuration")

	e.put("cam", seconds(base.Add(2*time.Second), 2, imageTag)...)
	e.objs.wait(t, 2)
	e.configure("cam", imageConfig("s3://images", 1000, func(c *stream.ImageGenerationConfiguration) { c.Status = "DISABLED" }))
	e.settle("cam")
	e.put("cam", seconds(base.Add(4*time.Second), 2, imageTag)...)
	e.settle("cam")
	e.configure("cam", imageConfig("s3://images", 1000))
	e.settle("cam")
	e.put("cam", seconds(base.Add(6*time.Second), 1, imageTag)...)
	e.objs.wait(t, 3)
	e.settle("cam")
	var times []string
	for _, k := range e.objs.keys() {
		times = append(times, strings.Split(k, "_")[2])
	}
	require.Equal(t, []string{fmt.Sprint(ms(base) + 2000), fmt.Sprint(ms(base) + 3000), fmt.Sprint(ms(base) + 6000)}, times)
}

// TestResumesAfterRestartExactlyOnce stops the generator while deliveries fail, restarts it
// on the same catalog, and checks that every image arrives, under its one key.
func TestResumesAfterRestartExactlyOnce(t *testing.T) {
	e := newEnv(t)
	e.start()
	st := e.createStream("cam", 24)
	e.configure("cam", imageConfig("s3://images", 250))
	var mu sync.Mutex
	puts := 0
	e.objs.setFail(func(_, _ string) error {
		mu.Lock()
		defer mu.Unlock()
		if puts++; puts > 5 {
			return s3Error("ServiceUnavailable", false)
		}
		return nil
	})
	base := time.Now().Add(-time.Minute).Truncate(time.Second)
	frags := e.put("cam", seconds(base, 6, imageTag)...)
	e.objs.wait(t, 5)
	// A crash: the generator stops mid-fragment (the second fragment's first image is stored).
	e.objs.setFail(nil)
	e.restart()
	keys := e.objs.wait(t, 24)
	e.settle("cam")
	require.Len(t, e.objs.keys(), 24, "6 fragments × 4 samples, no more")
	want := map[string]bool{}
	for _, f := range frags {
		for off := 0; off < 1000; off += 250 {
			at := f.ProducerTime.Add(time.Duration(off) * time.Millisecond)
			want[fmt.Sprintf("images/111122223333_cam_%d_%s.jpg", ms(at), imageID(st.ARN, f.Number, at))] = true
		}
	}
	for _, k := range keys {
		require.True(t, want[k], k)
	}

	// A stream enabled while the generator was down starts after its newest fragment.
	e.stop()
	e.createStream("late", 24)
	e.put("late", seconds(base, 2, imageTag)...)
	e.configure("late", imageConfig("s3://late", 1000))
	e.start()
	e.put("late", frag{start: base.Add(2 * time.Second), tags: []mkv.SimpleTag{imageTag}})
	e.objs.wait(t, 25)
	e.settle("late")
	require.Len(t, e.objs.keys(), 25)
}

// TestRetriesUntilDelivered: transient errors back off and retry; a permanent one (no bucket)
// is reported by Diagnose with its code and retried slowly until the bucket appears.
func TestRetriesUntilDelivered(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.createStream("cam", 24)
	e.configure("cam", imageConfig("s3://images", 1000))
	var mu sync.Mutex
	attempts := 0
	e.objs.setFail(func(_, _ string) error {
		mu.Lock()
		defer mu.Unlock()
		if attempts++; attempts <= 3 {
			return s3Error("InternalError", false)
		}
		return nil
	})
	base := time.Now().Add(-time.Minute).Truncate(time.Second)
	e.put("cam", seconds(base, 2, imageTag)...)
	e.objs.wait(t, 2)
	mu.Lock()
	require.Equal(t, 5, attempts, "3 failures, then both images")
	mu.Unlock()

	bucket, refused := false, 0
	e.objs.setFail(func(_, _ string) error {
		mu.Lock()
		defer mu.Unlock()
		if !bucket {
			refused++
			return s3Error("NoSuchBucket", true)
		}
		return nil
	})
	e.put("cam", seconds(base.Add(2*time.Second), 2, imageTag)...)
	var r diag.Report
	require.Eventually(t, func() bool {
		r = e.gen.Diagnose(context.Background(), e.stream("cam"))
		return finding(r, "DELIVERY_FAILING") != nil
	}, 5*time.Second, 10*time.Millisecond)
	f := finding(r, "DELIVERY_FAILING")
	require.Equal(t, diag.Error, f.Level)
	require.Contains(t, f.Message, "NoSuchBucket")
	require.Contains(t, f.Fix, "aws s3 mb s3://images")
	n := e.gen.ImageCounts(e.stream("cam"))
	require.Equal(t, uint64(2), n.Delivered, "the two stored before the bucket went")
	require.Positive(t, n.Pending, "the refused image waits")
	mu.Lock()
	before := refused
	mu.Unlock()
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return refused >= before+2 }, 5*time.Second, time.Millisecond,
		"retried every RetryMax")
	// Still failing: nothing dropped, nothing skipped.
	require.Len(t, e.objs.keys(), 2)
	require.Contains(t, e.logs.String(), "code=NoSuchBucket")

	mu.Lock()
	bucket = true
	mu.Unlock()
	e.objs.wait(t, 4)
	e.settle("cam")
	r = e.gen.Diagnose(context.Background(), e.stream("cam"))
	require.Nil(t, finding(r, "DELIVERY_FAILING"))
	require.Contains(t, finding(r, "IMAGES_DELIVERED").Message, "4 images delivered")
	require.Equal(t, diag.Images{Delivered: 4}, e.gen.ImageCounts(e.stream("cam")))
	require.Equal(t, diag.Images{}, e.gen.ImageCounts(&stream.Stream{Name: "never", ARN: "arn:aws:kinesisvideo:us-east-1:0:stream/never/1"}), "a stream the generator never saw")
}

// TestMediaErrorsSkipTheFragment: undecodable frames cost their images, not the stream.
func TestMediaErrorsSkipTheFragment(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.createStream("cam", 24)
	e.configure("cam", imageConfig("s3://images", 1000))
	base := time.Now().Add(-time.Minute).Truncate(time.Second)
	e.put("cam", frag{start: base, tags: []mkv.SimpleTag{imageTag}, data: "bad"},
		frag{start: base.Add(time.Second), tags: []mkv.SimpleTag{imageTag}, codec: "V_VP8"},
		frag{start: base.Add(2 * time.Second), tags: []mkv.SimpleTag{imageTag}})
	keys := e.objs.wait(t, 1)
	e.settle("cam")
	require.Len(t, keys, 1)
	require.Contains(t, keys[0], fmt.Sprint(ms(base)+2000))
	r := e.gen.Diagnose(context.Background(), e.stream("cam"))
	// The last failure was the VP8 fragment; the newest fragment is H.264 again.
	require.NotNil(t, finding(r, "CODEC_UNSUPPORTED"), "%+v", r)
}

// TestDeletedStreamLosesItsCursor: a deleted stream's state goes, its decoder is closed.
func TestDeletedStreamLosesItsCursor(t *testing.T) {
	e := newEnv(t)
	e.start()
	st := e.createStream("cam", 24)
	e.configure("cam", imageConfig("s3://images", 1000))
	e.put("cam", seconds(time.Now().Add(-time.Minute).Truncate(time.Second), 1, imageTag)...)
	e.objs.wait(t, 1)
	e.settle("cam")
	keys, err := e.db.StateKeys(context.Background(), component)
	require.NoError(t, err)
	require.Equal(t, []string{streamwork.StateKey(fragstore.KeyOf(st))}, keys)
	require.NoError(t, e.svc.Delete(context.Background(), st.ARN, nil))
	e.gen.Wake(fragstore.KeyOf(st))
	require.Eventually(t, func() bool {
		keys, _ := e.db.StateKeys(context.Background(), component)
		_, closed, _ := e.decs.counts()
		return len(keys) == 0 && closed == 1
	}, 5*time.Second, 10*time.Millisecond)
}

// TestUntaggedFragmentsWarnOnce: an enabled stream whose fragments never carry the tag logs
// one WARN, and Diagnose says how to fix it.
func TestUntaggedFragmentsWarnOnce(t *testing.T) {
	e := newEnv(t)
	e.start(func(c *Config) { c.UntaggedWarnAfter = 3 })
	e.createStream("cam", 24)
	e.configure("cam", imageConfig("s3://images", 1000))
	e.put("cam", seconds(time.Now().Add(-time.Minute).Truncate(time.Second), 8)...)
	e.settle("cam")
	require.Equal(t, 1, strings.Count(e.logs.String(), "carry no AWS_KINESISVIDEO_IMAGE_GENERATION tag"), e.logs.String())
	r := e.gen.Diagnose(context.Background(), e.stream("cam"))
	f := finding(r, "FRAGMENTS_UNTAGGED")
	require.NotNil(t, f, "%+v", r)
	require.Equal(t, diag.Error, f.Level)
	require.Contains(t, f.Fix, "aws kinesisvideo tag-stream --stream-name cam --tags kvsd:ImageGeneration=ALL_FRAGMENTS")
	require.Empty(t, e.objs.keys())
}

// TestDiagnoseConfiguration covers the configuration findings.
func TestDiagnoseConfiguration(t *testing.T) {
	e := newEnv(t)
	e.start()
	ctx := context.Background()
	e.createStream("none", 0)
	r := e.gen.Diagnose(ctx, e.stream("none"))
	require.NotNil(t, finding(r, "RETENTION_ZERO"))
	require.NotNil(t, finding(r, "IMAGE_CONFIG_MISSING"))
	require.Nil(t, finding(r, "IMAGES_OK"))

	e.createStream("off", 24)
	e.configure("off", imageConfig("s3://images", 1000, func(c *stream.ImageGenerationConfiguration) { c.Status = "DISABLED" }))
	r = e.gen.Diagnose(ctx, e.stream("off"))
	require.NotNil(t, finding(r, "IMAGE_CONFIG_DISABLED"))
	require.NotNil(t, finding(r, "NO_FRAGMENTS"))

	e.createStream("ok", 24)
	e.configure("ok", imageConfig("s3://images", 1000))
	e.put("ok", seconds(time.Now().Add(-time.Minute).Truncate(time.Second), 2, imageTag)...)
	e.objs.wait(t, 2)
	e.settle("ok")
	r = e.gen.Diagnose(ctx, e.stream("ok"))
	require.NotNil(t, finding(r, "IMAGES_OK"), "%+v", r)
	require.NotNil(t, finding(r, "FRAGMENTS_TAGGED"))
	require.Contains(t, finding(r, "IMAGE_CONFIG").Message, "an image every 1000 ms")

	e.createStream("old", 24)
	e.put("old", seconds(time.Now().Add(-time.Hour).Truncate(time.Second), 1, imageTag)...)
	r = e.gen.Diagnose(ctx, e.stream("old"))
	require.NotNil(t, finding(r, "NO_RECENT_FRAGMENTS"))
}

func finding(r diag.Report, code string) *diag.Finding {
	for i := range r.Findings {
		if r.Findings[i].Code == code {
			return &r.Findings[i]
		}
	}
	return nil
}

// TestFragmentsStartingMidGOP: fragments whose first frames depend on a keyframe one or two
// fragments back (clusters cut by time) still get their early images, in delivery and in
// GetImages.
func TestFragmentsStartingMidGOP(t *testing.T) {
	e := newEnv(t)
	e.start()
	st := e.createStream("cam", 24)
	e.configure("cam", imageConfig("s3://images", 200))
	base := time.Now().Add(-time.Minute).Truncate(time.Second)
	e.put("cam", frag{start: base, tags: []mkv.SimpleTag{imageTag}},
		frag{start: base.Add(time.Second), tags: []mkv.SimpleTag{imageTag}, keyAt: 10},
		frag{start: base.Add(2 * time.Second), tags: []mkv.SimpleTag{imageTag}, keyAt: -1}) // no keyframe at all
	e.objs.wait(t, 15)
	e.settle("cam")
	require.Len(t, e.objs.keys(), 15)
	var second []string
	for _, k := range e.objs.keys() {
		if strings.Contains(k, fmt.Sprintf("_%d_", ms(base)+1000)) || strings.Contains(k, fmt.Sprintf("_%d_", ms(base)+1200)) {
			second = append(second, string(e.objs.get(k).body))
		}
	}
	require.ElementsMatch(t, []string{"f0 fmt=0 q=80 0x0", "f200 fmt=0 q=80 0x0"}, second)

	images, _, err := e.gen.GetImages(context.Background(), st, GetImagesInput{Kind: fragstore.ProducerTime,
		Start: base.Add(time.Second), End: base.Add(2200 * time.Millisecond), SamplingInterval: i64(600), Format: "JPEG"})
	require.NoError(t, err)
	require.Len(t, images, 3)
	for i, want := range []string{"f0", "f600", "f200"} {
		require.Equal(t, want+" fmt=0 q=80 0x0", string(images[i].Content), i)
	}
}

// TestCursorWaitsForDurableImages: the cursor is recorded only after the destination made the
// images durable (objstore.Dir's Sync); until then a crash would redo them.
func TestCursorWaitsForDurableImages(t *testing.T) {
	e := newEnv(t)
	e.start()
	st := e.createStream("cam", 24)
	e.configure("cam", imageConfig("s3://images", 1000))
	e.settle("cam")
	require.Zero(t, e.cursor(st))
	e.objs.mu.Lock()
	e.objs.syncErr = errors.New("EIO")
	e.objs.mu.Unlock()
	base := time.Now().Add(-time.Minute).Truncate(time.Second)
	e.put("cam", seconds(base, 1, imageTag)...)
	e.objs.wait(t, 1)
	e.settle("cam")
	require.Zero(t, e.cursor(st), "images visible but not durable")

	e.objs.mu.Lock()
	e.objs.syncErr = nil
	e.objs.mu.Unlock()
	f := e.put("cam", seconds(base.Add(time.Second), 1, imageTag)...)[0]
	e.objs.wait(t, 2)
	e.settle("cam")
	require.Equal(t, f.Seq, e.cursor(st))
}

// TestCursorCadence: working through a backlog, the cursor is recorded (a sync of the
// destination and a catalog commit) every cursorEvery fragments and once caught up, not after
// every turn; a stream that has caught up records it after each turn.
func TestCursorCadence(t *testing.T) {
	e := newEnv(t)
	e.start()
	st := e.createStream("cam", 24)
	e.configure("cam", imageConfig("s3://images", 1000))
	e.settle("cam")
	syncs := func() int {
		e.objs.mu.Lock()
		defer e.objs.mu.Unlock()
		return e.objs.syncs
	}
	// A backlog of 2·cursorEvery+1 fragments, stored while the generator was down.
	e.stop()
	base := time.Now().Add(-time.Minute).Truncate(time.Second)
	n := 2*cursorEvery + 1
	frags := e.put("cam", seconds(base, n, imageTag)...)
	require.Greater(t, n, turnFragments, "the backlog takes several turns")
	e.start()
	e.objs.wait(t, n)
	e.settle("cam")
	require.Equal(t, frags[n-1].Seq, e.cursor(st))
	require.Equal(t, 3, syncs(), "after fragments %d, %d and %d", cursorEvery, 2*cursorEvery, n)

	// Caught up: one record per new fragment.
	e.put("cam", seconds(base.Add(time.Duration(n)*time.Second), 1, imageTag)...)
	e.objs.wait(t, n+1)
	e.settle("cam")
	require.Equal(t, 4, syncs())
	require.Equal(t, frags[n-1].Seq+1, e.cursor(st))
}
