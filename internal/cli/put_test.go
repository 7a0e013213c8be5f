package cli_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/mkv"
)

func TestPutMissingStreamSuggestsCreate(t *testing.T) {
	srv := kvstest.Start(t)
	path, _ := kvstest.H264File(t, "1")
	out, code := kvstest.Put(t, srv.URL, "", nil, false, "--stream", "cam", path)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "stream cam does not exist at "+srv.URL+"; run again with --create")
}

func TestPutCreateFileFastWithTags(t *testing.T) {
	srv := kvstest.Start(t)
	path, data := kvstest.H264File(t, "2")
	// Flags may follow SOURCE.
	out, code := kvstest.Put(t, srv.URL, "", nil, false, "--stream", "cam", "--create", "--retention", "2", path,
		"--fast", "--fragment-duration", "400ms", "--image-every", "2", "--image-prefix", "front", "--tag", "zone=A")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "created stream cam (retention 2 h)")
	require.Contains(t, out, "cam: 5 of 5 fragments persisted")

	d, err := srv.KinesisVideo().DescribeStream(context.Background(), &kinesisvideo.DescribeStreamInput{StreamName: aws.String("cam")})
	require.NoError(t, err)
	require.Equal(t, int32(2), aws.ToInt32(d.StreamInfo.DataRetentionInHours))

	_, src, err := mkv.ReadFrames(data, mkv.Limits{})
	require.NoError(t, err)
	frames, tags := srv.StoredMedia(t, "cam")
	require.Len(t, frames, len(src))
	for i := range src {
		require.Equal(t, src[i].Data, frames[i].Data, "frame %d", i)
	}
	require.Len(t, tags, 5)
	for i, ft := range tags {
		if i%2 == 0 {
			require.Equal(t, []mkv.SimpleTag{{Name: "AWS_KINESISVIDEO_IMAGE_GENERATION"}, {Name: "AWS_KINESISVIDEO_IMAGE_PREFIX", Value: "front"}, {Name: "zone", Value: "A"}}, ft, "fragment %d", i)
		} else {
			require.Equal(t, []mkv.SimpleTag{{Name: "zone", Value: "A"}}, ft, "fragment %d", i)
		}
	}
}

func TestPutBadCredentials(t *testing.T) {
	srv := kvstest.Start(t)
	path, _ := kvstest.H264File(t, "1")
	out, code := kvstest.Put(t, srv.URL, "not-the-secret", nil, false, "--stream", "cam", "--create", path)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, srv.URL+" refused the credentials: the signature does not match: wrong secret access key")
	require.Contains(t, out, "InvalidSignatureException")
}

func TestPutUnsupportedCodec(t *testing.T) {
	srv := kvstest.Start(t)
	data := kvstest.FFmpegMKV(t, "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-t", "1", "-c:v", "libvpx", "-f", "webm", "-")
	path := filepath.Join(t.TempDir(), "clip.webm")
	require.NoError(t, os.WriteFile(path, data, 0o600))
	srv.CreateStream(t, "cam", 1)
	out, code := kvstest.Put(t, srv.URL, "", nil, false, "--stream", "cam", path)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "kvsd streams H.264/H.265, this is VP8")
}

func TestPutFlagValidation(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"x.mkv"}, "--stream is required"},
		{[]string{"--stream", "cam"}, "no SOURCE"},
		{[]string{"--stream", "cam", "a.mkv", "b.mkv"}, "one SOURCE at a time"},
		{[]string{"--stream", "cam", "--retention", "5", "a.mkv"}, "--retention applies to a stream made by --create"},
		{[]string{"--stream", "cam", "--create", "--retention", "-1", "a.mkv"}, "want hours from 0 to 87600"},
		{[]string{"--stream", "cam", "--fragment-duration", "30s", "a.mkv"}, "at most 20s"},
		{[]string{"--stream", "cam", "--tag", "novalue", "a.mkv"}, "want key=value"},
		{[]string{"--stream", "cam", "--tag", "AWS_X=1", "a.mkv"}, "names starting with AWS are reserved"},
		{[]string{"--stream", "cam", "--tag", strings.Repeat("k", 129) + "=1", "a.mkv"}, "at most 128"},
		{[]string{"--stream", "cam", "--image-prefix", "p", "a.mkv"}, "--image-prefix needs --image-generation"},
		{[]string{"--stream", "cam", "--image-every", "-2", "a.mkv"}, "--image-every -2"},
		{[]string{"--stream", "cam", "--start-time", "yesterday", "a.mkv"}, "want RFC 3339"},
		{[]string{"--stream", "cam", "--no-such-flag", "a.mkv"}, "flag provided but not defined"},
		{[]string{"--stream", "cam", "--size", "640", "testsrc"}, "want WIDTHxHEIGHT"},
		{[]string{"--stream", "cam", "--fps", "-1", "testsrc"}, "--fps -1"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, code := kvstest.Put(t, "http://127.0.0.1:1", "", nil, false, tc.args...)
			require.Equal(t, 2, code, out)
			require.Contains(t, out, tc.want)
		})
	}
	// --fast and --start-time are for files: a pipe is live.
	for _, flag := range [][]string{{"--fast"}, {"--start-time", "2026-01-02T03:04:05Z"}} {
		out, code := kvstest.Put(t, "http://127.0.0.1:1", "", strings.NewReader(""), false, append([]string{"--stream", "cam"}, append(flag, "-")...)...)
		require.Equal(t, 2, code, out)
		require.Contains(t, out, "--start-time and --fast apply to files")
	}
	for arg, want := range map[string]string{
		"rtsp://cam.invalid/stream": "rtsp://cam.invalid/stream", // an unreachable camera is named
		"/nonexistent.mkv":          "no such file",
	} {
		out, code := kvstest.Put(t, "http://127.0.0.1:1", "", nil, false, "--stream", "cam", arg)
		require.Equal(t, 1, code, out)
		require.Contains(t, out, want)
	}
}

// stdinPut pipes a command's Matroska output into `kvsd put … -`.
func stdinPut(t *testing.T, srv *kvstest.Server, cmd *exec.Cmd, args ...string) (string, int) {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	out, code := kvstest.Put(t, srv.URL, "", stdout, false, append(args, "-")...)
	require.NoError(t, cmd.Wait(), stderr.String())
	return out, code
}

func TestPutStdinFromFFmpeg(t *testing.T) {
	srv := kvstest.Start(t)
	srv.CreateStream(t, "cam", 24)
	began := time.Now()
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25",
		"-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-f", "matroska", "-")
	out, code := stdinPut(t, srv, cmd, "--stream", "cam", "--notify", "--tag", "site=lab", "--fragment-duration", "1s")
	require.Equal(t, 0, code, out)
	frames, tags := srv.StoredMedia(t, "cam")
	require.Len(t, frames, 50)
	require.Len(t, tags, 2)
	for _, ft := range tags {
		require.Equal(t, []mkv.SimpleTag{{Name: "AWS_KINESISVIDEO_NOTIFICATION"}, {Name: "site", Value: "lab"}}, ft)
	}
	// A pipe is live: the wall clock, not the stream's own times.
	require.InDelta(t, began.UnixMilli(), frames[0].Timecode, 5000)
}

func TestPutStdinFromGStreamer(t *testing.T) {
	srv := kvstest.Start(t)
	srv.CreateStream(t, "cam", 24)
	cmd := exec.Command("gst-launch-1.0", "-q", "videotestsrc", "num-buffers=50", "!", "video/x-raw,width=160,height=120,framerate=25/1",
		"!", "x264enc", "tune=zerolatency", "key-int-max=25", "speed-preset=ultrafast", "!", "h264parse",
		"!", "matroskamux", "streamable=true", "!", "fdsink", "fd=1")
	out, code := stdinPut(t, srv, cmd, "--stream", "cam", "--fragment-duration", "1s")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "cam: 2 of 2 fragments persisted")
	frames, _ := srv.StoredMedia(t, "cam")
	require.Len(t, frames, 50)
	require.True(t, frames[0].Keyframe)
	require.True(t, frames[25].Keyframe)
}

// On a terminal a file gets a progress bar, redrawn in place, and the summary after it.
func TestPutProgressBarOnTerminal(t *testing.T) {
	srv := kvstest.Start(t)
	srv.CreateStream(t, "cam", 0)
	path, _ := kvstest.H264File(t, "1.5")
	out, code := kvstest.Put(t, srv.URL, "", nil, true, "--stream", "cam", "--fragment-duration", "400ms", path) // paced: 1.5 s
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "\r\033[K[")
	require.Regexp(t, `\] +\d+%  [0-9.]+ MB/[0-9.]+ MB  \d+ fragments received  [0-9.]+ MB/s  ETA `, out)
	require.Contains(t, out, "stream cam keeps no data (retention 0)")
	require.Contains(t, out, "cam: 4 of 4 fragments received")
}
