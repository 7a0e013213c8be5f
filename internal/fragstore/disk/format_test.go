package disk

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/fragstore"
)

// goldenSegment is a version-2 segment holding one record (seq 1, data "abc", meta "{}") of
// stream "cam" created at 1700000000123, byte for byte as docs/format/media.md describes it:
// header and record each zero-filled to a 4096-byte boundary. The expected bytes (CRCs
// included) were computed by an independent implementation; if this test fails, the media
// format changed.
var goldenSegment = "" +
	"4b534547" + "02" + "00" + "0003" + "0000018bcfe5687b" + "0000000000000001" + "63616d" + "9aa21aeb" + // segment header
	strings.Repeat("00", 4096-31) +
	"4b524543" + "02" + "000000" + "0000000000000001" + "00000003" + "00000002" + // record header …
	"364b3fb7" + "297bd0aa" + "3845d805" + // … data CRC, meta CRC, header CRC
	"616263" + "7b7d" + // data, meta
	strings.Repeat("00", 4096-41)

// goldenSegmentV1 is the same segment in version 1, written by kvsd before records were
// aligned: no fill, records back to back. Such segments are still read.
const goldenSegmentV1 = "" +
	"4b534547" + "01" + "00" + "0003" + "0000018bcfe5687b" + "0000000000000001" + "63616d" + "04d60aa3" +
	"4b524543" + "01" + "000000" + "0000000000000001" + "00000003" + "00000002" +
	"364b3fb7" + "297bd0aa" + "db9733a8" +
	"616263" + "7b7d"

var goldenKey = fragstore.Key{Name: "cam", CreatedMs: 1700000000123}

func TestFormatGolden(t *testing.T) {
	for _, buffered := range []bool{false, true} {
		dir := t.TempDir()
		m, err := Open(Config{Dir: dir, Buffered: buffered})
		require.NoError(t, err)
		defer m.Close()
		loc, err := m.Append(context.Background(), goldenKey, fragstore.Record{Seq: 1, Time: time.Now(), Meta: []byte("{}"), Data: []byte("abc")})
		require.NoError(t, err)
		require.Equal(t, fragstore.Location{Segment: 1, Offset: 4096 + 36, Length: 3}, loc)
		b, err := os.ReadFile(filepath.Join(dir, "1700000000123_cam", "00000000000000000001.seg"))
		require.NoError(t, err)
		requireHexEqual(t, goldenSegment, hex.EncodeToString(b), fmt.Sprintf("buffered=%v", buffered))
	}
}

// TestFormatV1Read: a version-1 segment reads, scans and truncates as it always did.
func TestFormatV1Read(t *testing.T) {
	dir := t.TempDir()
	raw, err := hex.DecodeString(goldenSegmentV1 + goldenSegmentV1[2*31:]) // two copies of the record
	require.NoError(t, err)
	path := filepath.Join(dir, "1700000000123_cam", "00000000000000000001.seg")
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
	require.NoError(t, os.WriteFile(path, raw, 0o600))

	var locs []fragstore.Location
	info, end, err := ScanSegment(path, func(r ScannedRecord) error {
		require.Equal(t, "abc", string(r.Data))
		require.Equal(t, "{}", string(r.Meta))
		locs = append(locs, r.Loc)
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, SegmentInfo{Key: goldenKey, Number: 1, Version: 1, Size: 31}, info)
	require.Equal(t, int64(len(raw)), end)
	require.Equal(t, []fragstore.Location{{Segment: 1, Offset: 67, Length: 3}, {Segment: 1, Offset: 108, Length: 3}}, locs)

	m, err := Open(Config{Dir: dir})
	require.NoError(t, err)
	defer m.Close()
	data, err := m.Read(context.Background(), goldenKey, locs[1])
	require.NoError(t, err)
	require.Equal(t, "abc", string(data))
	cut, err := m.TruncateAfter(context.Background(), goldenKey, locs[0])
	require.NoError(t, err)
	require.Equal(t, int64(41), cut)
}

// requireHexEqual compares hex dumps, reporting the first difference rather than 16 KB of zeros.
func requireHexEqual(t *testing.T, want, got, what string) {
	t.Helper()
	if want == got {
		return
	}
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	from := max(0, i-16)
	t.Fatalf("%v: %d hex digits, want %d; first difference at byte %d: got …%.48s…, want …%.48s…",
		what, len(got), len(want), i/2, got[from:], want[from:])
}
