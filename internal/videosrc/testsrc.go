//go:build cgo

package videosrc

/*
#cgo pkg-config: libavcodec libavutil
#include "videosrc.h"
#include "encode.h"
*/
import "C"

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"time"
	"unsafe"

	"github.com/kvsd/kvsd/internal/h26x"
	"github.com/kvsd/kvsd/producer"
)

// TestSource is a producer.Source that generates a moving test pattern
// (scrolling colour bars, a bouncing box, the frame number in large
// digits) and encodes it with libx264 (veryfast, zerolatency, no
// B-frames, a keyframe every GOP frames, at a steady bitrate). It is live:
// it hands out frames at the frame rate, in real time. It is not safe for
// concurrent use.
type TestSource struct {
	c       *C.kv_enc
	cleanup runtime.Cleanup
	opts    TestOptions
	cfg     h26x.Config
	track   producer.Track
	next    int64 // the next picture to draw
	last    int64 // pictures to draw (0: no end)
	drained bool
	start   time.Time // wall time of picture 0
}

// NewTestSource opens the encoder. Zero options take their defaults.
func NewTestSource(opts TestOptions) (*TestSource, error) {
	quietLogs.Do(func() { C.vs_quiet_logs() })
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	var c *C.kv_enc
	if ret := C.kv_enc_open(&c, C.int(opts.Width), C.int(opts.Height), C.int(opts.FPS), C.int64_t(opts.Bitrate), C.int(opts.GOP)); ret < 0 {
		return nil, fmt.Errorf("videosrc: open the libx264 encoder: %w", avError(int(ret)))
	}
	s := &TestSource{c: c, opts: opts}
	s.cleanup = runtime.AddCleanup(s, func(c *C.kv_enc) { C.kv_enc_close(c) }, c)
	var size C.int
	p := C.kv_enc_extradata(c, &size)
	nalus, err := h26x.SplitAnnexB(C.GoBytes(unsafe.Pointer(p), size))
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("videosrc: libx264 header: %w", err)
	}
	ps := h26x.ParamSets{Codec: h26x.H264}
	for _, n := range nalus {
		ps.Add(n)
	}
	if s.cfg, err = ps.Config(); err != nil {
		s.Close()
		return nil, fmt.Errorf("videosrc: libx264 header: %w", err)
	}
	s.track = producer.Track{CodecID: producer.CodecH264, CodecPrivate: s.cfg.Record, Width: s.cfg.Width, Height: s.cfg.Height}
	if opts.Duration > 0 {
		s.last = max(1, int64(opts.Duration.Seconds()*float64(opts.FPS)+0.5))
	}
	return s, nil
}

// Track returns the H.264 track.
func (s *TestSource) Track(context.Context) (producer.Track, error) { return s.track, nil }

// Live is true: frames come at the frame rate.
func (s *TestSource) Live() bool { return true }

// ReadFrame encodes the next picture and returns it at its time: picture
// n is returned n/FPS after the first ReadFrame. After Duration it returns
// io.EOF; with no Duration it runs until ctx is done.
func (s *TestSource) ReadFrame(ctx context.Context) (producer.Frame, error) {
	if s.c == nil {
		return producer.Frame{}, fmt.Errorf("videosrc: test source is closed")
	}
	if err := ctx.Err(); err != nil {
		return producer.Frame{}, err
	}
	if s.start.IsZero() {
		s.start = time.Now()
	}
	for {
		var data *C.uint8_t
		var size C.int
		var pts C.int64_t
		ret := C.kv_enc_receive(s.c, &data, &size, &pts)
		switch {
		case ret == 0:
			nalus, err := h26x.SplitAnnexB(unsafe.Slice((*byte)(unsafe.Pointer(data)), int(size)))
			if err != nil {
				return producer.Frame{}, fmt.Errorf("videosrc: libx264 output: %w", err)
			}
			f := producer.Frame{PTS: time.Duration(int64(pts)) * time.Second / time.Duration(s.opts.FPS)}
			f.Data, f.Keyframe = s.cfg.AppendFrame(make([]byte, 0, int(size)+16), nalus)
			if err := s.wait(ctx, f.PTS); err != nil {
				return producer.Frame{}, err
			}
			return f, nil
		case ret == C.KV_EOF:
			return producer.Frame{}, io.EOF
		case ret != C.KV_AGAIN:
			return producer.Frame{}, fmt.Errorf("videosrc: libx264: %w", avError(int(ret)))
		}
		n := s.next
		if s.last > 0 && n >= s.last {
			if s.drained {
				return producer.Frame{}, io.EOF
			}
			n, s.drained = -1, true
		}
		if ret := C.kv_enc_send(s.c, C.int64_t(n)); ret < 0 {
			return producer.Frame{}, fmt.Errorf("videosrc: libx264: %w", avError(int(ret)))
		}
		s.next++
	}
}

// wait sleeps until the frame's time comes.
func (s *TestSource) wait(ctx context.Context, pts time.Duration) error {
	d := time.Until(s.start.Add(pts))
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close frees the encoder.
func (s *TestSource) Close() error {
	if s.c != nil {
		s.cleanup.Stop()
		C.kv_enc_close(s.c)
		s.c = nil
	}
	return nil
}

var _ producer.Source = (*TestSource)(nil)
