package disk

import (
	"context"
	"fmt"
	"os"

	"github.com/kvsd/kvsd/internal/fragstore"
)

// OpenSegment opens segment seg of k for reading, for a caller that reads records through it
// and keeps it open (fragstore.Store.Sections); ErrNotFound when it is gone. A record's data
// lies verbatim in the file at its Location.Offset. The caller closes the file.
func (m *Media) OpenSegment(ctx context.Context, k fragstore.Key, seg uint64) (*os.File, error) {
	return m.openRecord(ctx, k, fragstore.Location{Segment: seg})
}

// ReadSection is ReadAppend through f, loc's segment as OpenSegment opened it.
func (m *Media) ReadSection(f *os.File, loc fragstore.Location, dst []byte) ([]byte, error) {
	out, err := readRecordAppend(f, loc.Offset, loc.Length, dst)
	if err != nil {
		return dst, fmt.Errorf("segment %d: %w", loc.Segment, err)
	}
	return out, nil
}
