//go:build cgo

package media

/*
#cgo pkg-config: libavcodec libavutil libswscale libturbojpeg
#include <stdlib.h>
#include "media.h"
*/
import "C"

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"github.com/kvsd/kvsd/internal/imaging"
)

// Memory rules kept here: Go memory goes to C only for the duration of a
// call (packets are copied by libavcodec, codec private data by kv_open);
// every C allocation lives in the kv_dec handle, which Close (or, for a
// Decoder that was never closed, a cleanup after it is garbage collected)
// frees; Go memory holds only the C handle pointer.

// Decoder decodes one stream's video and renders images from it. It keeps
// its decoder, scaler and encoders between calls. It is not safe for
// concurrent use, except that Stats may be called at any time (metrics).
type Decoder struct {
	c       *C.kv_dec
	cleanup runtime.Cleanup
	codec   string
	nalSize int           // bytes of each NAL length prefix; 0 for Annex B
	buf     []byte        // the padded copy of the packet being sent
	dirty   bool          // the decoder holds state from earlier packets
	cur     imaging.Stats // this Render call's work, added to stats at its end

	// Deblocking is skipped for a keyframe decoded alone that is shrunk at
	// least 2× (see decodePass). srcW×srcH is the size of the last picture
	// decoded (0 before the first, which is decoded exactly), from which
	// that is decided before decoding; receive checks the real size and
	// sets redo when it changed and no longer qualifies, and the pass is
	// decoded again with the filter.
	noFilter   bool // the loop filter is off in the C decoder
	redo       bool
	srcW, srcH int

	mu    sync.Mutex
	stats imaging.Stats
}

var quietLogs sync.Once

// NewDecoder returns a decoder for a Matroska video track: codecID
// "V_MPEG4/ISO/AVC" with an avcC record or "V_MPEGH/ISO/HEVC" with an hvcC
// record as codec private data. Empty codec private data means the
// parameter sets come in-band and packets are Annex B.
func NewDecoder(codecID string, codecPrivate []byte) (*Decoder, error) {
	var codec C.int
	switch codecID {
	case imaging.CodecH264:
		codec = C.KV_H264
	case imaging.CodecH265:
		codec = C.KV_HEVC
	default:
		return nil, fmt.Errorf("%w %q (kvsd decodes %s and %s)", imaging.ErrUnsupportedCodec, codecID, imaging.CodecH264, imaging.CodecH265)
	}
	nalSize, err := nalLengthSize(codecID, codecPrivate)
	if err != nil {
		return nil, err
	}
	quietLogs.Do(func() { C.kv_quiet_logs() })
	var p *C.uint8_t
	if len(codecPrivate) > 0 {
		p = (*C.uint8_t)(unsafe.Pointer(&codecPrivate[0]))
	}
	var c *C.kv_dec
	if ret := C.kv_open(&c, codec, p, C.int(len(codecPrivate))); ret < 0 {
		return nil, fmt.Errorf("media: open %s decoder: %w", codecID, avError(ret))
	}
	d := &Decoder{c: c, codec: codecID, nalSize: nalSize}
	d.cleanup = runtime.AddCleanup(d, func(c *C.kv_dec) { C.kv_close(c) }, c)
	return d, nil
}

// Close frees the decoder's C memory. The Decoder is unusable afterwards.
func (d *Decoder) Close() {
	if d.c == nil {
		return
	}
	d.cleanup.Stop()
	C.kv_close(d.c)
	d.c = nil
}

// Stats returns the work done since NewDecoder by the Render calls that
// have returned. Its stage times are CPU time of the decoding thread: a
// wall clock also counted the time the thread waited for a core, which
// on a busy machine can exceed the work.
func (d *Decoder) Stats() imaging.Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

var errClosed = errors.New("media: decoder is closed")

// Render returns one Result per sample time in at: the image of the frame
// on screen at that time, the last frame whose PTS is at or before it.
// Packets are in decode order (one fragment, or several in a row) and must
// include the keyframe each sample's frame depends on. at should be
// ascending; any order works. Samples showing the same frame get equal
// images (separate slices).
//
// Only needed packets are decoded: from the keyframe at or before each
// sample's frame up to the last frame a sample in that GOP shows, leaving
// out H.264 pictures no other references (B-frames) that no sample shows.
// A sample on a keyframe decodes that keyframe alone. Each pass through a GOP starts
// from a flushed decoder, so gaps and earlier calls leave nothing behind.
func (d *Decoder) Render(packets []imaging.Packet, at []time.Duration, spec imaging.Spec) []imaging.Result {
	res := make([]imaging.Result, len(at))
	for i, t := range at {
		res[i].At = t
	}
	spec, err := spec.Validate()
	if err == nil && d.c == nil {
		err = errClosed
	}
	if err != nil {
		for i := range res {
			res[i].Err = err
		}
		return res
	}
	pl := makePlan(packets, at, res)
	sent := 0
	for _, ps := range pl.passes {
		sent += d.decodePass(packets, ps, pl, res, spec)
	}
	d.cur.Skipped += len(packets) - sent
	// The stage times are the C side's running totals of CPU time (see thread_ns in
	// media.c), taken here, on the one goroutine that calls into d.c.
	var cpu C.kv_cpu
	C.kv_cpu_times(d.c, &cpu)
	d.mu.Lock()
	d.stats.Decoded += d.cur.Decoded
	d.stats.Unfiltered += d.cur.Unfiltered
	d.stats.Skipped += d.cur.Skipped
	d.stats.Decode = time.Duration(cpu.decode_ns)
	d.stats.Scale = time.Duration(cpu.scale_ns)
	d.stats.Encode = time.Duration(cpu.encode_ns)
	d.mu.Unlock()
	d.cur = imaging.Stats{}
	return res
}

// decodePass decodes packets ps.key..ps.last, renders the samples they
// show, and returns how many packets it sent to the decoder.
//
// A pass of a single keyframe whose image is at most half the picture's
// width and height is decoded without the in-loop deblocking filter, which
// is about a quarter of an H.264 keyframe's decode time. Nothing else is
// decoded from that picture (the next pass starts from a flushed decoder),
// so the only effect is on this image: the filter smooths 4×4 and 8×8
// block edges, and shrinking by 2 or more (area averaging) smooths them
// away too (TestUnfilteredKeyframeQuality: PSNR ≥ 40 dB against the
// filtered image). Passes that go on to P-frames decode the keyframe with
// the filter, since every later frame predicts from it. Spec.Exact turns
// the shortcut off.
func (d *Decoder) decodePass(packets []imaging.Packet, ps pass, pl plan, res []imaging.Result, spec imaging.Spec) int {
	unfiltered := !spec.Exact && ps.key == ps.last && shrinksByHalf(spec, d.srcW, d.srcH)
	sent := d.decodeOnce(packets, ps, pl, res, spec, unfiltered)
	if d.redo {
		// The picture's size changed (new parameter sets in band) and the
		// image is not shrunk enough: decode it again, exactly.
		sent = d.decodeOnce(packets, ps, pl, res, spec, false)
	}
	return sent
}

// decodeOnce is one decodePass, with or without the loop filter.
func (d *Decoder) decodeOnce(packets []imaging.Packet, ps pass, pl plan, res []imaging.Result, spec imaging.Spec, unfiltered bool) int {
	if d.dirty {
		C.kv_reset(d.c)
	}
	d.dirty = true
	d.redo = false
	if unfiltered != d.noFilter {
		C.kv_set_loop_filter(d.c, boolInt(!unfiltered))
		d.noFilter = unfiltered
	}
	failAt, failErr := -1, error(nil)
	fail := func(i int, err error) {
		failAt, failErr = i, fmt.Errorf("media: frame at %v: %w", packets[i].PTS, err)
	}
	sent := 0
	for i := ps.key; i <= ps.last; i++ {
		if i != ps.key && len(pl.shows[i]) == 0 && disposable(d.codec, packets[i].Data, d.nalSize) {
			continue // a B-frame no sample shows: nothing needs it
		}
		err := d.send(packets[i].Data, i)
		if errors.Is(err, errAgain) {
			// Not expected, as every send is followed by taking every
			// picture out; should the decoder still be full, empty it
			// and try once more.
			if err = d.receive(packets, pl, res, spec, -1); err == nil {
				err = d.send(packets[i].Data, i)
			}
		}
		sent++
		if err == nil {
			d.cur.Decoded++
			if unfiltered {
				d.cur.Unfiltered++
			}
			err = d.receive(packets, pl, res, spec, -1)
		}
		if err != nil {
			// Later frames of this GOP reference this one: stop here.
			fail(i, err)
			break
		}
	}
	// Drain: a decoder may hold pictures back (reordering delay) until it
	// sees more input or the end of it.
	if err := d.send(nil, 0); err == nil {
		if err := d.receive(packets, pl, res, spec, failAt); err != nil && failAt < 0 {
			fail(ps.last, err)
		}
	}
	if d.redo {
		return sent // decodePass decodes the pass again
	}
	for f := ps.key; f <= ps.last; f++ {
		for _, s := range pl.shows[f] {
			if res[s].Image != nil || res[s].Err != nil {
				continue
			}
			switch {
			case failErr != nil && f >= failAt:
				res[s].Err = failErr
			default:
				res[s].Err = fmt.Errorf("media: frame at %v: the decoder returned no picture for it", packets[f].PTS)
			}
		}
	}
	return sent
}

// send hands one packet to the decoder, tagged with its index; nil data
// starts draining.
func (d *Decoder) send(data []byte, index int) error {
	if data == nil {
		return checkAV(C.kv_send(d.c, nil, 0, 0))
	}
	if err := checkNALs(data, d.nalSize); err != nil {
		return err
	}
	// libavcodec may read up to KV_PADDING bytes past the end, which must
	// be zero; Go slices give no such guarantee, so copy into a reused,
	// padded buffer.
	n := len(data) + C.KV_PADDING
	if cap(d.buf) < n {
		d.buf = make([]byte, n+n/4)
	}
	buf := d.buf[:n]
	copy(buf, data)
	clear(buf[len(data):])
	p := (*C.uint8_t)(unsafe.Pointer(&buf[0]))
	ret := C.kv_send(d.c, p, C.int(len(data)), C.int64_t(index))
	if ret == C.KV_AGAIN {
		return errAgain
	}
	return checkAV(ret)
}

var errAgain = errors.New("media: the decoder takes no input before its pictures are taken out")

// receive takes every picture the decoder has ready and renders those that
// samples show. Pictures of packets at or after failAt (when ≥ 0) are
// dropped: they depend on a packet that failed.
func (d *Decoder) receive(packets []imaging.Packet, pl plan, res []imaging.Result, spec imaging.Spec, failAt int) error {
	for {
		var pic C.kv_picture
		ret := C.kv_receive(d.c, &pic)
		if ret == C.KV_AGAIN || ret == C.KV_EOF {
			return nil
		}
		if ret < 0 {
			return avError(ret)
		}
		i := int(pic.pts)
		if i < 0 || i >= len(packets) || (failAt >= 0 && i >= failAt) {
			continue
		}
		d.srcW, d.srcH = int(pic.width), int(pic.height)
		samples := pl.shows[i]
		if len(samples) == 0 || res[samples[0]].Image != nil {
			continue
		}
		if d.noFilter && !shrinksByHalf(spec, d.srcW, d.srcH) {
			d.redo = true
			continue
		}
		var img []byte
		var w, h int
		var err error
		if pic.corrupt != 0 {
			err = fmt.Errorf("media: frame at %v: the decoder reported errors in it", packets[i].PTS)
		} else {
			img, w, h, err = d.encode(int(pic.width), int(pic.height), spec)
		}
		for k, s := range samples {
			if err != nil {
				res[s].Err = err
				continue
			}
			res[s].Image, res[s].Width, res[s].Height = img, w, h
			if k > 0 {
				res[s].Image = bytes.Clone(img)
			}
		}
	}
}

// encode scales the picture kv_receive returned (srcW×srcH) and encodes it.
func (d *Decoder) encode(srcW, srcH int, spec imaging.Spec) ([]byte, int, int, error) {
	w, h := spec.Size(srcW, srcH)
	layout := C.int(C.KV_OUT_YUV420)
	if spec.Format == imaging.PNG {
		layout = C.KV_OUT_RGB24
	}
	ret := C.kv_scale(d.c, C.int(w), C.int(h), layout)
	if ret < 0 {
		return nil, 0, 0, fmt.Errorf("media: scale %d×%d to %d×%d: %w", srcW, srcH, w, h, avError(ret))
	}
	var buf *C.uint8_t
	var n C.size_t
	if spec.Format == imaging.JPEG {
		ret = C.kv_jpeg(d.c, C.int(spec.Quality), &buf, &n)
	} else {
		ret = C.kv_png(d.c, &buf, &n)
	}
	var img []byte
	if ret == 0 {
		img = C.GoBytes(unsafe.Pointer(buf), C.int(n))
	}
	switch {
	case ret == C.KV_EJPEG:
		return nil, 0, 0, fmt.Errorf("media: JPEG encode: %s", C.GoString(C.kv_jpeg_error(d.c)))
	case ret < 0:
		return nil, 0, 0, fmt.Errorf("media: %v encode: %w", spec.Format, avError(ret))
	}
	return img, w, h, nil
}

// AVError is a libav error code.
type AVError int

func (e AVError) Error() string {
	var b [128]C.char
	C.kv_strerror(C.int(e), &b[0], C.size_t(len(b)))
	return "libav: " + C.GoString(&b[0])
}

func avError(ret C.int) error { return AVError(ret) }

func checkAV(ret C.int) error {
	if ret < 0 {
		return avError(ret)
	}
	return nil
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}
