package disk

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/keys"
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
	// A version 3 (encrypted) segment of two records.
	dir := f.TempDir()
	kf, err := keys.LoadFile(filepath.Join(dir, "kvsd.key"), true)
	if err != nil {
		f.Fatal(err)
	}
	m, err := Open(Config{Dir: dir, Keys: keys.NewRing(kf, nil), Buffered: true})
	if err != nil {
		f.Fatal(err)
	}
	for seq := uint64(1); seq <= 2; seq++ {
		if _, err := m.Append(context.Background(), goldenKey, fragstore.Record{Seq: seq, Time: time.Now(), Meta: []byte("{}"), Data: []byte("abc")}); err != nil {
			f.Fatal(err)
		}
	}
	_ = m.Close()
	v3, err := os.ReadFile(filepath.Join(dir, "1700000000123_cam", "00000000000000000001.seg"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(v3)
	f.Add(v3[:4096+50])
	f.Fuzz(func(t *testing.T, b []byte) {
		size := int64(len(b))
		_, end, err := scanSegment(bytes.NewReader(b), size, func(r ScannedRecord) error {
			stored := r.Loc.Length
			if r.Sealed {
				stored += sealOverhead
			}
			if r.Loc.Offset < recHeaderLen || r.Loc.Offset+stored > size || int64(len(r.Data)) != stored {
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
