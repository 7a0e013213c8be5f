package playback

import (
	"context"
	"time"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
)

// selection is what a playlist or manifest lists at one moment: computed per request from the
// index, so a fragment is listed as soon as it is persisted.
type selection struct {
	frags []*fragment.Fragment
	msn   uint64   // media sequence number of frags[0]
	disc  []bool   // a discontinuity before frags[i]
	dseq  uint64   // discontinuities before frags[0] (EXT-X-DISCONTINUITY-SEQUENCE)
	mapK  []uint64 // header changes before frags[i], counted from the session's first fragment
	ended bool     // nothing more will be added (ENDLIST, static MPD)
}

// listPage is how many index entries one List call reads.
const listPage = 1000

// selectFragments computes the session's selection at now.
func (s *Service) selectFragments(ctx context.Context, sess *Session, k fragstore.Key, now time.Time) (*selection, error) {
	if sess.Mode == Live {
		sel, err := s.liveWindow(ctx, sess, k)
		if err != nil || sess.Disc != DiscOnDiscontinuty || len(sel.frags) == 0 {
			return sel, err
		}
		sel.dseq, err = s.discontinuitiesBefore(ctx, sess, k, sel.frags[0].Seq)
		return sel, err
	}
	all, ended, err := s.rangeFragments(ctx, sess, k, now)
	if err != nil {
		return nil, err
	}
	return rangeSelection(sess, all, ended), nil
}

// rangeSelection is the selection of a range session whose fragments so far are all: ON_DEMAND
// lists the first Max, LIVE_REPLAY the newest Max, numbered from the range's first fragment.
func rangeSelection(sess *Session, all []*fragment.Fragment, ended bool) *selection {
	disc := discontinuities(sess, all, nil)
	mapK := headerChanges(all)
	lo, hi := 0, len(all)
	if sess.Mode == OnDemand {
		hi = min(hi, sess.Max)
	} else {
		lo = max(0, hi-sess.Max)
	}
	sel := &selection{frags: all[lo:hi], msn: uint64(lo), disc: disc[lo:hi], mapK: mapK[lo:hi], ended: ended}
	for _, d := range disc[:lo] {
		if d {
			sel.dseq++
		}
	}
	return sel
}

// rangeFragments lists a range session's fragments in timeline order: ON_DEMAND up to Max,
// LIVE_REPLAY those whose time has come (real-time pacing from the session's start).
func (s *Service) rangeFragments(ctx context.Context, sess *Session, k fragstore.Key, now time.Time) ([]*fragment.Fragment, bool, error) {
	from, end := time.UnixMilli(sess.FromMs), sess.rangeEnd(now)
	limit := 1 << 30
	ended := true
	if sess.Mode == LiveReplay {
		first, _, err := s.Store.List(ctx, k, sess.Kind, from, end, fragstore.Cursor{}, 1)
		if err != nil || len(first) == 0 {
			return nil, false, err
		}
		visible := startOf(first[0], sess.Kind).Add(now.Sub(time.UnixMilli(sess.StartMs)))
		ended = sess.ToMs != 0 && !visible.Before(end)
		if visible.Before(end) {
			end = visible
		}
	} else {
		limit = sess.Max
	}
	var out []*fragment.Fragment
	var cur fragstore.Cursor
	for {
		page, next, err := s.Store.List(ctx, k, sess.Kind, from, end, cur, listPage)
		if err != nil {
			return nil, false, err
		}
		for _, f := range page {
			out = appendDedup(out, f, sess.Kind)
		}
		if next.String() == "" || len(out) > limit {
			break
		}
		cur = next
	}
	if sess.Protocol == DASH { // DASH allows no codec change within a session: end at the first
		for i := 1; i < len(out); i++ {
			if out[i].HeaderID != out[0].HeaderID {
				return out[:i], true, nil
			}
		}
	}
	return out, ended, nil
}

// appendDedup appends f (timeline order) unless it starts where the previous one did: then the
// larger fragment number wins, as in KVS.
func appendDedup(out []*fragment.Fragment, f *fragment.Fragment, kind fragstore.TimeKind) []*fragment.Fragment {
	if n := len(out); n > 0 && startOf(out[n-1], kind).Equal(startOf(f, kind)) {
		if f.Seq > out[n-1].Seq {
			out[n-1] = f
		}
		return out
	}
	return append(out, f)
}

// liveLookback is how many fragments before the newest N a LIVE window reads, for the late and
// duplicate rules and the discontinuity of its first fragment.
const liveLookback = 16

// liveWindow lists the newest persisted fragments: at most Max, in arrival order, consecutive in
// sequence so that the media sequence number can be the fragment's sequence (stable across
// reloads). A fragment older on the session's timeline than one that arrived before it (late) is
// never listed; one with the same start replaces the earlier. Either ends the window there, as a
// failed sequence does.
func (s *Service) liveWindow(ctx context.Context, sess *Session, k fragstore.Key) (*selection, error) {
	last, err := s.Store.LastSeq(ctx, k)
	if err != nil || last == 0 {
		return &selection{}, err
	}
	n := uint64(sess.Max + liveLookback)
	frags, err := s.Store.After(ctx, k, last-min(last, n), int(n))
	if err != nil {
		return nil, err
	}
	kept := liveCandidates(frags, sess.Kind)
	disc := discontinuities(sess, kept, nil)
	lo := len(kept)
	for lo > 0 && len(kept)-lo < sess.Max {
		if lo < len(kept) {
			prev, cur := kept[lo-1], kept[lo]
			if prev.Seq+1 != cur.Seq || (sess.Protocol == DASH && prev.HeaderID != cur.HeaderID) {
				break
			}
		}
		lo--
	}
	sel := &selection{frags: kept[lo:], disc: disc[lo:], mapK: headerChanges(kept[lo:])}
	if len(sel.frags) > 0 {
		sel.msn = sel.frags[0].Seq
		if sess.Disc == DiscAlways {
			sel.dseq = sel.msn - 1
		}
	}
	return sel, nil
}

// liveCandidates applies the late and duplicate rules to fragments in sequence order.
func liveCandidates(frags []*fragment.Fragment, kind fragstore.TimeKind) []*fragment.Fragment {
	kept := make([]*fragment.Fragment, 0, len(frags))
	for _, f := range frags {
		if n := len(kept); n > 0 {
			prev := startOf(kept[n-1], kind)
			cur := startOf(f, kind)
			if cur.Before(prev) {
				continue
			}
			if cur.Equal(prev) {
				kept = kept[:n-1]
			}
		}
		kept = append(kept, f)
	}
	return kept
}

// discontinuitiesBefore counts the discontinuities of a LIVE ON_DISCONTINUITY session from its
// first fragment up to (not including) seq.
func (s *Service) discontinuitiesBefore(ctx context.Context, sess *Session, k fragstore.Key, seq uint64) (uint64, error) {
	var count uint64
	var prev *fragment.Fragment
	after := sess.Origin - min(sess.Origin, 1)
	for after+1 < seq {
		page, err := s.Store.After(ctx, k, after, listPage)
		if err != nil || len(page) == 0 {
			return count, err
		}
		for _, f := range liveCandidates(page, sess.Kind) {
			if f.Seq >= seq {
				return count, nil
			}
			if prev != nil && gapBetween(prev, f, sess.Kind) {
				count++
			}
			prev = f
		}
		after = page[len(page)-1].Seq
	}
	return count, nil
}

// discontinuities marks where a playlist has EXT-X-DISCONTINUITY before a fragment.
func discontinuities(sess *Session, frags []*fragment.Fragment, dst []bool) []bool {
	for i, f := range frags {
		var d bool
		switch sess.Disc {
		case DiscAlways:
			d = true
		case DiscOnDiscontinuty:
			d = i > 0 && gapBetween(frags[i-1], f, sess.Kind)
		}
		// A new header (codec private data) always starts a new discontinuity domain.
		d = d || (i > 0 && frags[i-1].HeaderID != f.HeaderID)
		dst = append(dst, d)
	}
	return dst
}

// gapBetween reports a gap or overlap of more than 50 ms between consecutive fragments.
func gapBetween(prev, cur *fragment.Fragment, kind fragstore.TimeKind) bool {
	d := startOf(cur, kind).Sub(startOf(prev, kind).Add(prev.Duration))
	return d > discontinuityGap || d < -discontinuityGap
}

// headerChanges numbers each fragment's header: 0 for the first, +1 at every change.
func headerChanges(frags []*fragment.Fragment) []uint64 {
	out := make([]uint64, len(frags))
	for i := 1; i < len(frags); i++ {
		out[i] = out[i-1]
		if frags[i].HeaderID != frags[i-1].HeaderID {
			out[i]++
		}
	}
	return out
}

func startOf(f *fragment.Fragment, kind fragstore.TimeKind) time.Time {
	if kind == fragstore.ServerTime {
		return f.ServerTime
	}
	return f.ProducerTime
}
