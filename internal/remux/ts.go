package remux

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"

	"github.com/kvsd/kvsd/internal/h26x"
)

// TS timestamps are 90 kHz and 33 bits wide.
const (
	tsTimescale = 90000
	tsMask      = 1<<33 - 1
)

// AppendTS appends an MPEG-TS segment with every track (PAT/PMT first, parameter sets in band
// before keyframes, ADTS audio); PTS/DTS from the output timeline, modulo 2^33. Decode times
// are shifted back by the fragment's reorder depth so that none exceeds its presentation time.
// Video carries the PCR.
func (m *Media) AppendTS(dst []byte, f Fragment) ([]byte, error) {
	p, err := m.parse(f)
	if err != nil {
		return dst, fmt.Errorf("remux: %w", err)
	}
	units, err := m.tsUnits(p)
	if err != nil {
		return dst, fmt.Errorf("remux: %w", err)
	}
	// About 4 % of TS packet headers, PES headers, parameter sets and tables.
	out := &appendWriter{b: slices.Grow(dst, len(f.Media)+len(f.Media)/16+4096)}
	w, tracks, err := m.tsWriter(out)
	if err != nil {
		return dst, fmt.Errorf("remux: TS writer: %w", err)
	}
	if _, err := w.WriteTables(); err != nil {
		return dst, fmt.Errorf("remux: TS tables: %w", err)
	}
	for _, u := range units {
		if err := m.writeTSUnit(w, tracks[u.track], p.tracks[u.track][u.k], u); err != nil {
			return dst, fmt.Errorf("remux: track %d: frame %d: %w", u.track+1, u.k, err)
		}
	}
	return out.b, nil
}

// tsUnit is one frame to write, with 90 kHz times.
type tsUnit struct {
	track, k int
	pts, dts int64
}

// tsUnits orders the fragment's frames by decode time, video first: mediacommon makes the
// first track written the PCR track, and a video decoder needs its keyframe before anything.
func (m *Media) tsUnits(p *parsed) ([]tsUnit, error) {
	var lists [2][]tsUnit
	for i, fs := range p.tracks {
		if len(fs) == 0 {
			continue
		}
		_, frameNs := m.timescale(i)
		ts, err := timing(fs, p, tsTimescale, 0, frameNs)
		if err != nil {
			return nil, fmt.Errorf("track %d: %w", i+1, err)
		}
		shiftBack(ts, math.MaxInt64) // TS times wrap anyway
		for k, t := range ts {
			lists[i] = append(lists[i], tsUnit{track: i, k: k, pts: t.pts, dts: t.dts})
		}
	}
	units := make([]tsUnit, 0, len(lists[0])+len(lists[1]))
	v, a := lists[0], lists[1]
	for len(v) > 0 || len(a) > 0 {
		if len(a) == 0 || len(v) > 0 && (len(units) == 0 || v[0].dts <= a[0].dts) {
			units, v = append(units, v[0]), v[1:]
		} else {
			units, a = append(units, a[0]), a[1:]
		}
	}
	return units, nil
}

// tsWriter returns a TS writer with the video track and, if any, the audio track.
func (m *Media) tsWriter(out io.Writer) (*mpegts.Writer, []*mpegts.Track, error) {
	var vc mpegts.Codec = &mpegts.CodecH264{}
	if m.video.codec == h26x.H265 {
		vc = &mpegts.CodecH265{}
	}
	tracks := []*mpegts.Track{{Codec: vc}}
	if m.audio != nil {
		// ADTS knows AAC-LC only; HE-AAC is signalled implicitly in it.
		cfg := m.audio.config
		cfg.ExtensionType, cfg.ExtensionSampleRate = 0, 0
		tracks = append(tracks, &mpegts.Track{Codec: &mpegts.CodecMPEG4Audio{Config: cfg}})
	}
	w := &mpegts.Writer{W: out, Tracks: tracks}
	if err := w.Initialize(); err != nil {
		return nil, nil, err
	}
	return w, tracks, nil
}

// maxADTSFrame is what the 13-bit ADTS frame length leaves for the payload.
const maxADTSFrame = 1<<13 - 1 - 7

func (m *Media) writeTSUnit(w *mpegts.Writer, t *mpegts.Track, fr frame, u tsUnit) error {
	pts, dts := u.pts&tsMask, u.dts&tsMask
	if u.track == 1 {
		if len(fr.data) > maxADTSFrame {
			return fmt.Errorf("AAC frame of %d bytes does not fit ADTS: %w", len(fr.data), ErrInvalidFrame)
		}
		return w.WriteMPEG4Audio(t, pts, [][]byte{fr.data})
	}
	au, err := m.annexBUnit(fr)
	if err != nil {
		return err
	}
	if m.video.codec == h26x.H265 {
		return w.WriteH265(t, pts, dts, au)
	}
	return w.WriteH264(t, pts, dts, au)
}

// annexBUnit returns a video frame's NAL units with the stream's parameter sets in front of a
// keyframe (after an access unit delimiter, which must come first), so that a player can
// start at any segment.
func (m *Media) annexBUnit(fr frame) ([][]byte, error) {
	nalus, err := h26x.SplitAVCC(fr.data, m.video.lengthSize)
	if err == nil && len(nalus) == 0 {
		err = errors.New("no NAL units")
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidFrame, err)
	}
	if !fr.key || slices.ContainsFunc(nalus, func(n []byte) bool { return h26x.IsParamSet(m.video.codec, n) }) {
		return nalus, nil
	}
	au := make([][]byte, 0, len(nalus)+len(m.video.params)+1)
	if isAUD(m.video.codec, nalus[0]) {
		au, nalus = append(au, nalus[0]), nalus[1:]
	}
	au = append(au, m.video.params...)
	return append(au, nalus...), nil
}

func isAUD(c h26x.Codec, nalu []byte) bool {
	if c == h26x.H264 {
		return h26x.H264Type(nalu) == h26x.H264NALAUD
	}
	return h26x.H265Type(nalu) == h26x.H265NALAUD
}

// appendWriter appends what is written to b.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}
