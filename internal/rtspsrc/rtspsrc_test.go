//go:build cgo

package rtspsrc_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/format"

	"github.com/kvsd/kvsd/internal/imaging"
	"github.com/kvsd/kvsd/internal/logtest"
	"github.com/kvsd/kvsd/internal/media"
	"github.com/kvsd/kvsd/internal/rtspsrc"
	"github.com/kvsd/kvsd/internal/rtspsrc/rtsptest"
	"github.com/kvsd/kvsd/producer"
)

// clip encodes frames frames of 320×180 at 25 fps, a keyframe every 10,
// with ffmpeg and reads them back with videosrc.OpenFile.
func clip(tb testing.TB, codec string, frames int) (producer.Track, []producer.Frame) {
	tb.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		tb.Skip("ffmpeg not installed (make setup installs it)")
	}
	path := filepath.Join(tb.TempDir(), "clip.mp4")
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi", "-i", "testsrc2=s=320x180:r=25",
		"-frames:v", fmt.Sprint(frames)}
	if codec == producer.CodecH264 {
		args = append(args, "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-sc_threshold", "0", "-bf", "0")
	} else {
		args = append(args, "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "keyint=10:min-keyint=10:scenecut=0:bframes=0:log-level=error")
	}
	if out, err := exec.Command("ffmpeg", append(args, path)...).CombinedOutput(); err != nil {
		tb.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	track, out, err := rtsptest.Load(context.Background(), path)
	if err != nil {
		tb.Fatal(err)
	}
	return track, out
}

func serve(tb testing.TB, cfg rtsptest.Config) *rtsptest.Server {
	tb.Helper()
	srv, err := rtsptest.Start(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(srv.Close)
	return srv
}

// decodes checks that the frames decode with the track's codec private data.
func decodes(tb testing.TB, track producer.Track, frames []producer.Frame) {
	tb.Helper()
	dec, err := media.NewDecoder(track.CodecID, track.CodecPrivate)
	if err != nil {
		tb.Fatal(err)
	}
	defer dec.Close()
	var packets []imaging.Packet
	var at []time.Duration
	for _, f := range frames {
		packets = append(packets, imaging.Packet{Data: f.Data, PTS: f.PTS, Key: f.Keyframe})
		at = append(at, f.PTS)
	}
	for i, r := range dec.Render(packets, at, imaging.Spec{Format: imaging.JPEG, Width: 32}) {
		if r.Err != nil || r.FramePTS != at[i] {
			tb.Fatalf("frame %d does not decode: %v", i, r.Err)
		}
	}
}

// Every frame the camera sends arrives, byte for byte, with its keyframe
// flag and its timing, whether the parameter sets come in the SDP or only
// in-band.
func TestEveryFrameArrives(t *testing.T) {
	for _, c := range []struct {
		codec  string
		inBand bool
		tcp    bool
	}{
		{producer.CodecH264, false, false},
		{producer.CodecH264, true, true},
		{producer.CodecH265, false, true},
		{producer.CodecH265, true, false},
	} {
		t.Run(fmt.Sprintf("%s/in-band=%v/tcp=%v", c.codec, c.inBand, c.tcp), func(t *testing.T) {
			track, frames := clip(t, c.codec, 30)
			srv := serve(t, rtsptest.Config{Track: track, Frames: frames, InBand: c.inBand})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			src, err := rtspsrc.Dial(ctx, srv.URL(), rtspsrc.Options{TCP: c.tcp})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			if !src.Live() {
				t.Error("a camera is live")
			}
			got, err := src.Track(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got.CodecID != c.codec || got.Width != 320 || got.Height != 180 {
				t.Fatalf("track %s %d×%d", got.CodecID, got.Width, got.Height)
			}
			var out []producer.Frame
			for len(out) < len(frames) {
				f, err := src.ReadFrame(ctx)
				if err != nil {
					t.Fatalf("after %d frames: %v", len(out), err)
				}
				out = append(out, f)
			}
			for i, f := range out {
				if !bytes.Equal(f.Data, frames[i].Data) || f.Keyframe != frames[i].Keyframe {
					t.Fatalf("frame %d differs (keyframe %v, %d bytes; want %v, %d bytes)", i, f.Keyframe, len(f.Data), frames[i].Keyframe, len(frames[i].Data))
				}
				if d := f.PTS - frames[i].PTS; d < -time.Millisecond || d > time.Millisecond {
					t.Fatalf("frame %d: PTS %v, want %v", i, f.PTS, frames[i].PTS)
				}
			}
			decodes(t, got, out)
		})
	}
}

// A camera that reboots: the source says so, dials again with backoff,
// and goes on from the next keyframe with timestamps that keep growing.
func TestReconnectsWhenTheCameraDrops(t *testing.T) {
	track, frames := clip(t, producer.CodecH264, 20)
	srv := serve(t, rtsptest.Config{Track: track, Frames: frames, Loop: true})
	var logs logtest.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src, err := rtspsrc.Dial(ctx, srv.URL(), rtspsrc.Options{
		MinBackoff: 100 * time.Millisecond,
		Logger:     slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var out []producer.Frame
	read := func(n int) {
		for range n {
			f, err := src.ReadFrame(ctx)
			if err != nil {
				t.Fatalf("after %d frames: %v\nlogs:\n%s", len(out), err, logs.String())
			}
			out = append(out, f)
		}
	}
	read(15)
	before := len(out)
	if err := srv.Drop(2); err != nil { // back after two failed dials (about 100 + 200 ms)
		t.Fatal(err)
	}
	read(25)
	if !strings.Contains(logs.String(), "camera connection lost; reconnecting") || !strings.Contains(logs.String(), "camera still unreachable") ||
		!strings.Contains(logs.String(), "camera reconnected") {
		t.Fatalf("the logs do not tell of the drop:\n%s", logs.String())
	}
	// Frames sent while the camera was down are lost; the source starts
	// again at a keyframe.
	gap := -1
	for i := 1; i < len(out); i++ {
		if out[i].PTS <= out[i-1].PTS {
			t.Fatalf("PTS goes from %v to %v at frame %d", out[i-1].PTS, out[i].PTS, i)
		}
		if out[i].PTS-out[i-1].PTS > 300*time.Millisecond {
			gap = i
		}
	}
	if gap < before || !out[gap].Keyframe {
		t.Fatalf("no gap at a keyframe after frame %d (gap at %d)", before, gap)
	}
	decodes(t, track, out[gap:])
}

func TestRejectsOtherCodecs(t *testing.T) {
	srv := serve(t, rtsptest.Config{Format: &format.VP8{PayloadTyp: 96}})
	_, err := rtspsrc.Dial(context.Background(), srv.URL(), rtspsrc.Options{})
	var uc *producer.UnsupportedCodecError
	if want := "kvsd streams H.264/H.265; " + srv.URL() + " is VP8"; !errors.As(err, &uc) || err.Error() != want {
		t.Fatalf("Dial: %v, want %q", err, want)
	}
	if !errors.Is(err, producer.ErrUnsupportedCodec) {
		t.Fatalf("Dial: %v does not match producer.ErrUnsupportedCodec", err)
	}
}

func TestDialErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	srv := serve(t, rtsptest.Config{Format: &format.VP8{PayloadTyp: 96}})
	srv.Close()
	if _, err := rtspsrc.Dial(ctx, srv.URL(), rtspsrc.Options{}); err == nil || !strings.Contains(err.Error(), srv.URL()) {
		t.Errorf("Dial to a closed port: %v", err)
	}
	if _, err := rtspsrc.Dial(ctx, "http://example.invalid/x", rtspsrc.Options{}); err == nil {
		t.Error("Dial accepted an http URL")
	}
	// Credentials stay out of messages.
	_, err := rtspsrc.Dial(ctx, strings.Replace(srv.URL(), "rtsp://", "rtsp://admin:secret@", 1), rtspsrc.Options{})
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("Dial with credentials: %v", err)
	}
}
