package fragstore

import (
	"context"
	"errors"
	"fmt"
)

// repair brings Media back in line with the Index after a crash. The Index is the truth: it
// was committed only after the media it points at was synced, so everything in Media that the
// Index does not reference is a write that was never acknowledged, or a deletion that did not
// finish:
//
//   - media of streams the Index has never heard of (deleted while kvsd was down) is removed;
//   - segments holding no indexed fragment (an unindexed new segment, or one whose fragments
//     all expired just before the crash) are deleted;
//   - the segment holding the last indexed fragment is cut right after it (a torn or unindexed
//     tail), once that fragment's checksums are verified.
//
// Media implementations clean their own temporary files when they open.
func (s *Store) repair(ctx context.Context) error {
	keys, err := s.index.FragmentStreams(ctx)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		// An index that knows no stream at all is most likely new or lost: keep the media,
		// which describes itself and could rebuild an index, rather than wipe a data dir that
		// was started with the wrong catalog. (Media of a last stream deleted just before a
		// crash is then collected at a later start.)
		s.log.Debug("fragment index is empty; media of unknown streams is left alone")
	} else {
		removed, err := s.media.Retain(ctx, keys)
		if err != nil {
			return err
		}
		for _, r := range removed {
			s.log.Info("removed media of a stream without index entries", "stream", r)
		}
	}
	for _, k := range keys {
		if err := s.recoverStream(ctx, k); err != nil {
			return fmt.Errorf("stream %s: %w", k.Name, err)
		}
	}
	return nil
}

// maxUncommitted bounds the records a crash can leave written but not committed per stream:
// ingest keeps a few fragments between media and index (3 with the writer, 4 awaiting their
// commit, per connection; two connections of a stream overlap while one takes over), and the
// bound leaves room over that. Many more unindexed records after the last indexed one mean an
// older catalog was restored over newer media: recovery would cut them, so kvsd refuses to
// start instead.
const maxUncommitted = 64

// ErrCatalogBehind: the media holds many more fragments than the index after its last one.
var ErrCatalogBehind = errors.New("the catalog is older than the media")

// recordCounter is a Media that can count the records recovery would remove (disk.Media).
type recordCounter interface {
	RecordsAfter(ctx context.Context, k Key, loc Location) (int, error)
}

func (s *Store) recoverStream(ctx context.Context, k Key) error {
	segs, err := s.media.Segments(ctx, k)
	if err != nil || len(segs) == 0 {
		return err
	}
	if rc, ok := s.media.(recordCounter); ok {
		if last, loc, err := s.index.LastFragment(ctx, k); err == nil && last > 0 {
			n, err := rc.RecordsAfter(ctx, k, loc)
			if err != nil {
				return err
			}
			if n > maxUncommitted {
				return fmt.Errorf("%w: %d intact fragments follow the last one the index holds (a crash leaves at most %d); "+
					"was an older catalog.db restored? Run `kvsd fsck --data-dir DIR --repair` to index them, then start kvsd", ErrCatalogBehind, n, maxUncommitted)
			}
		}
	}
	liveList, err := s.index.LiveSegments(ctx, k)
	if err != nil {
		return err
	}
	live := make(map[uint64]bool, len(liveList))
	for _, n := range liveList {
		live[n] = true
	}
	for _, seg := range segs {
		if live[seg.Number] {
			continue
		}
		if err := s.media.DeleteSegment(ctx, k, seg.Number); err != nil {
			return err
		}
		s.log.Info("deleted segment without indexed fragments", "stream", k.Name, "segment", seg.Number, "bytes", seg.Size)
	}
	lastSeq, loc, err := s.index.LastFragment(ctx, k)
	if err != nil || lastSeq == 0 || !live[loc.Segment] {
		return err // nothing indexed is left in media: no tail to cut
	}
	cut, err := s.media.TruncateAfter(ctx, k, loc)
	switch {
	case errors.Is(err, ErrNotFound):
		s.log.Error("segment of the last indexed fragment is missing", "stream", k.Name, "segment", loc.Segment, "seq", lastSeq)
	case errors.Is(err, ErrCorrupt):
		// The disk lost a synced write. Refusing to start would take every stream down for
		// one damaged fragment; reads of it fail with ErrCorrupt, the rest is served.
		s.log.Error("last indexed fragment fails its checksum; left in place", "stream", k.Name,
			"segment", loc.Segment, "seq", lastSeq, "err", err)
	case err != nil:
		return err
	case cut > 0:
		s.log.Warn("cut unindexed bytes after the last indexed fragment", "stream", k.Name,
			"segment", loc.Segment, "bytes", cut)
	}
	return nil
}
