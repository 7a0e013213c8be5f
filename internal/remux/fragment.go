package remux

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/kvsd/kvsd/internal/h26x"
	"github.com/kvsd/kvsd/internal/mkv"
)

// Fragment is one stored fragment to mux.
type Fragment struct {
	Media    []byte        // the fragment's stored bytes (fragstore.Store.Media: Cluster + Tags)
	Timecode int64         // the Cluster Timecode in TimecodeScale ticks (fragment.Fragment.Timecode)
	Start    time.Duration // where that Timecode sits on the output timeline (e.g. producer time since the Unix epoch)
	Duration time.Duration // fragment.Fragment.Duration: gives the last sample its duration
	// Frames, when Media is nil, is the fragment's stored frame table, Size its media's bytes: a
	// clip's first pass can lay out the MP4 from them without the media (PlanClip).
	Frames []mkv.FramePlace
	Size   int64
}

// A frame's output time = Start + (frame timecode - Timecode) * TimecodeScale.

// frame is one frame of a track, times in ns on the output timeline.
type frame struct {
	pts  int64
	dts  int64 // the k-th smallest pts of the track's frames for the k-th frame (package doc)
	key  bool
	data []byte // as stored, aliasing the fragment's bytes
	// placed: data is nil, and the frame is size bytes at pos of the fragment's media (a
	// frame table's entry).
	placed    bool
	pos, size int64
}

// parsed is a fragment's frames of video (0) and audio (1) in decode order.
type parsed struct {
	media  []byte // the fragment's bytes, which frames alias (clips reuse the buffer)
	tracks [2][]frame
	first  int64 // ns of the earliest frame of any track: where Duration counts from
	end    int64 // first + Duration
	hasEnd bool
}

// parse reads a fragment's frames and places them on the output timeline.
func (m *Media) parse(f Fragment) (*parsed, error) {
	frames, err := mkv.ClusterFrames(f.Media, nil)
	if err != nil {
		return nil, fmt.Errorf("fragment at timecode %d: %w: %w", f.Timecode, ErrInvalidFrame, err)
	}
	p := &parsed{first: math.MaxInt64}
	for _, fr := range frames {
		ns, ok := m.outTime(f, fr.Timecode)
		if !ok {
			return nil, fmt.Errorf("track %d: frame timecode %d with fragment timecode %d and start %v is outside the timeline: %w", fr.Track, fr.Timecode, f.Timecode, f.Start, ErrInvalidFrame)
		}
		// Duration counts from the earliest frame of every track, as ingest measures it.
		p.first = min(p.first, ns)
		i, err := m.trackIndex(fr.Track)
		if err != nil {
			continue // a track players do not get
		}
		if err := m.checkFrame(i, fr); err != nil {
			return nil, err
		}
		p.tracks[i] = append(p.tracks[i], frame{pts: ns, dts: ns, key: fr.Keyframe, data: fr.Data})
	}
	if f.Duration > 0 && len(frames) > 0 {
		p.end, p.hasEnd = addInt(p.first, int64(f.Duration))
	}
	decodeTimes(p.tracks[0])
	return p, nil
}

// parseTable is parse from the fragment's frame table: where the frames lie instead of their
// bytes, which the clip reads in its second pass.
func (m *Media) parseTable(f Fragment) (*parsed, error) {
	p := &parsed{first: math.MaxInt64}
	for _, fr := range f.Frames {
		ns, ok := m.outTime(f, fr.Timecode)
		if !ok {
			return nil, fmt.Errorf("track %d: frame timecode %d with fragment timecode %d and start %v is outside the timeline: %w", fr.Track, fr.Timecode, f.Timecode, f.Start, ErrInvalidFrame)
		}
		p.first = min(p.first, ns)
		i, err := m.trackIndex(fr.Track)
		if err != nil {
			continue
		}
		if fr.Size == 0 {
			return nil, fmt.Errorf("track %d: empty frame at timecode %d: %w", fr.Track, fr.Timecode, ErrInvalidFrame)
		}
		p.tracks[i] = append(p.tracks[i], frame{pts: ns, dts: ns, key: fr.Keyframe, placed: true, pos: fr.Offset, size: fr.Size})
	}
	if f.Duration > 0 && len(f.Frames) > 0 {
		p.end, p.hasEnd = addInt(p.first, int64(f.Duration))
	}
	decodeTimes(p.tracks[0])
	return p, nil
}

// checkFrame rejects frames a muxer would choke on.
func (m *Media) checkFrame(i int, fr mkv.Frame) error {
	if len(fr.Data) == 0 {
		return fmt.Errorf("track %d: empty frame at timecode %d: %w", fr.Track, fr.Timecode, ErrInvalidFrame)
	}
	if i != 0 {
		return nil
	}
	if err := h26x.CheckAVCC(fr.Data, m.video.lengthSize); err != nil {
		return fmt.Errorf("track %d (%v): frame at timecode %d: %w: %w", fr.Track, m.video.codec, fr.Timecode, ErrInvalidFrame, err)
	}
	return nil
}

// decodeTimes gives the k-th video frame in decode order the k-th smallest presentation time.
// A fragment holds whole GOPs from a keyframe, so the sorted times are exactly the decode
// clock, whatever the reordering.
func decodeTimes(fs []frame) {
	pts := make([]int64, len(fs))
	for i := range fs {
		pts[i] = fs[i].pts
	}
	slices.Sort(pts)
	for i := range fs {
		fs[i].dts = pts[i]
	}
}

// outTime is Start + (tc − Timecode) × TimecodeScale in ns; ok is false on overflow.
func (m *Media) outTime(f Fragment, tc int64) (int64, bool) {
	d, ok1 := subInt(tc, f.Timecode)
	d, ok2 := mulInt(d, m.scale)
	t, ok3 := addInt(int64(f.Start), d)
	return t, ok1 && ok2 && ok3
}

func addInt(a, b int64) (int64, bool) {
	s := a + b
	return s, (s > a) == (b > 0)
}

func subInt(a, b int64) (int64, bool) {
	s := a - b
	return s, (s < a) == (b > 0)
}

func mulInt(a, b int64) (int64, bool) {
	if a == 0 || b == 0 {
		return 0, true
	}
	p := a * b
	return p, p/b == a && !(a == -1 && b == math.MinInt64) && !(b == -1 && a == math.MinInt64)
}

// ticks converts ns to a timescale, rounding to the nearest tick. Seconds and the rest are
// converted apart: epoch times in ns times 90000 overflow int64.
func ticks(ns, timescale int64) int64 {
	s, r := ns/1e9, ns%1e9
	if r < 0 {
		s, r = s-1, r+1e9
	}
	return s*timescale + (r*timescale+5e8)/1e9
}
