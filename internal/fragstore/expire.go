package fragstore

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// expireChunk bounds one Expire commit: a backlog (retention shortened, kvsd down for days)
// is removed in several commits, releasing the stream between them so ingest keeps flowing.
const expireChunk = 2000

// Expire removes every fragment whose server time is before cutoff and reclaims its disk space
// as soon as no kept fragment shares the space. It returns how many fragments were removed.
//
// Index entries go first (each chunk in one commit), then the segments the Index reports as no
// longer live. A crash between the two leaves files that Open deletes.
func (s *Store) Expire(ctx context.Context, k Key, cutoff time.Time) (int, error) {
	cutoffMs := ceilMs(cutoff) // ServerTime < cutoff ⇔ its ms < ceil(cutoff)
	st := s.state(k)
	total := 0
	for {
		n, err := s.expireChunk(ctx, k, st, cutoffMs)
		total += n
		if err != nil || n < expireChunk {
			return total, err
		}
	}
}

func (s *Store) expireChunk(ctx context.Context, k Key, st *streamState, cutoffMs int64) (int, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.quiesce()
	n, freed, err := s.index.ExpireFragments(ctx, k, cutoffMs, expireChunk)
	if err != nil {
		return 0, fmt.Errorf("expire fragments of %s: %w", k.Name, err)
	}
	s.metrics.expired.Add(float64(n))
	var errs []error
	for _, seg := range freed {
		if err := s.media.DeleteSegment(ctx, k, seg); err != nil {
			// The index no longer uses it: Open deletes it if we cannot now.
			errs = append(errs, fmt.Errorf("delete segment %d of %s: %w", seg, k.Name, err))
		}
	}
	return n, errors.Join(errs...)
}

// DeleteStream removes all of the stream's fragments, headers and media.
//
// The index goes first, so the fragments vanish in one commit; media left behind by a crash
// belongs to no indexed stream and is removed by Open.
func (s *Store) DeleteStream(ctx context.Context, k Key) error {
	st := s.state(k)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.quiesce()
	if err := s.index.DeleteFragments(ctx, k); err != nil {
		return fmt.Errorf("delete fragment index of %s: %w", k.Name, err)
	}
	st.loaded, st.lastSeq = false, 0
	if err := s.media.DeleteStream(ctx, k); err != nil {
		return fmt.Errorf("delete media of %s: %w", k.Name, err)
	}
	return nil
}

// Streams lists the keys that have stored fragments (for retention sweeps and orphan cleanup).
//
// A stream whose fragments have all expired is listed too while the index remembers its last
// sequence, so that the orphan sweep still finds it once the stream is deleted.
func (s *Store) Streams(ctx context.Context) ([]Key, error) { return s.index.FragmentStreams(ctx) }
