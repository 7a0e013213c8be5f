package app_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/kvstest"
)

// kvssinkLike is 10 s of 1080p-shaped (here 320×240) 30 fps H.264 with a keyframe every 25
// frames, one Cluster per keyframe as kvssink sends it: 12 fragments of 833 ms.
func kvssinkLike(t *testing.T, start time.Time) []byte {
	return kvstest.FFmpegMKV(t, "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30", "-t", "10",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
		"-output_ts_offset", fmt.Sprintf("%d.%03d", start.UnixMilli()/1000, start.UnixMilli()%1000),
		"-f", "matroska", "-live", "1", "-")
}

// imageTimes lists the image times (ms) in a local-folder destination, sorted.
func imageTimes(t *testing.T, dir string) []int64 {
	entries, _ := os.ReadDir(dir)
	var out []int64
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".jpg") {
			out = append(out, parseKey(t, e.Name()).ms)
		}
	}
	slices.Sort(out)
	return out
}

// TestImagesEvenlySpacedAcrossFragments: kvssink's fragments (one per keyframe, 833 ms at GOP
// 25 and 30 fps) sampled every 200 ms give 5 images a second, each 200 ms after the one
// before, across fragment boundaries; every 3000 ms, one image per 3 s. The fragments that hold
// no multiple of 3000 ms get no image, and the doctor says why.
func TestImagesEvenlySpacedAcrossFragments(t *testing.T) {
	dataDir := t.TempDir()
	srv := kvstest.StartImages(t, dataDir, nil)
	// A camera clock off the grid: 10 s from 17 ms past a multiple of 3 s, so that 3 multiples
	// of 3000 ms fall in it (2983, 5983 and 8983 ms in).
	start := time.UnixMilli(time.Now().Add(-time.Hour).UnixMilli()/3000*3000 + 17)
	media := kvssinkLike(t, start)
	for _, c := range []struct {
		stream   string
		interval int64
		want     int
	}{{"fast", 200, 50}, {"slow", 3000, 3}} {
		srv.CreateStream(t, c.stream, 24)
		srv.TagStream(t, c.stream, map[string]string{"kvsd:ImageGeneration": "ALL_FRAGMENTS"})
		srv.ConfigureImages(t, c.stream, kvstest.ImageConfig("s3://images/"+c.stream, int(c.interval), map[string]any{"WidthPixels": 80}))
		require.Len(t, kvstest.Persisted(t, srv.PutMedia(t, c.stream, bytes.NewReader(media))), 12)
		frags := srv.ListFragments(t, c.stream)
		for _, f := range frags[:len(frags)-1] {
			require.InDelta(t, 833, f.Length, 1, "kvssink-like fragments")
		}
		dir := filepath.Join(dataDir, "buckets", "images", c.stream)
		require.Eventually(t, func() bool { return len(imageTimes(t, dir)) >= c.want }, 30*time.Second, 20*time.Millisecond)
		times := imageTimes(t, dir)
		require.Len(t, times, c.want, "%d images at %d ms from 10 s", c.want, c.interval)
		for i, ms := range times {
			require.Zero(t, ms%c.interval, "image %d on the %d-ms grid", i, c.interval)
			if i > 0 {
				require.Equal(t, c.interval, ms-times[i-1], "image %d", i)
			}
		}
	}
	var doc string
	require.Eventually(t, func() bool { // the fragments after the last image are handled too
		doc, _ = kvstest.Doctor(t, srv.URL, "slow")
		return strings.Contains(doc, "9 eligible fragments since kvsd started got no image")
	}, 30*time.Second, 20*time.Millisecond)
	require.Contains(t, doc, "[FRAGMENTS_WITHOUT_SAMPLE]")
	require.Contains(t, doc, "multiples of the 3000 ms SamplingInterval on the PRODUCER_TIMESTAMP timeline")
	doc, _ = kvstest.Doctor(t, srv.URL, "fast")
	require.NotContains(t, doc, "[FRAGMENTS_WITHOUT_SAMPLE]")
}
