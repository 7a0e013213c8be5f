package fragstore

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/kvsd/kvsd/internal/fragment"
)

// Eviction says what EvictOldestSegment removed: the fragments of one whole segment.
type Eviction struct {
	Segment   uint64
	Fragments int
	Bytes     int64     // the segment's size on disk (0 when Media no longer listed it)
	From, To  time.Time // server time of the first fragment removed, and the end of the last
}

// evictPage is how many index entries one look-up reads while finding a segment's end.
const evictPage = 1000

// EvictOldestSegment removes k's oldest segment and the index entries of every fragment in it,
// whatever their retention: the disk budget's eviction (diskuse). Segments hold fragments in
// sequence order, so its fragments are exactly those before the first fragment of the next
// segment. A stream without fragments evicts nothing (zero Eviction).
func (s *Store) EvictOldestSegment(ctx context.Context, k Key) (Eviction, error) {
	st := s.state(k)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.quiesce()
	var (
		ev      Eviction
		first   *fragment.Fragment
		last    *fragment.Fragment
		cutoff  int64 = -1
		afterSq uint64
	)
	for cutoff < 0 {
		page, err := s.index.FragmentsAfter(ctx, k, afterSq, evictPage)
		if err != nil {
			return Eviction{}, fmt.Errorf("evict from %s: %w", k.Name, err)
		}
		if len(page) == 0 {
			break
		}
		if first == nil {
			first = page[0]
		}
		for _, f := range page {
			if f.Location.Segment != first.Location.Segment {
				cutoff = f.ServerTime.UnixMilli()
				break
			}
			last = f
		}
		afterSq = page[len(page)-1].Seq
		if len(page) < evictPage {
			break
		}
	}
	if first == nil {
		return Eviction{}, nil
	}
	if lastMs := last.ServerTime.UnixMilli(); cutoff <= lastMs {
		// The stream's only segment (everything goes), or fragments that arrived in one read
		// share a server-time ms across the segment boundary: those of the next segment go too,
		// since expiry is by server time, and that segment is deleted with its last fragment.
		cutoff = lastMs + 1
	}
	ev.Segment, ev.From, ev.To = first.Location.Segment, first.ServerTime, last.ServerTime.Add(last.Duration)
	if segs, err := s.media.Segments(ctx, k); err == nil {
		for _, sg := range segs {
			if sg.Number == ev.Segment {
				ev.Bytes = sg.Size
			}
		}
	}
	var errs []error
	for {
		n, freed, err := s.index.ExpireFragments(ctx, k, cutoff, expireChunk)
		if err != nil {
			return ev, fmt.Errorf("evict fragments of %s: %w", k.Name, err)
		}
		ev.Fragments += n
		for _, seg := range freed {
			if err := s.media.DeleteSegment(ctx, k, seg); err != nil {
				errs = append(errs, fmt.Errorf("delete segment %d of %s: %w", seg, k.Name, err))
			}
		}
		if n < expireChunk {
			break
		}
	}
	s.metrics.evicted.Add(float64(ev.Fragments))
	return ev, errors.Join(errs...)
}

// Oldest returns k's oldest stored fragment, nil when it has none.
func (s *Store) Oldest(ctx context.Context, k Key) (*fragment.Fragment, error) {
	fs, err := s.index.FragmentsAfter(ctx, k, 0, 1)
	if err != nil || len(fs) == 0 {
		return nil, err
	}
	return fs[0], nil
}

// StoredBytes is the disk space of k's segments.
func (s *Store) StoredBytes(ctx context.Context, k Key) (int64, error) {
	segs, err := s.media.Segments(ctx, k)
	var n int64
	for _, sg := range segs {
		n += sg.Size
	}
	return n, err
}

// DiskFull reports whether the last media write failed for want of space (ENOSPC or EDQUOT),
// and since when; the next write that succeeds clears it.
func (s *Store) DiskFull() (since time.Time, full bool) {
	s.fullMu.Lock()
	defer s.fullMu.Unlock()
	return s.fullSince, !s.fullSince.IsZero()
}

// noteWrite records whether a media write ran out of space. diskuse logs the change, with the
// file system's numbers.
func (s *Store) noteWrite(err error) {
	full := errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
	if !full && err != nil {
		return // other failures say nothing about space
	}
	s.fullMu.Lock()
	defer s.fullMu.Unlock()
	switch {
	case full && s.fullSince.IsZero():
		s.fullSince = time.Now()
	case !full:
		s.fullSince = time.Time{}
	}
}
