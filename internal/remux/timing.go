package remux

import (
	"fmt"
	"math"
)

// timed is a frame's times in a track's timescale.
type timed struct {
	pts, dts int64
	dur      int64 // to the next frame's decode time
}

// timing converts a track's frames of one fragment to a timescale, counting from zero (ns).
// A frame lasts until the next one's decode time. The last video frame lasts until the
// fragment's end (first + Duration), or as long as the one before when that leaves nothing;
// the last AAC frame lasts frameNs (audio frames have one length, and Duration
// counts to the end of whichever track ends last).
func timing(fs []frame, p *parsed, timescale, zero, frameNs int64) ([]timed, error) {
	ts := make([]timed, len(fs))
	for k := range fs {
		ts[k].pts = ticks(fs[k].pts-zero, timescale)
		ts[k].dts = ticks(fs[k].dts-zero, timescale)
		if k > 0 {
			ts[k-1].dur = ts[k].dts - ts[k-1].dts
		}
	}
	if n := len(ts); n > 0 {
		last := &ts[n-1]
		switch {
		case frameNs > 0:
			last.dur = ticks(frameNs, timescale)
		case p.hasEnd && ticks(p.end-zero, timescale) > last.dts:
			last.dur = ticks(p.end-zero, timescale) - last.dts
		case n > 1:
			last.dur = ts[n-2].dur
		}
	}
	for k, t := range ts {
		// Audio decode times are its presentation times, which a producer may send out of order.
		if t.dur < 0 || t.dur > math.MaxUint32 {
			return nil, fmt.Errorf("frame %d lasts %d ticks of 1/%d s: %w", k, t.dur, timescale, ErrInvalidFrame)
		}
		if off := t.pts - t.dts; off < math.MinInt32 || off > math.MaxInt32 {
			return nil, fmt.Errorf("frame %d is presented %d ticks of 1/%d s from its decode time: %w", k, off, timescale, ErrInvalidFrame)
		}
	}
	return ts, nil
}

// shiftBack moves decode times back by the fragment's reorder depth, the most any frame is
// presented before its sorted-order decode time, so that no frame is decoded after it is
// presented; by limit at most. Durations stay.
func shiftBack(ts []timed, limit int64) {
	var shift int64
	for _, t := range ts {
		shift = max(shift, t.dts-t.pts)
	}
	shift = min(shift, limit)
	for i := range ts {
		ts[i].dts -= shift
	}
}

// timescale returns track i's MP4 timescale and, for audio, its frame duration in ns.
func (m *Media) timescale(i int) (timescale, frameNs int64) {
	if i == 0 {
		return videoTimescale, 0
	}
	return m.audio.timescale, m.audio.frameNs
}
