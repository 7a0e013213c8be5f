package disk

import (
	"context"
	"fmt"
	"os"

	"github.com/kvsd/kvsd/internal/fragstore"
)

// OpenSegment opens segment seg of k for reading, for a caller that reads records through it
// and keeps it open (fragstore.Store.Sections); ErrNotFound when it is gone. verbatim reports
// whether its records' data lie in the file as ingested, at their Location.Offset (versions 1
// and 2), so that they can be sent from the file as they are; an encrypted segment's (version
// 3) must be read with ReadSection. The caller closes the file.
func (m *Media) OpenSegment(ctx context.Context, k fragstore.Key, seg uint64) (f *os.File, verbatim bool, err error) {
	f, err = m.openRecord(ctx, k, fragstore.Location{Segment: seg})
	if err != nil {
		return nil, false, err
	}
	info, err := readSegmentHeader(f)
	if err != nil {
		_ = f.Close()
		return nil, false, fmt.Errorf("segment %d of %s: %w", seg, k.Name, err)
	}
	return f, info.DataKey == nil, nil
}

// ReadSection is ReadAppend through f, loc's segment as OpenSegment opened it.
func (m *Media) ReadSection(ctx context.Context, f *os.File, loc fragstore.Location, dst []byte) ([]byte, error) {
	out, err := readRecordAppend(f, loc.Offset, loc.Length, dst, m.opener(ctx, f))
	if err != nil {
		return dst, fmt.Errorf("segment %d: %w", loc.Segment, err)
	}
	return out, nil
}

// ReadMetaSection returns the meta of the record at loc, read from f (loc's segment as
// OpenSegment opened it) after checking its checksum, without reading the media: the meta
// lies in clear after the data field.
func (m *Media) ReadMetaSection(f *os.File, loc fragstore.Location) ([]byte, error) {
	if err := checkLoc(loc.Offset, loc.Length); err != nil {
		return nil, err
	}
	var hb [recHeaderLen]byte
	if err := readFull(f, hb[:], loc.Offset-recHeaderLen); err != nil {
		return nil, fmt.Errorf("segment %d: %w", loc.Segment, err)
	}
	h, err := decodeRecHeader(hb[:])
	if err != nil {
		return nil, fmt.Errorf("segment %d: %w", loc.Segment, err)
	}
	if h.dataLen != loc.Length {
		return nil, corrupt("record holds %d bytes of data, location says %d", h.dataLen, loc.Length)
	}
	meta := make([]byte, h.metaLen)
	if err := readFull(f, meta, loc.Offset+h.stored()); err != nil {
		return nil, fmt.Errorf("segment %d: %w", loc.Segment, err)
	}
	if crc(meta) != h.metaCRC {
		return nil, corrupt("meta checksum mismatch in record %d", h.seq)
	}
	return meta, nil
}
