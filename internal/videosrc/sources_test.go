//go:build cgo

package videosrc_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvsd/kvsd/internal/h26x"
	"github.com/kvsd/kvsd/internal/imaging"
	"github.com/kvsd/kvsd/internal/media"
	"github.com/kvsd/kvsd/internal/videosrc"
	"github.com/kvsd/kvsd/producer"
)

// ffmpegFile runs ffmpeg with a lavfi testsrc2 input of the given frames
// and then args, writing the file name (last of args) into a temporary
// folder, and returns its path.
func ffmpegFile(tb testing.TB, input string, frames int, args ...string) string {
	tb.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		tb.Skip("ffmpeg not installed (make setup installs it)")
	}
	path := filepath.Join(tb.TempDir(), args[len(args)-1])
	full := []string{"-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi", "-i", input, "-frames:v", fmt.Sprint(frames)}
	full = append(full, args[:len(args)-1]...)
	full = append(full, path)
	out, err := exec.Command("ffmpeg", full...).CombinedOutput()
	if err != nil {
		tb.Fatalf("ffmpeg %s: %v\n%s", strings.Join(full, " "), err, out)
	}
	return path
}

var encodeArgs = map[string][]string{
	producer.CodecH264: {"-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-keyint_min", "10", "-sc_threshold", "0", "-bf", "0"},
	producer.CodecH265: {"-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "keyint=10:min-keyint=10:scenecut=0:bframes=0:log-level=error"},
}

// readAll reads a source to its end.
func readAll(tb testing.TB, src producer.Source) (producer.Track, []producer.Frame) {
	tb.Helper()
	ctx := context.Background()
	track, err := src.Track(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	var frames []producer.Frame
	for {
		f, err := src.ReadFrame(ctx)
		if errors.Is(err, io.EOF) {
			return track, frames
		}
		if err != nil {
			tb.Fatalf("frame %d: %v", len(frames), err)
		}
		frames = append(frames, f)
	}
}

// checkFrames asserts what a user of a source relies on: the count, a
// keyframe every gop frames, timestamps step apart from 0, 4-byte NAL
// lengths, and every frame decoding (with the track's codec private data
// only) to a picture of the track's size.
func checkFrames(tb testing.TB, track producer.Track, frames []producer.Frame, count, gop int, step time.Duration, w, h int) {
	tb.Helper()
	if track.Width != w || track.Height != h {
		tb.Fatalf("track %d×%d, want %d×%d", track.Width, track.Height, w, h)
	}
	if len(frames) != count {
		tb.Fatalf("%d frames, want %d", len(frames), count)
	}
	var packets []imaging.Packet
	var at []time.Duration
	for i, f := range frames {
		if f.Keyframe != (i%gop == 0) {
			tb.Errorf("frame %d: keyframe %v, want a keyframe every %d frames", i, f.Keyframe, gop)
		}
		if want := time.Duration(i) * step; f.PTS < want-time.Microsecond || f.PTS > want+time.Microsecond {
			tb.Errorf("frame %d: PTS %v, want %v", i, f.PTS, want)
		}
		if _, err := h26x.SplitAVCC(f.Data, 4); err != nil {
			tb.Fatalf("frame %d: %v", i, err)
		}
		packets = append(packets, imaging.Packet{Data: f.Data, PTS: f.PTS, Key: f.Keyframe})
		at = append(at, f.PTS)
	}
	dec, err := media.NewDecoder(track.CodecID, track.CodecPrivate)
	if err != nil {
		tb.Fatal(err)
	}
	defer dec.Close()
	for i, r := range dec.Render(packets, at, imaging.Spec{Format: imaging.JPEG, Width: 64}) {
		if r.Err != nil || r.FramePTS != at[i] {
			tb.Fatalf("frame %d does not decode: %v (shown: %v)", i, r.Err, r.FramePTS)
		}
	}
	// The full-size picture of the last frame has the track's size.
	last := dec.Render(packets, at[len(at)-1:], imaging.Spec{Format: imaging.JPEG})[0]
	if last.Err != nil || last.Width != w || last.Height != h {
		tb.Fatalf("last frame: %v, %d×%d", last.Err, last.Width, last.Height)
	}
}

func TestFileSourceMP4(t *testing.T) {
	for _, codec := range []string{producer.CodecH264, producer.CodecH265} {
		t.Run(codec, func(t *testing.T) {
			// 30 fps in MP4: timestamps in 1/15360 s ticks, 512 a frame.
			args := append(append([]string{}, encodeArgs[codec]...), "clip.mp4")
			path := ffmpegFile(t, "testsrc2=s=322x242:r=30", 45, args...)
			src, err := videosrc.OpenFile(path, videosrc.FileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			if src.Live() {
				t.Error("a file is not live")
			}
			if done, total := src.Progress(); total <= 0 || done > total {
				t.Errorf("progress before reading: %d of %d bytes", done, total)
			}
			track, frames := readAll(t, src)
			if track.CodecID != codec {
				t.Fatalf("codec %s", track.CodecID)
			}
			checkFrames(t, track, frames, 45, 10, time.Second/30, 322, 242)
			// At the end every byte of the video was read.
			if done, total := src.Progress(); done < total*9/10 || done > total {
				t.Errorf("progress at the end: %d of %d bytes", done, total)
			}
		})
	}
}

// MPEG-TS carries Annex-B packets with timestamps (90 kHz, not from 0).
func TestFileSourceMPEGTS(t *testing.T) {
	for _, codec := range []string{producer.CodecH264, producer.CodecH265} {
		t.Run(codec, func(t *testing.T) {
			args := append(append([]string{}, encodeArgs[codec]...), "clip.ts")
			src, err := videosrc.OpenFile(ffmpegFile(t, "testsrc2=s=320x180:r=30", 30, args...), videosrc.FileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			track, frames := readAll(t, src)
			if track.CodecID != codec {
				t.Fatalf("codec %s", track.CodecID)
			}
			checkFrames(t, track, frames, 30, 10, time.Second/30, 320, 180)
		})
	}
}

func TestFileSourceAnnexB(t *testing.T) {
	for _, c := range []struct {
		codec, file string
		rate        float64
		step        time.Duration
	}{
		{producer.CodecH264, "clip.h264", 0, 40 * time.Millisecond}, // libavformat's 25 fps
		{producer.CodecH264, "clip.264", 30, time.Second / 30},
		{producer.CodecH265, "clip.hevc", 0, 40 * time.Millisecond},
		{producer.CodecH265, "clip.h265", 50, 20 * time.Millisecond},
	} {
		t.Run(fmt.Sprintf("%s at %v fps", c.file, c.rate), func(t *testing.T) {
			args := append(append([]string{}, encodeArgs[c.codec]...), "-f", strings.TrimPrefix(filepath.Ext(c.file), "."), c.file)
			if c.codec == producer.CodecH264 {
				args[len(args)-2] = "h264"
			} else {
				args[len(args)-2] = "hevc"
			}
			path := ffmpegFile(t, "testsrc2=s=320x180:r=30", 25, args...)
			src, err := videosrc.OpenFile(path, videosrc.FileOptions{FrameRate: c.rate})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			track, frames := readAll(t, src)
			if track.CodecID != c.codec {
				t.Fatalf("codec %s", track.CodecID)
			}
			checkFrames(t, track, frames, 25, 10, c.step, 320, 180)
			// Parameter sets that repeat the codec private data are gone
			// from the frames (the raw stream has them in its first frame).
			nalus, _ := h26x.SplitAVCC(frames[0].Data, 4)
			codec := h26x.H264
			if c.codec == producer.CodecH265 {
				codec = h26x.H265
			}
			for _, n := range nalus {
				if h26x.IsParamSet(codec, n) {
					t.Error("the first frame repeats a parameter set of the codec private data")
				}
			}
		})
	}
}

func TestFileSourceRejectsOtherCodecs(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-c:v", "libvpx", "-deadline", "realtime", "x.webm"}, "kvsd streams H.264/H.265; x.webm is VP8"},
		{[]string{"-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "y.mkv"}, "kvsd streams H.264/H.265; y.mkv is VP9"},
		{[]string{"-c:v", "mpeg4", "z.mp4"}, "kvsd streams H.264/H.265; z.mp4 is MPEG-4 Part 2"},
	} {
		path := ffmpegFile(t, "testsrc2=s=160x120:r=10", 5, c.args...)
		_, err := videosrc.OpenFile(path, videosrc.FileOptions{})
		var uc *producer.UnsupportedCodecError
		if !errors.As(err, &uc) || err.Error() != c.want {
			t.Errorf("OpenFile(%s): %v, want %q", filepath.Base(path), err, c.want)
		}
		if !errors.Is(err, producer.ErrUnsupportedCodec) {
			t.Errorf("OpenFile(%s): %v does not match producer.ErrUnsupportedCodec", filepath.Base(path), err)
		}
	}
	audio := ffmpegFile(t, "sine=frequency=440:duration=0.2", 1, "-c:a", "aac", "tone.m4a")
	if _, err := videosrc.OpenFile(audio, videosrc.FileOptions{}); err == nil || !strings.Contains(err.Error(), "tone.m4a has no video stream") {
		t.Errorf("audio-only file: %v", err)
	}
	if _, err := videosrc.OpenFile(filepath.Join(t.TempDir(), "missing.mp4"), videosrc.FileOptions{}); err == nil || !strings.Contains(err.Error(), "missing.mp4") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := videosrc.OpenFile("x.h264", videosrc.FileOptions{FrameRate: -1}); err == nil {
		t.Error("negative frame rate accepted")
	}
}

func TestTestSource(t *testing.T) {
	src, err := videosrc.NewTestSource(videosrc.TestOptions{Width: 320, Height: 240, FPS: 30, GOP: 15, Bitrate: 300_000, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if !src.Live() {
		t.Error("the test source is live")
	}
	start := time.Now()
	track, frames := readAll(t, src)
	elapsed := time.Since(start)
	if track.CodecID != producer.CodecH264 {
		t.Fatalf("codec %s", track.CodecID)
	}
	checkFrames(t, track, frames, 30, 15, time.Second/30, 320, 240)
	// Real time: the last frame (at 29/30 s) does not come early.
	if elapsed < 29*time.Second/30 {
		t.Errorf("30 frames at 30 fps took %v", elapsed)
	}
	// The pattern moves: frames a second apart differ.
	dec, err := media.NewDecoder(track.CodecID, track.CodecPrivate)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	var packets []imaging.Packet
	for _, f := range frames {
		packets = append(packets, imaging.Packet{Data: f.Data, PTS: f.PTS, Key: f.Keyframe})
	}
	imgs := dec.Render(packets, []time.Duration{0, frames[29].PTS}, imaging.Spec{Format: imaging.PNG})
	if imgs[0].Err != nil || imgs[1].Err != nil || bytes.Equal(imgs[0].Image, imgs[1].Image) {
		t.Errorf("first and last pictures: %v, %v, equal %v", imgs[0].Err, imgs[1].Err, bytes.Equal(imgs[0].Image, imgs[1].Image))
	}
}

func TestTestSourceRunsUntilCancelled(t *testing.T) {
	src, err := videosrc.NewTestSource(videosrc.TestOptions{Width: 160, Height: 120, FPS: 25})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	n := 0
	for {
		_, err := src.ReadFrame(ctx)
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("after %d frames: %v", n, err)
			}
			break
		}
		n++
	}
	// About 12 frames in 0.5 s at 25 fps; never many more (real time).
	if n < 5 || n > 14 {
		t.Errorf("%d frames in 0.5 s at 25 fps", n)
	}
	for _, bad := range []videosrc.TestOptions{{Width: 15, Height: 16}, {Width: 321, Height: 240}, {FPS: 500}, {Bitrate: -1}, {Duration: -time.Second}} {
		if _, err := videosrc.NewTestSource(bad); err == nil {
			t.Errorf("NewTestSource(%+v) accepted", bad)
		}
	}
}
