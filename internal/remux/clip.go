package remux

import (
	"github.com/kvsd/kvsd/internal/h26x"

	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/pmp4"
)

// WriteClip writes a progressive MP4 (ftyp, moov, then mdat) of fragments 0..n-1 and returns
// the bytes written: PlanClip, then Send reading every fragment a second time through frag.
//
// frag gets a buffer the clip no longer uses (nil at first): it may read the media into it
// (buf[:0]) instead of allocating, so a clip of any length reuses one fragment buffer.
func (m *Media) WriteClip(w io.Writer, n int, frag func(i int, buf []byte) (Fragment, error)) (int64, error) {
	c, err := m.PlanClip(n, frag)
	if err != nil {
		return 0, err
	}
	return c.Send(w, nil)
}

// Clip is a progressive MP4 of fragments whose sample tables are known: its size is known
// before a byte of it is sent.
//
// Its mdat is the fragments' parts one after the other, and every sample is a chunk of its own
// whose offset stco gives, as nginx-vod and CDNs serve MP4 from index tables. When the clip is
// Verbatim, a fragment's part is its stored media exactly as frag returned it (Cluster and
// Tags): the Matroska element headers between frames are bytes no sample refers to, which ISO
// BMFF allows, and the caller may send the part straight from where the media lies (sendfile).
// Otherwise (NAL unit lengths other than 4 bytes, which MP4 players expect, so payloads are
// rewritten) a fragment's part is its video samples, then its audio samples.
type Clip struct {
	m     *Media
	frag  func(i int, buf []byte) (Fragment, error)
	head  []byte  // ftyp, moov and the mdat header
	parts []int64 // bytes of each fragment's part of the mdat
	size  int64
	// verbatim: each part is the fragment's media; else tracks say what Send writes.
	verbatim bool
	tracks   []*clipTrack
	// tabled: fragments were planned from frame tables, so Send checks each video frame of
	// the media it reads (as the first pass does when it parses the media).
	tabled bool
}

// Size is the bytes of the MP4.
func (c *Clip) Size() int64 { return c.size }

// Verbatim reports whether fragment i's part of the mdat is its media exactly as frag returned
// it, PartSize(i) bytes: then Send may leave writing it to the caller.
func (c *Clip) Verbatim() bool { return c.verbatim }

// PartSize is the bytes of fragment i's part of the mdat.
func (c *Clip) PartSize(i int) int64 { return c.parts[i] }

// PlanClip is a clip's first pass over fragments 0..n-1: it reads each once through frag and
// keeps its sample sizes, times and places (tens of bytes a sample, no frame), then lays out
// the MP4. The clip's timeline starts at 0 at fragment 0's first frame. Fragments follow each
// other in decode order; one that overlaps the previous one is played from where that one
// ends. The MP4 has 32-bit chunk offsets and durations, so a clip past 4 GiB, or longer than
// 2^32 ticks of a track's timescale (13 hours of video), fails here.
func (m *Media) PlanClip(n int, frag func(i int, buf []byte) (Fragment, error)) (*Clip, error) {
	return m.planClip(n, frag, m.video.lengthSize == 4)
}

// planClip is PlanClip; verbatim false rewrites payloads even where they could stay as stored
// (tests cover that layout with every source).
func (m *Media) planClip(n int, frag func(i int, buf []byte) (Fragment, error), verbatim bool) (*Clip, error) {
	if n <= 0 {
		return nil, errors.New("remux: clip without fragments")
	}
	c := clip{m: m, verbatim: verbatim}
	var buf []byte // the pass keeps sample sizes and times, no frame: one buffer serves all
	for i := range n {
		f, err := frag(i, buf)
		if err != nil {
			return nil, fmt.Errorf("remux: clip fragment %d: %w", i, err)
		}
		buf = f.Media
		var p *parsed
		size := int64(len(f.Media))
		if f.Media == nil && f.Frames != nil {
			// A frame table serves only where the mdat is the stored media: rewritten payloads
			// need the frames' bytes for their sizes.
			if !c.verbatim {
				return nil, ErrNeedsMedia
			}
			p, err = m.parseTable(f)
			size = f.Size
			c.tabled = true
		} else {
			p, err = m.parse(f)
		}
		if err != nil {
			return nil, fmt.Errorf("remux: clip fragment %d: %w", i, err)
		}
		if err := c.add(i, p, f.Media, size); err != nil {
			return nil, fmt.Errorf("remux: clip fragment %d: %w", i, err)
		}
	}
	out, err := c.layout(frag)
	if err != nil {
		return nil, fmt.Errorf("remux: clip: %w", err)
	}
	return out, nil
}

// Send writes the MP4 to w and returns the bytes written. When the clip is Verbatim and media
// is not nil, media writes fragment i's part to w itself (exactly PartSize(i) bytes, say from
// a file with sendfile) and returns what it wrote; otherwise Send reads each fragment a second
// time through frag, one buffer for all, and checks that it still holds what the first pass
// found.
func (c *Clip) Send(w io.Writer, media func(i int, w io.Writer) (int64, error)) (int64, error) {
	cw := &countWriter{w: w}
	if _, err := cw.Write(c.head); err != nil {
		return cw.n, fmt.Errorf("remux: clip: %w", err)
	}
	s := sender{c: c, w: cw, cursor: make([]int, len(c.tracks))}
	if !c.verbatim {
		// Samples are written one by one; a large buffer turns them into few large writes (an
		// HTTP response would otherwise make a system call per frame).
		s.bw = bufio.NewWriterSize(cw, clipWriteBuffer)
	}
	for i, size := range c.parts {
		var err error
		if c.verbatim && media != nil {
			var n int64
			n, err = media(i, w) // w itself: an HTTP response sends an *os.File with sendfile
			cw.n += n
			if err == nil && n != size {
				err = fmt.Errorf("%d bytes of media, not %d", n, size)
			}
		} else {
			err = s.part(i, size)
		}
		if err != nil {
			return cw.n, fmt.Errorf("remux: clip fragment %d: %w", i, err)
		}
	}
	if s.bw != nil {
		if err := s.bw.Flush(); err != nil {
			return cw.n, fmt.Errorf("remux: clip: %w", err)
		}
	}
	return cw.n, nil
}

// clipWriteBuffer is the write buffer of a clip whose payloads are rewritten.
const clipWriteBuffer = 256 << 10

// sender is Send reading fragments itself.
type sender struct {
	c      *Clip
	w      io.Writer
	bw     *bufio.Writer // rewritten payloads
	buf    []byte
	cursor []int // per track: its first sample not yet written
}

// part writes fragment i's part of the mdat.
func (s *sender) part(i int, size int64) error {
	f, err := s.c.frag(i, s.buf)
	if err != nil {
		return err
	}
	s.buf = f.Media
	if s.c.verbatim {
		if int64(len(f.Media)) != size {
			return fmt.Errorf("changed between passes: %d bytes of media, not %d", len(f.Media), size)
		}
		if s.c.tabled {
			if err := s.checkVideo(i, f.Media); err != nil {
				return err
			}
		}
		_, err := s.w.Write(f.Media)
		return err
	}
	p, err := s.c.m.parse(f)
	if err != nil {
		return err
	}
	for t, ct := range s.c.tracks {
		fs := p.tracks[ct.index]
		for k := range fs {
			j := s.cursor[t] + k
			if j >= len(ct.samples) || ct.at[j].frag != i {
				return fmt.Errorf("changed between passes: track %d has more than %d frames", ct.index+1, k)
			}
			b := s.c.m.payload(ct.index, fs[k].data)
			if want := ct.samples[j].PayloadSize; int64(len(b)) != int64(want) {
				return fmt.Errorf("changed between passes: track %d frame %d has %d bytes, not %d", ct.index+1, k, len(b), want)
			}
			if _, err := s.bw.Write(b); err != nil {
				return err
			}
		}
		s.cursor[t] += len(fs)
		if j := s.cursor[t]; j < len(ct.samples) && ct.at[j].frag == i {
			return fmt.Errorf("changed between passes: track %d has %d frames, not more", ct.index+1, len(fs))
		}
	}
	return nil
}

// ErrNeedsMedia is PlanClip's answer to frame tables where the clip needs the frames' bytes
// in its first pass (payloads rewritten): the caller plans again with the media.
var ErrNeedsMedia = errors.New("remux: clip: the frames' bytes are needed, not their places")

// checkVideo checks fragment i's video frames in its media as the first pass checks parsed
// ones (NAL unit lengths that add up), before any of it is sent.
func (s *sender) checkVideo(i int, media []byte) error {
	for t, ct := range s.c.tracks {
		if ct.index != 0 {
			continue
		}
		for ; s.cursor[t] < len(ct.samples) && ct.at[s.cursor[t]].frag == i; s.cursor[t]++ {
			j := s.cursor[t]
			b := media[ct.at[j].pos : ct.at[j].pos+int64(ct.samples[j].PayloadSize)]
			if err := h26x.CheckAVCC(b, s.c.m.video.lengthSize); err != nil {
				return fmt.Errorf("track %d (%v): frame %d: %w: %w", ct.index+1, s.c.m.video.codec, j, ErrInvalidFrame, err)
			}
		}
	}
	return nil
}

// errClipTooBig: the clip's MP4 has 32-bit offsets and durations.
var errClipTooBig = errors.New("clip too big for a 32-bit MP4")

// clip collects the sample tables of the first pass.
type clip struct {
	m        *Media
	tabled   bool  // some fragment was planned from its frame table: Send checks its frames
	zero     int64 // ns: fragment 0's first frame
	tracks   [2]clipTrack
	media    []int64 // bytes of each fragment's media
	bytes    int64   // of the mdat's payload, in the larger of the two layouts
	count    int64   // samples
	verbatim bool    // every payload so far is a piece of its fragment's media, as stored
}

// clipTrack is one track's samples, with decode times in its timescale counted from zero.
type clipTrack struct {
	index    int // 0 video, 1 audio
	samples  []*pmp4.Sample
	at       []sampleAt // where each sample's payload comes from
	firstDTS int64
	lastDTS  int64
}

// sampleAt is where a sample's payload lies: its fragment, and its offset in the fragment's
// media when the payload is a piece of it as stored.
type sampleAt struct {
	frag int
	pos  int64
}

// Limits of the 32-bit MP4 fields, with room for the moov (at most 40 bytes of sample tables
// per sample).
const (
	maxMoovPerSample = 40
	maxMoovFixed     = 64 << 10
)

func (c *clip) add(i int, p *parsed, media []byte, size int64) error {
	if i == 0 {
		c.zero = p.first
	}
	for ti, fs := range p.tracks {
		if err := c.addTrack(i, ti, fs, p, media); err != nil {
			return fmt.Errorf("track %d: %w", ti+1, err)
		}
	}
	c.media = append(c.media, size)
	c.bytes += size // at least every payload of the fragment, unless rewritten
	if c.bytes+c.count*maxMoovPerSample+maxMoovFixed > math.MaxUint32 {
		return fmt.Errorf("%d bytes of media: %w", c.bytes, errClipTooBig)
	}
	return nil
}

func (c *clip) addTrack(i, ti int, fs []frame, p *parsed, media []byte) error {
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
	ct.index = ti
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
		if fs[k].placed {
			size = int(fs[k].size)
		}
		if ti == 0 && c.m.video.lengthSize != 4 {
			size = avccSize(fs[k].data, c.m.video.lengthSize)
			c.bytes += int64(size)
		}
		pos, ok := offsetIn(media, fs[k].data)
		if fs[k].placed {
			pos, ok = fs[k].pos, true
		}
		c.verbatim = c.verbatim && ok
		slab[k] = pmp4.Sample{
			Duration:        uint32(t.dur),
			PTSOffset:       int32(off),
			IsNonSyncSample: !fs[k].key,
			PayloadSize:     uint32(size),
		}
		ct.samples = append(ct.samples, &slab[k])
		ct.at = append(ct.at, sampleAt{frag: i, pos: pos})
		ct.lastDTS = dts
	}
	c.count += int64(len(fs))
	return nil
}

// offsetIn returns where data starts in media when data is a piece of it (not a copy).
func offsetIn(media, data []byte) (int64, bool) {
	off := cap(media) - cap(data) // data = media[off:…] shares media's array and its end
	if len(data) == 0 || off < 0 || off+len(data) > len(media) || &media[off] != &data[0] {
		return 0, false
	}
	return int64(off), true
}

// layout places every sample in the mdat and builds the moov.
func (c *clip) layout(frag func(i int, buf []byte) (Fragment, error)) (*Clip, error) {
	pres, err := c.presentation()
	if err != nil {
		return nil, err
	}
	out := &Clip{m: c.m, frag: frag, verbatim: c.verbatim, tabled: c.tabled, parts: make([]int64, len(c.media))}
	for ti := range c.tracks {
		if len(c.tracks[ti].samples) > 0 {
			out.tracks = append(out.tracks, &c.tracks[ti])
		}
	}
	// Rewritten payloads: a fragment's part is its video samples, then its audio samples.
	rel := make([][]int64, len(out.tracks)) // sample offsets within their fragment's part
	for t, ct := range out.tracks {
		rel[t] = make([]int64, len(ct.samples))
		for k, s := range ct.samples {
			at := ct.at[k]
			if c.verbatim {
				rel[t][k] = at.pos
				continue
			}
			rel[t][k] = out.parts[at.frag]
			out.parts[at.frag] += int64(s.PayloadSize)
		}
	}
	if c.verbatim {
		copy(out.parts, c.media)
	}
	starts := make([]int64, len(out.parts)) // of each part in the mdat's payload
	var total int64
	for i, n := range out.parts {
		starts[i] = total
		total += n
	}
	offs := make([][]uint32, len(out.tracks))
	for t, ct := range out.tracks {
		offs[t] = make([]uint32, len(ct.samples))
		for k := range ct.samples {
			o := starts[ct.at[k].frag] + rel[t][k]
			if o > math.MaxUint32 {
				return nil, errClipTooBig
			}
			offs[t][k] = uint32(o)
		}
	}
	moov, err := clipMoov(pres, out.tracks, offs)
	if err != nil {
		return nil, err
	}
	mdat := 8 + total
	if int64(len(moov))+mdat > math.MaxUint32 {
		return nil, fmt.Errorf("%d bytes: %w", int64(len(moov))+mdat, errClipTooBig)
	}
	out.head = binary.BigEndian.AppendUint32(moov, uint32(mdat))
	out.head = append(out.head, "mdat"...)
	out.size = int64(len(moov)) + mdat
	return out, nil
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
		// mediacommon gets one sample as long as the track: what it derives from samples
		// (the track's duration, its edit list) comes out the same, and clipMoov writes the
		// sample tables.
		pres.Tracks = append(pres.Tracks, &pmp4.Track{
			ID:         len(pres.Tracks) + 1,
			TimeScale:  uint32(timescale),
			TimeOffset: int32(ct.firstDTS),
			Codec:      codec,
			Samples:    []*pmp4.Sample{{Duration: uint32(end - ct.firstDTS), PTSOffset: ct.samples[0].PTSOffset}},
		})
	}
	return &pres, nil
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
