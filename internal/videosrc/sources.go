// Package videosrc holds the producer's FFmpeg sources for `kvsd put`:
// OpenFile reads H.264/H.265 video files through libavformat and
// NewTestSource encodes a moving test pattern with libx264; both are
// producer.Source values. It needs cgo; built without it, OpenFile and
// NewTestSource return an error saying so. (Images are made by package
// media; RTSP cameras are read by rtspsrc, in pure Go.)
package videosrc

import (
	"fmt"
	"time"
)

// TestOptions describe the test pattern of NewTestSource.
type TestOptions struct {
	Width, Height int           // default 1280×720; even, 16–4096
	FPS           int           // frames per second, default 30; 1–120
	Bitrate       int           // bits per second, default 2 Mbit/s
	GOP           int           // frames from one keyframe to the next, default 2 s worth
	Duration      time.Duration // 0: until the context given to ReadFrame is done
}

func (o TestOptions) withDefaults() (TestOptions, error) {
	if o.Width == 0 && o.Height == 0 {
		o.Width, o.Height = 1280, 720
	}
	if o.FPS == 0 {
		o.FPS = 30
	}
	if o.Bitrate == 0 {
		o.Bitrate = 2_000_000
	}
	if o.GOP == 0 {
		o.GOP = 2 * o.FPS
	}
	switch {
	case o.Width < 16 || o.Height < 16 || o.Width > 4096 || o.Height > 4096 || o.Width%2 != 0 || o.Height%2 != 0:
		return o, fmt.Errorf("videosrc: test pattern size %d×%d: width and height must be even and within 16–4096", o.Width, o.Height)
	case o.FPS < 1 || o.FPS > 120:
		return o, fmt.Errorf("videosrc: test pattern frame rate %d is not within 1–120", o.FPS)
	case o.Bitrate < 10_000 || o.Bitrate > 100_000_000:
		return o, fmt.Errorf("videosrc: test pattern bitrate %d is not within 10 kbit/s–100 Mbit/s", o.Bitrate)
	case o.GOP < 1 || o.GOP > 1000:
		return o, fmt.Errorf("videosrc: test pattern GOP %d is not within 1–1000 frames", o.GOP)
	case o.Duration < 0:
		return o, fmt.Errorf("videosrc: negative test pattern duration %v", o.Duration)
	}
	return o, nil
}

// FileOptions tune OpenFile.
type FileOptions struct {
	// FrameRate times raw H.264/H.265 Annex-B files, which carry no
	// timestamps; 0 means libavformat's default for them, 25 fps. Files
	// with timestamps (MP4, MOV, Matroska, MPEG-TS) ignore it.
	FrameRate float64
}
