package fragstore

import (
	"context"
	"fmt"
	"time"

	"github.com/kvsd/kvsd/internal/fragment"
)

// Append makes one fragment durable: the header (stored once per distinct HeaderID), the media
// bytes (cluster and trailing tags, verbatim) and the index entry, in that order, each synced.
// f.Seq, f.Number, f.HeaderID and the timestamps are set by the caller; Append sets f.Size.
// When Append returns nil the fragment survives kill -9 and power loss.
//
// The header travels with the index commit (it is written there only if the HeaderID is new),
// which keeps "header before entry" without a commit of its own. Media is synced before the
// index commit, so a committed entry never points at bytes a crash could lose; media written
// but never committed is cut away at the next Open.
func (s *Store) Append(ctx context.Context, k Key, header []byte, f *fragment.Fragment, media []byte) error {
	start := time.Now()
	if err := checkAppend(k, header, f, media); err != nil {
		return err
	}
	st := s.state(k)
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.loaded {
		last, _, err := s.index.LastFragment(ctx, k)
		if err != nil {
			return err
		}
		st.lastSeq, st.loaded = last, true
	}
	if f.Seq <= st.lastSeq {
		return fmt.Errorf("append to %s: sequence %d is not after the last stored %d", k.Name, f.Seq, st.lastSeq)
	}
	meta, err := encodeMeta(f, int64(len(media)), header)
	if err != nil {
		return err
	}
	loc, err := s.media.Append(ctx, k, Record{Seq: f.Seq, Time: f.ServerTime, Meta: meta, Data: media})
	if err != nil {
		return fmt.Errorf("append media of fragment %d of %s: %w", f.Seq, k.Name, err)
	}
	f.Size = int64(len(media))
	if err := s.index.PutFragment(ctx, k, f, loc, header); err != nil {
		// The media record stays behind unindexed: harmless (never read), and cut away or
		// deleted with its segment by the next Open.
		return fmt.Errorf("index fragment %d of %s: %w", f.Seq, k.Name, err)
	}
	st.lastSeq = f.Seq
	s.metrics.appendSeconds.Observe(time.Since(start).Seconds())
	s.metrics.bytes.Add(float64(len(media)))
	return nil
}

// checkAppend refuses what would corrupt the index: entries without a sequence, numbers that do
// not encode the Key and Seq, fragments without a header to play with.
func checkAppend(k Key, header []byte, f *fragment.Fragment, media []byte) error {
	switch {
	case f == nil:
		return fmt.Errorf("append to %s: nil fragment", k.Name)
	case f.Seq == 0:
		return fmt.Errorf("append to %s: fragment sequence 0 (sequences start at 1)", k.Name)
	case f.Number != fragment.FormatNumber(k.CreatedMs, f.Seq):
		return fmt.Errorf("append to %s: fragment number %q is not FormatNumber(%d, %d)", k.Name, f.Number, k.CreatedMs, f.Seq)
	case f.HeaderID == "" || len(header) == 0:
		return fmt.Errorf("append to %s: fragment %d has no header", k.Name, f.Seq)
	case len(media) == 0:
		return fmt.Errorf("append to %s: fragment %d has no media", k.Name, f.Seq)
	}
	return nil
}
