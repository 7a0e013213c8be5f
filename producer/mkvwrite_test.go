package producer

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestWriterBytes pins the producer's Matroska bytes: the output of the
// hand-written writer kvsd had before mkv.Writer (whose equality with the
// new one was checked over random input before it was deleted), so that
// any change in the layout of §3.5 shows.
func TestWriterBytes(t *testing.T) {
	doc := appendHeader(nil, Track{CodecID: CodecH264, CodecPrivate: bytes.Repeat([]byte{9}, 130), Width: 1280, Height: 720}, [16]byte{1, 2, 3}, 0x1122334455667788)
	doc = appendClusterStart(doc, 1_700_000_000_123)
	doc = appendSimpleBlock(doc, -5, true, []byte("key"))
	doc = appendSimpleBlock(doc, 40, false, []byte("delta"))
	want := mustHex(t, ""+
		"1a45dfa3a34286810142f7810142f2810442f381084282886d6174726f736b61"+
		"428781024285810218538067ff1549a966404f73a49001020300000000000000"+
		"0000000000002ad7b18800000000000f42407ba98d6b7673642070726f647563"+
		"65724d808d6b7673642070726f647563657257418d6b7673642070726f647563"+
		"65721654ae6b100000bcae100000b7d7810173c5881122334455667788838101"+
		"868f565f4d504547342f49534f2f41564363a210000082")
	want = append(want, bytes.Repeat([]byte{9}, 130)...)
	want = append(want, mustHex(t, ""+
		"e010000008b0820500ba8202d01f43b675ffe7880000018bcfe5687ba78100a3"+
		"010000000000000781fffb806b6579a301000000000000098100280064656c74"+
		"61")...)
	require.Equal(t, want, doc)
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}
