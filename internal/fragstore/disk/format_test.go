package disk

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/fragstore"
)

// goldenSegment is a version-1 segment holding one record (seq 1, data "abc", meta "{}") of
// stream "cam" created at 1700000000123, byte for byte as docs/format/media.md describes it.
// The expected bytes (CRCs included) were computed by an independent implementation; if this
// test fails, the media format changed.
const goldenSegment = "" +
	"4b534547" + "01" + "00" + "0003" + "0000018bcfe5687b" + "0000000000000001" + "63616d" + "04d60aa3" + // segment header
	"4b524543" + "01" + "000000" + "0000000000000001" + "00000003" + "00000002" + // record header …
	"364b3fb7" + "297bd0aa" + "db9733a8" + // … data CRC, meta CRC, header CRC
	"616263" + "7b7d" // data, meta

func TestFormatGolden(t *testing.T) {
	dir := t.TempDir()
	m, err := Open(Config{Dir: dir})
	require.NoError(t, err)
	defer m.Close()
	k := fragstore.Key{Name: "cam", CreatedMs: 1700000000123}
	loc, err := m.Append(context.Background(), k, fragstore.Record{Seq: 1, Time: time.Now(), Meta: []byte("{}"), Data: []byte("abc")})
	require.NoError(t, err)
	require.Equal(t, fragstore.Location{Segment: 1, Offset: 31 + 36, Length: 3}, loc)
	b, err := os.ReadFile(filepath.Join(dir, "1700000000123_cam", "00000000000000000001.seg"))
	require.NoError(t, err)
	require.Equal(t, goldenSegment, hex.EncodeToString(b))
}
