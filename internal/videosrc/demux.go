//go:build cgo

package videosrc

/*
#cgo pkg-config: libavformat libavcodec libavutil
#include <stdlib.h>
#include "videosrc.h"
#include "demux.h"
*/
import "C"

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"strings"
	"time"
	"unsafe"

	"github.com/kvsd/kvsd/internal/h26x"
	"github.com/kvsd/kvsd/producer"
)

// FileSource is a producer.Source over a video file read with
// libavformat: MP4/MOV, Matroska, MPEG-TS, raw H.264/H.265 Annex-B and
// whatever else libavformat recognizes, as long as its first video stream
// is H.264 or H.265. It is not safe for concurrent use.
type FileSource struct {
	c       *C.kv_demux
	cleanup runtime.Cleanup
	name    string
	track   producer.Track
	cfg     h26x.Config
	nalSize int   // bytes of each NAL length prefix in packets; 0: Annex B
	tbNum   int64 // the time base: seconds per tick = tbNum/tbDen
	tbDen   int64
	step    int64        // ticks of one frame, for packets without timestamps
	first   int64        // timestamp of the first frame (ticks)
	last    int64        // timestamp of the previous frame (ticks)
	started bool         // first is set
	pending []pendingPkt // packets read ahead while looking for parameter sets
}

type pendingPkt struct {
	data          []byte
	pts, dts, dur int64
}

// OpenFile opens a video file for the producer. A file whose video is not
// H.264 or H.265 is refused with a *producer.UnsupportedCodecError ("kvsd
// streams H.264/H.265; x.webm is VP8").
func OpenFile(path string, opts FileOptions) (*FileSource, error) {
	quietLogs.Do(func() { C.vs_quiet_logs() })
	if opts.FrameRate < 0 || opts.FrameRate > 1000 {
		return nil, fmt.Errorf("videosrc: frame rate %v is not within 0–1000", opts.FrameRate)
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	// The frame rate as a fraction with millisecond precision
	// (29.97 → 29970/1000).
	fpsNum, fpsDen := C.int(0), C.int(0)
	if opts.FrameRate > 0 {
		fpsNum, fpsDen = C.int(opts.FrameRate*1000+0.5), 1000
	}
	var c *C.kv_demux
	var info C.kv_demux_info
	if ret := C.kv_demux_open(&c, cpath, fpsNum, fpsDen, &info); ret < 0 {
		return nil, fmt.Errorf("videosrc: open %s: %w", path, avError(int(ret)))
	}
	s := &FileSource{c: c, name: filepath.Base(path)}
	s.cleanup = runtime.AddCleanup(s, func(c *C.kv_demux) { C.kv_demux_close(c) }, c)
	if err := s.init(&info, opts); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *FileSource) init(info *C.kv_demux_info, opts FileOptions) error {
	switch info.codec {
	case C.KV_DEMUX_NO_VIDEO:
		return fmt.Errorf("videosrc: %s has no video stream", s.name)
	case C.KV_DEMUX_OTHER:
		return &producer.UnsupportedCodecError{Source: s.name, Codec: codecName(C.GoString(&info.codec_name[0]))}
	case C.KV_H264:
		s.track.CodecID, s.cfg.Codec = producer.CodecH264, h26x.H264
	default:
		s.track.CodecID, s.cfg.Codec = producer.CodecH265, h26x.H265
	}
	if info.tb_num <= 0 || info.tb_den <= 0 {
		return fmt.Errorf("videosrc: %s: video stream without a time base", s.name)
	}
	s.tbNum, s.tbDen = int64(info.tb_num), int64(info.tb_den)
	fps := opts.FrameRate
	if fps == 0 {
		fps = 25
	}
	s.step = max(1, int64(float64(s.tbDen)/(fps*float64(s.tbNum))+0.5))
	extra := C.GoBytes(unsafe.Pointer(info.extradata), info.extradata_size)
	if len(extra) > 0 && extra[0] == 1 {
		// avcC / hvcC, as MP4 and Matroska store them.
		cfg, n, err := h26x.ConfigFromRecord(s.cfg.Codec, extra)
		if err == nil {
			s.cfg, s.nalSize = cfg, n
			s.setTrack()
			return nil
		}
		// An hev1/avc3 record without parameter sets: they are in-band.
		nalus, n2, err2 := recordLengthSize(s.cfg.Codec, extra)
		if err2 != nil {
			return fmt.Errorf("videosrc: %s: %w", s.name, err)
		}
		s.nalSize = n2
		return s.configFromStream(nalus)
	}
	// Annex B parameter sets (raw streams), possibly none.
	nalus, _ := h26x.SplitAnnexB(extra)
	return s.configFromStream(nalus)
}

// recordLengthSize reads the NAL length size (and any units) of a record
// that holds no usable parameter sets.
func recordLengthSize(c h26x.Codec, rec []byte) ([][]byte, int, error) {
	if c == h26x.H264 {
		sps, pps, n, err := h26x.ParseAVCConfig(rec)
		return append(sps, pps...), n, err
	}
	return h26x.ParseHEVCConfig(rec)
}

// configFromStream makes the configuration from the parameter sets in
// nalus and, where they are not all there, in the first packets.
func (s *FileSource) configFromStream(nalus [][]byte) error {
	ps := h26x.ParamSets{Codec: s.cfg.Codec}
	for _, n := range nalus {
		ps.Add(n)
	}
	for !ps.Ready() && len(s.pending) < 300 {
		p, err := s.readPacket()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		p.data = append([]byte(nil), p.data...)
		s.pending = append(s.pending, p)
		units, err := s.split(p.data)
		if err != nil {
			return fmt.Errorf("videosrc: %s: %w", s.name, err)
		}
		for _, n := range units {
			ps.Add(n)
		}
	}
	cfg, err := ps.Config()
	if err != nil {
		return fmt.Errorf("videosrc: %s: no usable %v parameter sets: %w", s.name, s.cfg.Codec, err)
	}
	s.cfg = cfg
	s.setTrack()
	return nil
}

func (s *FileSource) setTrack() {
	s.track.CodecPrivate = s.cfg.Record
	s.track.Width, s.track.Height = s.cfg.Width, s.cfg.Height
}

func (s *FileSource) split(b []byte) ([][]byte, error) {
	if s.nalSize == 0 {
		return h26x.SplitAnnexB(b)
	}
	return h26x.SplitAVCC(b, s.nalSize)
}

// readPacket returns the next packet; its data is C memory valid until
// the next call.
func (s *FileSource) readPacket() (pendingPkt, error) {
	if s.c == nil {
		return pendingPkt{}, errClosedSource
	}
	var data *C.uint8_t
	var size C.int
	var pts, dts, dur C.int64_t
	ret := C.kv_demux_read(s.c, &data, &size, &pts, &dts, &dur)
	if ret == C.KV_EOF {
		return pendingPkt{}, io.EOF
	}
	if ret < 0 {
		return pendingPkt{}, fmt.Errorf("videosrc: read %s: %w", s.name, avError(int(ret)))
	}
	return pendingPkt{data: unsafe.Slice((*byte)(unsafe.Pointer(data)), int(size)), pts: int64(pts), dts: int64(dts), dur: int64(dur)}, nil
}

var errClosedSource = fmt.Errorf("videosrc: file source is closed")

// Track returns the video track.
func (s *FileSource) Track(context.Context) (producer.Track, error) { return s.track, nil }

// Live is false: a file is read as fast as the caller asks.
func (s *FileSource) Live() bool { return false }

// ReadFrame returns the next frame in decoding order, io.EOF at the end.
func (s *FileSource) ReadFrame(ctx context.Context) (producer.Frame, error) {
	for {
		if err := ctx.Err(); err != nil {
			return producer.Frame{}, err
		}
		var p pendingPkt
		if len(s.pending) > 0 {
			p = s.pending[0]
			s.pending = s.pending[1:]
		} else {
			var err error
			if p, err = s.readPacket(); err != nil {
				return producer.Frame{}, err
			}
		}
		nalus, err := s.split(p.data)
		if err != nil {
			return producer.Frame{}, fmt.Errorf("videosrc: %s: packet after %v: %w", s.name, s.lastPTS(), err)
		}
		data, key := s.cfg.AppendFrame(make([]byte, 0, len(p.data)+16), nalus)
		if len(data) == 0 {
			continue // only parameter sets or delimiters: nothing to show
		}
		return producer.Frame{PTS: s.pts(p), Keyframe: key, Data: data}, nil
	}
}

func (s *FileSource) lastPTS() time.Duration {
	return s.duration(s.last - s.first)
}

// duration converts ticks to a duration, exactly (to the nanosecond
// below) and without overflow for any realistic file.
func (s *FileSource) duration(ticks int64) time.Duration {
	n := ticks * s.tbNum
	q, r := n/s.tbDen, n%s.tbDen
	return time.Duration(q)*time.Second + time.Duration(r*int64(time.Second)/s.tbDen)
}

// pts returns the packet's time from the first frame: its PTS, else its
// DTS (raw streams without B-frames), else one frame after the previous.
func (s *FileSource) pts(p pendingPkt) time.Duration {
	t := p.pts
	if t == C.KV_NOPTS {
		t = p.dts
	}
	if t == C.KV_NOPTS {
		t = s.last + s.step
		if !s.started {
			t = 0
		}
	}
	if !s.started {
		s.first, s.started = t, true
	}
	s.last = t
	return s.duration(t - s.first)
}

// Progress returns the bytes of the file read so far and its size (-1
// when unknown), for a progress bar.
func (s *FileSource) Progress() (done, total int64) {
	if s.c == nil {
		return 0, -1
	}
	var pos, size C.int64_t
	C.kv_demux_progress(s.c, &pos, &size)
	return int64(pos), int64(size)
}

// Close frees the demuxer.
func (s *FileSource) Close() error {
	if s.c != nil {
		s.cleanup.Stop()
		C.kv_demux_close(s.c)
		s.c = nil
	}
	return nil
}

// codecName turns libavcodec's long codec names into the short ones users
// know.
func codecName(long string) string {
	known := map[string]string{
		"On2 VP8":                     "VP8",
		"Google VP9":                  "VP9",
		"Alliance for Open Media AV1": "AV1",
		"MPEG-4 part 2":               "MPEG-4 Part 2",
		"Motion JPEG":                 "Motion JPEG",
		"MPEG-2 video":                "MPEG-2",
		"Theora":                      "Theora",
	}
	if n, ok := known[long]; ok {
		return n
	}
	if long == "" {
		return "an unknown codec"
	}
	return strings.TrimSpace(long)
}

var _ producer.Source = (*FileSource)(nil)
