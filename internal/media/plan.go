package media

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/kvsd/kvsd/internal/imaging"
)

// Planning is pure Go: which packets each sample needs, grouped into decode
// passes. Decoding follows the plan.

// pass is one trip of the decoder through a GOP: packets key..last in
// decode order, where key is a keyframe and last the latest frame a sample
// shows. Packets after last are not needed by this pass.
type pass struct {
	key, last int
}

// plan is what Render decodes.
type plan struct {
	passes []pass
	// shows maps a packet index to the samples (indices into at) that show
	// its frame.
	shows map[int][]int
}

// makePlan finds, for every sample, the frame on screen at its time, and
// the keyframe to start decoding from. Samples without a frame get their
// Result.Err set here. Packets are in decode order; the frame on screen at
// t is the one with the greatest PTS ≤ t (the later one in decode order on
// a tie), which for streams without B-frames is simply the last packet with
// PTS ≤ t.
func makePlan(packets []imaging.Packet, at []time.Duration, res []imaging.Result) plan {
	// byPTS is the presentation order, by packet index.
	byPTS := make([]int, len(packets))
	for i := range byPTS {
		byPTS[i] = i
	}
	if !slices.IsSortedFunc(packets, func(a, b imaging.Packet) int { return cmp.Compare(a.PTS, b.PTS) }) {
		sort.SliceStable(byPTS, func(i, j int) bool { return packets[byPTS[i]].PTS < packets[byPTS[j]].PTS })
	}
	// lastKey[i] is the keyframe at or before packet i, or -1.
	lastKey := make([]int, len(packets))
	k := -1
	for i, p := range packets {
		if p.Key {
			k = i
		}
		lastKey[i] = k
	}

	p := plan{shows: map[int][]int{}}
	needs := map[int]int{} // keyframe → the last packet a pass from it must reach
	for s, t := range at {
		n := sort.Search(len(byPTS), func(i int) bool { return packets[byPTS[i]].PTS > t })
		if n == 0 {
			res[s].Err = imaging.ErrNoFrame
			continue
		}
		f := byPTS[n-1]
		res[s].FramePTS = packets[f].PTS
		key := lastKey[f]
		if key < 0 {
			res[s].Err = fmt.Errorf("media: frame at %v has no keyframe before it in these packets", packets[f].PTS)
			continue
		}
		p.shows[f] = append(p.shows[f], s)
		if last, ok := needs[key]; !ok || f > last {
			needs[key] = f
		}
	}
	for key, last := range needs {
		p.passes = append(p.passes, pass{key: key, last: last})
	}
	slices.SortFunc(p.passes, func(a, b pass) int { return a.key - b.key })
	return p
}
