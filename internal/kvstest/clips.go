package kvstest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/putmedia"
)

// Persisted returns the fragment numbers acknowledged PERSISTED, after checking that every
// fragment went BUFFERING → RECEIVED → PERSISTED under one number and numbers increase.
func Persisted(t testing.TB, acks []putmedia.Ack) []string {
	t.Helper()
	seen := map[string][]string{}
	var order, out []string
	for _, a := range acks {
		require.NotEqual(t, "ERROR", a.EventType, "ack %+v", a)
		if a.EventType == "IDLE" {
			continue
		}
		if _, ok := seen[a.FragmentNumber]; !ok {
			order = append(order, a.FragmentNumber)
		}
		seen[a.FragmentNumber] = append(seen[a.FragmentNumber], a.EventType)
		if a.EventType == "PERSISTED" {
			out = append(out, a.FragmentNumber)
		}
	}
	for i, n := range order {
		require.Equal(t, []string{"BUFFERING", "RECEIVED", "PERSISTED"}, seen[n], "fragment %s", n)
		if i > 0 {
			require.Less(t, order[i-1], n, "fragment numbers increase")
		}
	}
	return out
}

// GreyMedia is H.264 Matroska of n seconds at 25 fps, 160×120, a keyframe every second (one
// fragment per second), absolute ms timecodes from start. Frame N (counted over the whole clip)
// is a flat picture of limited-range luma 16+4·(N mod 50), so an image tells which frame it
// shows, to within the 50-frame cycle.
func GreyMedia(t testing.TB, seconds int, start time.Time) []byte {
	// Tiny frames: the live muxer cuts clusters by time alone, so 999 ms puts each cut at a
	// keyframe.
	return GreyMediaCut(t, seconds, start, 999)
}

// GreyMediaCut is GreyMedia with clusters cut every clusterMs, wherever that falls in the GOP.
func GreyMediaCut(t testing.TB, seconds int, start time.Time, clusterMs int) []byte {
	return FFmpegMKV(t, "-f", "lavfi", "-i", "nullsrc=s=160x120:r=25,geq=lum='16+4*mod(N,50)':cb=128:cr=128",
		"-frames:v", strconv.Itoa(seconds*25), "-c:v", "libx264", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
		"-bf", "0", "-qp", "10",
		"-cluster_time_limit", strconv.Itoa(clusterMs), "-cluster_size_limit", "10000000", "-output_ts_offset", fmt.Sprintf("%d.%03d", start.UnixMilli()/1000, start.UnixMilli()%1000),
		"-f", "matroska", "-live", "1", "-")
}

// WithTags rebuilds media with producer Tags after each fragment (tags[i] for fragment i).
func WithTags(t testing.TB, media []byte, tags [][]mkv.SimpleTag) []byte {
	header, frags := Clusters(t, media)
	out := bytes.Clone(header)
	for i, f := range frags {
		out = append(out, f...)
		if i < len(tags) && len(tags[i]) > 0 {
			out = mkv.AppendTags8(out, tags[i])
		}
	}
	return out
}

// H264File writes an H.264 Matroska test clip of seconds (ffmpeg's -t) and returns its path
// and bytes.
func H264File(t testing.TB, seconds string) (string, []byte) {
	t.Helper()
	data := FFmpegMKV(t, "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-t", seconds,
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-f", "matroska", "-")
	path := filepath.Join(t.TempDir(), "clip.mkv")
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path, data
}

// SourceFile makes a 2-second 25 fps clip with ffmpeg in the format of name (a file name
// whose extension picks the container), encoded as extra says (e.g. X264).
func SourceFile(t testing.TB, name string, extra ...string) string {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed (make setup installs it)")
	}
	path := filepath.Join(t.TempDir(), name)
	args := append([]string{"-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25", "-frames:v", "50"}, extra...)
	if out, err := exec.Command("ffmpeg", append(args, path)...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	return path
}

// X264 are ffmpeg's arguments for H.264 with a keyframe every second at 25 fps and no
// B-frames.
var X264 = []string{"-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-sc_threshold", "0", "-bf", "0"}
