package playback

import (
	"context"
	"errors"
	"time"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
)

// selection is what a playlist or manifest lists at one moment: computed per request from the
// index, so a fragment is listed as soon as it is persisted.
type selection struct {
	frags []*fragment.Fragment
	msn   uint64             // media sequence number of frags[0]
	disc  []bool             // a discontinuity before frags[i]
	dseq  uint64             // discontinuities before frags[0] (EXT-X-DISCONTINUITY-SEQUENCE)
	mapK  []uint64           // header changes before frags[i], counted from the session's first fragment
	ended bool               // nothing more will be added (ENDLIST, static MPD)
	prev  *fragment.Fragment // LIVE: the fragment before the window, if any
}

// listPage is how many index entries one List call reads.
const listPage = 1000

// selectFragments computes the session's selection at now.
func (s *Service) selectFragments(ctx context.Context, sess *Session, k fragstore.Key, now time.Time) (*selection, error) {
	if sess.Mode == Live {
		sel, err := s.liveWindow(ctx, sess, k)
		if err != nil || len(sel.frags) == 0 {
			return sel, err
		}
		return sel, s.numberLive(ctx, sess, k, sel)
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
			out = appendDedup(out, f, sess.Kind, sess.Protocol)
		}
		if next.String() == "" || len(out) > limit {
			break
		}
		cur = next
	}
	out, err := s.sameCodecs(ctx, k, out)
	if err != nil {
		return nil, false, err
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

// appendDedup appends f (timeline order) unless it has the producer timestamp of the previous
// one: then the larger fragment number wins, as in KVS. DASH applies the rule to server
// timestamps too, since a SegmentTimeline cannot hold two segments starting at one time.
func appendDedup(out []*fragment.Fragment, f *fragment.Fragment, kind fragstore.TimeKind, protocol string) []*fragment.Fragment {
	if n := len(out); n > 0 && (kind == fragstore.ProducerTime || protocol == DASH) && startOf(out[n-1], kind).Equal(startOf(f, kind)) {
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

// liveWindow lists the newest persisted fragments, at most Max, in arrival order. A fragment
// older on the session's timeline than one that arrived before it (late) is never listed; one
// with the same start replaces the earlier. prev is the fragment before the window.
func (s *Service) liveWindow(ctx context.Context, sess *Session, k fragstore.Key) (*selection, error) {
	newest, err := s.newest(ctx, k, sess.Max+liveLookback)
	if err != nil || len(newest) == 0 {
		return &selection{}, err
	}
	kept := liveCandidates(newest, sess)
	lo := max(0, len(kept)-sess.Max)
	if sess.Protocol == DASH { // no codec change within a DASH manifest: the newest header only
		for i := len(kept) - 1; i > lo; i-- {
			if kept[i-1].HeaderID != kept[i].HeaderID {
				lo = i
				break
			}
		}
	}
	disc := discontinuities(sess, kept, nil)
	sel := &selection{frags: kept[lo:], disc: disc[lo:], mapK: headerChanges(kept[lo:])}
	if lo > 0 {
		sel.prev = kept[lo-1]
	}
	return sel, nil
}

// newest returns at least the newest n stored fragments (fewer if the stream has fewer), in
// sequence order. Sequence order is server-time order, so it lists back from the newest server time.
func (s *Service) newest(ctx context.Context, k fragstore.Key, n int) ([]*fragment.Fragment, error) {
	last, err := s.Store.LastSeq(ctx, k)
	if err != nil || last == 0 {
		return nil, err
	}
	f, err := s.Store.Fragment(ctx, k, last)
	if errors.Is(err, fragstore.ErrNotFound) {
		return nil, nil // the newest expired: so did the rest
	}
	if err != nil {
		return nil, err
	}
	for span := time.Duration(n) * 4 * time.Second; ; span *= 8 {
		frags, _, err := s.Store.List(ctx, k, fragstore.ServerTime, f.ServerTime.Add(-span), f.ServerTime, fragstore.Cursor{}, 1<<20)
		if err != nil {
			return nil, err
		}
		if len(frags) >= n || span > 30*24*time.Hour {
			return s.sameCodecs(ctx, k, frags[max(0, len(frags)-n):])
		}
	}
}

// liveCandidates applies the late and duplicate rules to fragments in sequence order.
func liveCandidates(frags []*fragment.Fragment, sess *Session) []*fragment.Fragment {
	kept := make([]*fragment.Fragment, 0, len(frags))
	for _, f := range frags {
		if n := len(kept); n > 0 {
			switch late(sess, kept[n-1], f) {
			case isLate:
				continue
			case replaces:
				kept = kept[:n-1]
			}
		}
		kept = append(kept, f)
	}
	return kept
}

// The LIVE rules for a fragment that arrives after prev: listed, never listed (late: older on
// the session's timeline), or in place of prev (the same producer timestamp).
const (
	listed = iota
	isLate
	replaces
)

func late(sess *Session, prev, f *fragment.Fragment) int {
	if sess.Kind != fragstore.ProducerTime && sess.Protocol != DASH {
		return listed // server timestamps only grow; equal ones (a fast upload) are distinct fragments
	}
	p, c := startOf(prev, sess.Kind), startOf(f, sess.Kind)
	switch {
	case c.Before(p):
		return isLate
	case c.Equal(p):
		return replaces
	}
	return listed
}

// liveCount is how far a LIVE session's numbering has been counted: the fragments listed (or
// listable) since the session's origin, and the discontinuities among them.
type liveCount struct {
	after uint64             // the last sequence visited
	last  *fragment.Fragment // the last fragment counted, for the late rule and gaps
	n     uint64             // fragments counted: the media sequence number of the next one
	disc  uint64             // EXT-X-DISCONTINUITY tags before the next one
}

// maxLiveCounts bounds the memo of LIVE sessions' counts; it is only a cache (a miss counts again
// from the session's origin, e.g. after a restart).
const maxLiveCounts = 4096

// numberLive sets the media and discontinuity sequence numbers of a LIVE window: its first
// fragment's position counted from the session's origin. Counts are remembered per session,
// so each request only walks the fragments added since the previous one.
func (s *Service) numberLive(ctx context.Context, sess *Session, k fragstore.Key, sel *selection) error {
	first := sel.frags[0]
	s.mu.Lock()
	c, ok := s.liveCounts[sess.token]
	s.mu.Unlock()
	if !ok || c.after >= first.Seq {
		c = liveCount{after: sess.Origin}
		if sess.Origin != 0 {
			f, err := s.Store.Fragment(ctx, k, sess.Origin)
			if err != nil && !errors.Is(err, fragstore.ErrNotFound) {
				return err
			}
			c.last = f
		}
	}
	for done := false; !done; {
		page, err := s.Store.After(ctx, k, c.after, listPage)
		if err != nil {
			return err
		}
		done = len(page) == 0
		for _, f := range page {
			if done = f.Seq >= first.Seq; done {
				break
			}
			c.after = f.Seq
			c.count(sess, f)
		}
	}
	sel.msn, sel.dseq = c.n, c.disc
	s.mu.Lock()
	if s.liveCounts == nil || len(s.liveCounts) >= maxLiveCounts {
		s.liveCounts = map[string]liveCount{}
	}
	s.liveCounts[sess.token] = c
	s.mu.Unlock()
	return nil
}

// count adds f (in sequence order) under the late and duplicate rules.
func (c *liveCount) count(sess *Session, f *fragment.Fragment) {
	if c.last != nil {
		switch late(sess, c.last, f) {
		case isLate:
			return // never listed
		case replaces:
			c.last = f // in the earlier one's place
			return
		}
	}
	if discontinuityBefore(sess, c.last, f) {
		c.disc++
	}
	c.n++
	c.last = f
}

// discontinuities marks where a playlist has EXT-X-DISCONTINUITY before a fragment.
func discontinuities(sess *Session, frags []*fragment.Fragment, dst []bool) []bool {
	for i, f := range frags {
		var prev *fragment.Fragment
		if i > 0 {
			prev = frags[i-1]
		}
		dst = append(dst, discontinuityBefore(sess, prev, f))
	}
	return dst
}

// discontinuityBefore is the DiscontinuityMode rule for f after prev (nil: f comes first). A new
// header (codec private data) always starts a new discontinuity domain.
func discontinuityBefore(sess *Session, prev, f *fragment.Fragment) bool {
	switch {
	case sess.Disc == DiscAlways:
		return true
	case prev == nil:
		return false
	case prev.HeaderID != f.HeaderID:
		return true
	}
	return sess.Disc == DiscOnDiscontinuty && gapBetween(prev, f, sess.Kind)
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
