package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/app"
	"github.com/kvsd/kvsd/internal/kvsapi"
	"github.com/kvsd/kvsd/internal/kvstest"
)

// clipRequest is GetClip's JSON for a producer-time range of stream cam.
func clipRequest(from, to time.Time) map[string]any {
	return map[string]any{"StreamName": "cam", "ClipFragmentSelector": map[string]any{
		"FragmentSelectorType": "PRODUCER_TIMESTAMP",
		"TimestampRange":       map[string]any{"StartTimestamp": float64(from.UnixMilli()) / 1000, "EndTimestamp": float64(to.UnixMilli()) / 1000}}}
}

// openClip sends GetClip and checks the answer's framing: 200, video/mp4, a Content-Length
// (not chunked) and how it was sent.
func openClip(t *testing.T, srv *kvstest.Server, from, to time.Time, path string) *http.Response {
	t.Helper()
	resp := srv.Open(t, "getClip", clipRequest(from, to))
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("getClip: %d %s", resp.StatusCode, body)
	}
	require.Equal(t, "video/mp4", resp.Header.Get("Content-Type"))
	require.Positive(t, resp.ContentLength)
	require.Empty(t, resp.TransferEncoding, "not chunked")
	require.Equal(t, path, resp.Header.Get(kvsapi.ClipPathHeader))
	return resp
}

// saveClip reads the rest of a clip into a file for ffprobe, checking its length.
func saveClip(t *testing.T, resp *http.Response, head []byte) string {
	t.Helper()
	rest, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	clip := append(head, rest...)
	require.EqualValues(t, resp.ContentLength, len(clip))
	path := filepath.Join(t.TempDir(), "clip.mp4")
	require.NoError(t, os.WriteFile(path, clip, 0o600))
	return path
}

// A clip with audio plays both tracks, every frame the producer sent, whether the media is
// decrypted (encrypted at rest: it is copied, never sent from the file), or lies in clear in
// segments of a kvsd from before encryption at rest and goes out with sendfile (plain HTTP) or
// is copied from the segment files (TLS).
func TestGetClipWithAudio(t *testing.T) {
	for _, c := range []struct {
		tls, clear bool
		path       string
	}{{false, false, "copy"}, {false, true, "sendfile"}, {true, true, "file-copy"}} {
		t.Run(fmt.Sprintf("%s/clear=%v", c.path, c.clear), func(t *testing.T) {
			srv := kvstest.Start(t, kvstest.Options{TLS: c.tls, Configure: func(cfg *app.Config) { cfg.MediaInClear = c.clear }})
			srv.CreateStream(t, "cam", 24)
			start := time.Now().Add(-time.Minute).Truncate(time.Second)
			require.Len(t, kvstest.Persisted(t, srv.PutMedia(t, "cam", bytes.NewReader(pattern(t, 3, start, "320x240", "libx264", true)))), 3)
			frames, _ := srv.StoredMedia(t, "cam")
			var audio int
			for _, f := range frames {
				if f.Track == 2 {
					audio++
				}
			}
			require.Positive(t, audio)

			// ffmpeg's clusters start with the AAC priming frame, 21 ms before start.
			path := saveClip(t, openClip(t, srv, start.Add(-time.Second), start.Add(10*time.Second), c.path), nil)
			require.Equal(t, "h264", ffprobeCodec(t, path, "v"))
			require.Equal(t, "aac", ffprobeCodec(t, path, "a"))
			require.Len(t, ffprobeFrames(t, path, "v"), 75, "every video frame the producer sent")
			require.Len(t, ffprobeFrames(t, path, "a"), audio, "every audio frame the producer sent")
		})
	}
}

// Retention deleting the clip's segment while the clip is being sent changes nothing: the
// clip holds the file open, and decrypts from it.
func TestGetClipOutlivesRetention(t *testing.T) {
	dir := t.TempDir()
	srv := kvstest.Start(t, kvstest.Options{DataDir: dir, Configure: func(c *app.Config) { c.RetentionInterval = time.Hour }})
	srv.CreateStream(t, "cam", 24)
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	// Noise keeps the fragments large (about 5 MB each), so that the clip does not fit in
	// the socket buffers and the server is still sending when the segment goes.
	mkv := kvstest.FFmpegMKV(t, "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "4", "-vf", "noise=alls=80:allf=t",
		"-c:v", "libx264", "-preset", "ultrafast", "-qp", "8", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
		"-output_ts_offset", fmt.Sprintf("%d", start.Unix()), "-cluster_size_limit", "20000000", "-cluster_time_limit", "10000",
		"-f", "matroska", "-live", "1", "-")
	require.Len(t, kvstest.Persisted(t, srv.PutMedia(t, "cam", bytes.NewReader(mkv))), 4)

	resp := openClip(t, srv, start, start.Add(10*time.Second), "copy")
	require.Greater(t, resp.ContentLength, int64(16<<20))
	head := make([]byte, 1<<20)
	_, err := io.ReadFull(resp.Body, head)
	require.NoError(t, err)

	keys, err := srv.Store.Streams(context.Background())
	require.NoError(t, err)
	require.Len(t, keys, 1)
	n, err := srv.Store.Expire(context.Background(), keys[0], time.Now().Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, 4, n)
	segs, err := filepath.Glob(filepath.Join(dir, "media", "*", "*.seg"))
	require.NoError(t, err)
	require.Empty(t, segs, "retention deleted the segment")
	require.False(t, clipAnswered(t, srv), "the clip was still being sent")

	path := saveClip(t, resp, head)
	require.Len(t, ffprobeFrames(t, path, "v"), 100, "every frame the producer sent")
}

// clipAnswered reports whether the server has finished a GetClip request (its metrics count
// requests when they end).
func clipAnswered(t *testing.T, srv *kvstest.Server) bool {
	t.Helper()
	resp, err := http.Get(srv.URL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "kvsd_api_requests_total{") && strings.Contains(line, `operation="getClip"`) {
			v, err := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
			require.NoError(t, err)
			if v > 0 {
				return true
			}
		}
	}
	return false
}
