package remux

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/pmp4"
)

// WriteClip writes a progressive MP4 (ftyp, moov, then mdat) of fragments 0..n-1 and returns
// the bytes written. It calls frag(i) twice per fragment, once for the sample tables and once
// for the payloads, so memory stays flat in the clip's length (no whole clip in memory): what
// it keeps is the sample tables and at most two fragments. The clip's timeline starts at 0 at
// fragment 0's first frame. Fragments follow each other in decode order; one that overlaps
// the previous one is played from where that one ends. mediacommon writes 32-bit chunk offsets
// and durations, so a clip past 4 GiB, or longer than 2^32 ticks of a track's timescale
// (13 hours of video), fails before anything is written.
//
// frag gets a buffer the clip no longer uses (nil at first): it may read the media into it
// (buf[:0]) instead of allocating, so a clip of any length reuses three fragment buffers.
func (m *Media) WriteClip(w io.Writer, n int, frag func(i int, buf []byte) (Fragment, error)) (int64, error) {
	if n <= 0 {
		return 0, errors.New("remux: clip without fragments")
	}
	l := &loader{m: m, frag: frag}
	c := clip{m: m, l: l}
	var scratch []byte // the first pass keeps sample sizes and times, no frame
	for i := range n {
		p, err := l.read(i, scratch)
		if err != nil {
			return 0, err
		}
		scratch = p.media
		if err := c.add(i, p); err != nil {
			return 0, fmt.Errorf("remux: clip fragment %d: %w", i, err)
		}
	}
	pres, err := c.presentation()
	if err != nil {
		return 0, fmt.Errorf("remux: clip: %w", err)
	}
	// Samples are written one by one; a large buffer turns them into few large writes (an
	// HTTP response would otherwise send a chunk, and make a system call, per frame).
	cw := &countWriter{w: w}
	bw := bufio.NewWriterSize(cw, clipWriteBuffer)
	if err := pres.Marshal(bw); err != nil {
		return cw.n, fmt.Errorf("remux: clip: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("remux: clip: %w", err)
	}
	return cw.n, nil
}

// clipWriteBuffer is the write buffer of a clip.
const clipWriteBuffer = 256 << 10

// errClipTooBig: mediacommon's MP4 has 32-bit offsets and durations.
var errClipTooBig = errors.New("clip too big for a 32-bit MP4")

// clip collects the sample tables of the first pass.
type clip struct {
	m      *Media
	l      *loader
	zero   int64 // ns: fragment 0's first frame
	tracks [2]clipTrack
	bytes  int64 // payload bytes
	count  int64 // samples
}

// clipTrack is one track's samples, with decode times in its timescale counted from zero.
type clipTrack struct {
	samples  []*pmp4.Sample
	firstDTS int64
	lastDTS  int64
}

// Limits of mediacommon's 32-bit MP4 fields, with room for the moov (at most 40 bytes of
// sample tables per sample).
const (
	maxMoovPerSample = 40
	maxMoovFixed     = 64 << 10
)

func (c *clip) add(i int, p *parsed) error {
	if i == 0 {
		c.zero = p.first
	}
	for ti, fs := range p.tracks {
		if err := c.addTrack(i, ti, fs, p); err != nil {
			return fmt.Errorf("track %d: %w", ti+1, err)
		}
	}
	if c.bytes+c.count*maxMoovPerSample+maxMoovFixed > math.MaxUint32 {
		return fmt.Errorf("%d bytes of media: %w", c.bytes, errClipTooBig)
	}
	return nil
}

func (c *clip) addTrack(i, ti int, fs []frame, p *parsed) error {
	if len(fs) == 0 {
		return nil // also when the Media has no such track
	}
	for _, f := range fs {
		if _, ok := subInt(f.pts, c.zero); !ok {
			return fmt.Errorf("frame at %d ns is too far from the clip's start: %w", f.pts, ErrInvalidFrame)
		}
	}
	timescale, frameNs := c.m.timescale(ti)
	ts, err := timing(fs, p, timescale, c.zero, frameNs)
	if err != nil {
		return err
	}
	ct := &c.tracks[ti]
	slab := make([]pmp4.Sample, len(fs))
	for k, t := range ts {
		dts := t.dts
		if len(ct.samples) == 0 {
			ct.firstDTS = dts
		} else {
			// The previous sample lasts until this one: the clip has no decode clock but
			// durations.
			dts = max(dts, ct.lastDTS)
			d := dts - ct.lastDTS
			if d > math.MaxUint32 {
				return fmt.Errorf("a gap of %d ticks of 1/%d s before frame %d: %w", d, timescale, k, ErrInvalidFrame)
			}
			ct.samples[len(ct.samples)-1].Duration = uint32(d)
		}
		off := t.pts - dts
		if off < math.MinInt32 || off > math.MaxInt32 {
			return fmt.Errorf("frame %d is presented %d ticks from its decode time: %w", k, off, ErrInvalidFrame)
		}
		size := len(fs[k].data)
		if ti == 0 && c.m.video.lengthSize != 4 {
			size = avccSize(fs[k].data, c.m.video.lengthSize)
		}
		slab[k] = pmp4.Sample{
			Duration:        uint32(t.dur),
			PTSOffset:       int32(off),
			IsNonSyncSample: !fs[k].key,
			PayloadSize:     uint32(size),
			GetPayload:      c.l.getter(i, ti, k, size),
		}
		ct.samples = append(ct.samples, &slab[k])
		ct.lastDTS = dts
		c.bytes += int64(size)
	}
	c.count += int64(len(fs))
	return nil
}

// presentation starts each track where its first frame is decoded, the earliest presentation
// time of its first fragment (never before the clip's 0): a track that starts later gets an
// empty edit. Decode times are not shifted back as they are for fMP4 and TS, so B-frames have
// negative composition offsets (ctts version 1): FFmpeg's demuxer (Chrome's for files) reads
// those right in a non-fragmented MP4, but cannot find a frame to start an edit at when a
// shifted video track also starts after 0, and plays it early.
func (c *clip) presentation() (*pmp4.Presentation, error) {
	var pres pmp4.Presentation
	for ti := range c.tracks {
		ct := &c.tracks[ti]
		if len(ct.samples) == 0 {
			if ti == 0 {
				return nil, fmt.Errorf("no video frames: %w", ErrInvalidFrame)
			}
			continue
		}
		timescale, _ := c.m.timescale(ti)
		last := ct.samples[len(ct.samples)-1]
		end := ct.lastDTS + int64(last.Duration)
		if end > math.MaxUint32 || ct.firstDTS > math.MaxInt32 {
			return nil, fmt.Errorf("track %d spans %d ticks of 1/%d s: %w", ti+1, end, timescale, errClipTooBig)
		}
		codec := c.m.video.mp4
		if ti == 1 {
			codec = &fmp4.CodecMPEG4Audio{Config: c.m.audio.config}
		}
		pres.Tracks = append(pres.Tracks, &pmp4.Track{
			ID:         len(pres.Tracks) + 1,
			TimeScale:  uint32(timescale),
			TimeOffset: int32(ct.firstDTS),
			Codec:      codec,
			Samples:    ct.samples,
		})
	}
	return &pres, nil
}

// loader fetches and parses fragments. The second pass asks for payloads in presentation
// order across tracks, which moves between neighbouring fragments at their boundaries; two
// cached fragments cover that, so each is normally fetched once per pass.
type loader struct {
	m     *Media
	frag  func(i int, buf []byte) (Fragment, error)
	cache [2]cached
}

type cached struct {
	i int
	p *parsed
}

// read fetches and parses fragment i.
func (l *loader) read(i int, buf []byte) (*parsed, error) {
	f, err := l.frag(i, buf)
	if err != nil {
		return nil, fmt.Errorf("remux: clip fragment %d: %w", i, err)
	}
	p, err := l.m.parse(f)
	if err != nil {
		return nil, fmt.Errorf("remux: clip fragment %d: %w", i, err)
	}
	p.media = f.Media
	return p, nil
}

// get returns fragment i from the cache or reads it in place of the older one cached.
func (l *loader) get(i int) (*parsed, error) {
	for _, c := range l.cache {
		if c.p != nil && c.i == i {
			return c.p, nil
		}
	}
	slot := 0
	switch {
	case l.cache[0].p == nil:
	case l.cache[1].p == nil || l.cache[1].i < l.cache[0].i:
		slot = 1
	}
	var buf []byte // the evicted fragment's: nothing refers to its frames any more
	if old := l.cache[slot].p; old != nil {
		buf = old.media
	}
	l.cache[slot] = cached{}
	p, err := l.read(i, buf)
	if err != nil {
		return nil, err
	}
	l.cache[slot] = cached{i: i, p: p}
	return p, nil
}

// getter returns a sample's payload for the second pass, checking that the fragment still
// holds what the first pass described.
func (l *loader) getter(i, track, k, size int) func() ([]byte, error) {
	return func() ([]byte, error) {
		p, err := l.get(i)
		if err != nil {
			return nil, err
		}
		fs := p.tracks[track]
		if k >= len(fs) {
			return nil, fmt.Errorf("remux: clip fragment %d changed between passes: track %d has %d frames, not %d", i, track+1, len(fs), k+1)
		}
		b := l.m.payload(track, fs[k].data)
		if len(b) != size {
			return nil, fmt.Errorf("remux: clip fragment %d changed between passes: track %d frame %d has %d bytes, not %d", i, track+1, k, len(b), size)
		}
		return b, nil
	}
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (w *countWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.n += int64(n)
	return n, err
}
