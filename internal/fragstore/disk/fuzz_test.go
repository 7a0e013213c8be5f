package disk

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// FuzzScanSegment: whatever a segment file holds (torn, corrupted, hostile lengths), a scan
// neither panics nor allocates by a length it cannot back with file bytes, reports only
// records that lie inside the file, and claims a good prefix no longer than the file.
func FuzzScanSegment(f *testing.F) {
	for _, golden := range []string{goldenSegment, goldenSegmentV1, goldenSegmentV1 + goldenSegmentV1[2*31:]} {
		b, err := hex.DecodeString(golden)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(b[:31])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		size := int64(len(b))
		_, end, err := scanSegment(bytes.NewReader(b), size, func(r ScannedRecord) error {
			if r.Loc.Offset < recHeaderLen || r.Loc.Offset+r.Loc.Length > size || int64(len(r.Data)) != r.Loc.Length {
				t.Fatalf("record %d at %+v outside a %d-byte file (data %d bytes)", r.Seq, r.Loc, size, len(r.Data))
			}
			return nil
		})
		if end < 0 || end > size {
			t.Fatalf("good prefix %d of a %d-byte file", end, size)
		}
		if err == nil && end != size {
			t.Fatalf("no error, but the good records end at %d of %d bytes", end, size)
		}
	})
}
