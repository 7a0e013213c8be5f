package remux

import (
	"fmt"
	"math"
	"slices"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"

	"github.com/kvsd/kvsd/internal/h26x"
)

// AppendMP4Fragment appends one moof+mdat with the fragment's samples of one track.
// seq is the moof's sequence number; tfdt is the first sample's decode time in the track's
// timescale (90 kHz video, sample rate audio). Without B-frames that is the fragment's
// earliest presentation time: Start for a fragment whose keyframe opens it at its Timecode, as
// KVS fragments do. With B-frames decode times are shifted back by the fragment's reorder depth
// (two frames for x264's defaults) and composition offsets are never negative: FFmpeg's
// demuxer (Chrome's for files, ffprobe) adds negative offsets of fragmented MP4 to every
// presentation time. Only where that would put tfdt before 0 (a timeline starting at 0) are
// decode times shifted less, and B-frames get negative offsets (trun version 1). Presentation
// times are exact either way. A track without frames in the fragment gets a fragment without
// samples.
func (m *Media) AppendMP4Fragment(dst []byte, f Fragment, track uint64, seq uint32) ([]byte, error) {
	i, err := m.trackIndex(track)
	if err != nil {
		return dst, err
	}
	p, err := m.parse(f)
	if err != nil {
		return dst, fmt.Errorf("remux: %w", err)
	}
	samples, base, err := m.mp4Samples(p, i)
	if err != nil {
		return dst, fmt.Errorf("remux: track %d: %w", track, err)
	}
	part := fmp4.Part{
		SequenceNumber: seq,
		Tracks:         []*fmp4.PartTrack{{ID: 1, BaseTime: base, Samples: samples}},
	}
	// Grown once: the mdat arrives in 32 KiB writes.
	w := appendBuffer{b: slices.Grow(dst, partSize(samples)), pos: len(dst)}
	if err := part.Marshal(&w); err != nil {
		return dst, fmt.Errorf("remux: track %d: fragment %d: %w", track, seq, err)
	}
	return w.b, nil
}

// mp4Samples returns track i's samples and the first one's decode time.
func (m *Media) mp4Samples(p *parsed, i int) ([]*fmp4.Sample, uint64, error) {
	fs := p.tracks[i]
	timescale, frameNs := m.timescale(i)
	ts, err := timing(fs, p, timescale, 0, frameNs)
	if err != nil {
		return nil, 0, err
	}
	if len(ts) > 0 && ts[0].dts < 0 {
		return nil, 0, fmt.Errorf("decode time %d ticks is before 0, which tfdt cannot hold: %w", ts[0].dts, ErrInvalidFrame)
	}
	// A timeline that starts at 0 leaves no room to move back: B-frames then get negative
	// offsets, which browsers read right.
	if len(ts) > 0 {
		shiftBack(ts, ts[0].dts)
	}
	all := make([]fmp4.Sample, len(fs))
	samples := make([]*fmp4.Sample, len(fs))
	for k := range fs {
		if off := ts[k].pts - ts[k].dts; off > math.MaxInt32 {
			return nil, 0, fmt.Errorf("frame %d is presented %d ticks after its decode time: %w", k, off, ErrInvalidFrame)
		}
		all[k] = fmp4.Sample{
			Duration:        uint32(ts[k].dur),
			PTSOffset:       int32(ts[k].pts - ts[k].dts),
			IsNonSyncSample: !fs[k].key,
			Payload:         m.payload(i, fs[k].data),
		}
		samples[k] = &all[k]
	}
	var base uint64
	if len(ts) > 0 {
		base = uint64(ts[0].dts)
	}
	return samples, base, nil
}

// partSize is about what a moof+mdat of samples takes (trun: 16 bytes a sample at most).
func partSize(samples []*fmp4.Sample) int {
	n := 256 + 16*len(samples)
	for _, s := range samples {
		n += len(s.Payload)
	}
	return n
}

// payload is a frame as MP4 stores it: AAC as is, H.26x with the 4-byte NAL unit lengths
// that mediacommon's sample entry declares.
func (m *Media) payload(i int, data []byte) []byte {
	if i != 0 || m.video.lengthSize == 4 {
		return data
	}
	nalus, _ := h26x.SplitAVCC(data, m.video.lengthSize) // parse checked it
	return h26x.AppendAVCC(make([]byte, 0, avccSize(data, m.video.lengthSize)), nalus...)
}

// avccSize is the size of payload(0, data) without building it.
func avccSize(data []byte, lengthSize int) int {
	nalus, _ := h26x.SplitAVCC(data, lengthSize)
	n := 0
	for _, u := range nalus {
		n += 4 + len(u)
	}
	return n
}
