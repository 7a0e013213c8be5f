//go:build cgo

package sourcee2e_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/kvsd/kvsd/internal/rtspsrc"
	"github.com/kvsd/kvsd/internal/rtspsrc/rtsptest"
	"github.com/kvsd/kvsd/internal/videosrc"
	"github.com/kvsd/kvsd/producer"
)

var start = time.UnixMilli(1_760_000_000_000)

func TestFilesEndToEnd(t *testing.T) {
	for _, c := range []struct{ codec, name string }{
		{producer.CodecH264, "clip.mp4"},
		{producer.CodecH265, "clip.mp4"},
		{producer.CodecH264, "clip.h264"},
		{producer.CodecH265, "clip.hevc"},
	} {
		t.Run(c.codec+"/"+c.name, func(t *testing.T) {
			path := ffmpeg(t, c.codec, c.name, 75)
			src, err := videosrc.OpenFile(path, videosrc.FileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			srv, rec, st := put(t, src, start)
			if st.Frames != 75 || st.Pending != 0 {
				t.Fatalf("stats %+v", st)
			}
			requireEveryFrame(t, rec.frames, stored(t, srv, rec.track), start)
		})
	}
}

func TestTestPatternEndToEnd(t *testing.T) {
	src, err := videosrc.NewTestSource(videosrc.TestOptions{Width: 320, Height: 240, FPS: 25, GOP: 25, Bitrate: 300_000, Duration: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	srv, rec, _ := put(t, src, time.Time{})
	if len(rec.frames) != 75 {
		t.Fatalf("the test pattern gave %d frames in 3 s at 25 fps", len(rec.frames))
	}
	got := stored(t, srv, rec.track)
	requireEveryFrame(t, rec.frames, got, time.Time{})
	// Live: stamped with the wall clock, not with a start time.
	if d := time.Since(time.UnixMilli(got[0].Timecode)); d < 0 || d > time.Minute {
		t.Errorf("first frame stamped %v ago", d)
	}
}

func TestRTSPCameraEndToEnd(t *testing.T) {
	for _, codec := range []string{producer.CodecH264, producer.CodecH265} {
		t.Run(codec, func(t *testing.T) {
			track, frames, err := rtsptest.Load(context.Background(), ffmpeg(t, codec, "cam.mp4", 75))
			if err != nil {
				t.Fatal(err)
			}
			cam, err := rtsptest.Start(rtsptest.Config{Track: track, Frames: frames})
			if err != nil {
				t.Fatal(err)
			}
			defer cam.Close()
			src, err := rtspsrc.Dial(context.Background(), cam.URL(), rtspsrc.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			// The camera never ends: stop after the clip's frames.
			srv, rec, _ := put(t, &recorder{Source: src, limit: len(frames)}, time.Time{})
			got := stored(t, srv, rec.track)
			requireEveryFrame(t, rec.frames, got, time.Time{})
			// What the camera sent is what was stored. (The codec private
			// data is made again from the parameter sets, so for H.265 it
			// lacks the SEI array ffmpeg put into the MP4's hvcC.)
			requireEveryFrame(t, frames, got, time.Time{})
			if codec == producer.CodecH264 && !bytes.Equal(rec.track.CodecPrivate, track.CodecPrivate) {
				t.Errorf("avcC %x, the camera's is %x", rec.track.CodecPrivate, track.CodecPrivate)
			}
		})
	}
}
