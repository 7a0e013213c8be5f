package mkv

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAppendTags8ImageTag pins the 85-byte minimal image-generation tag the
// KVS producer SDK writes (reference §5.2).
func TestAppendTags8ImageTag(t *testing.T) {
	want := cat(hexb("12 54 c3 67 01 00 00 00 00 00 00 49 73 73 01 00 00 00 00 00 00 3f 67 c8 01 00 00 00 00 00 00 35 45 a3 01 00 00 00 00 00 00 21"),
		[]byte("AWS_KINESISVIDEO_IMAGE_GENERATION"), hexb("44 87 01 00 00 00 00 00 00 00"))
	require.Len(t, want, 85)
	got := AppendTags8(nil, []SimpleTag{{Name: "AWS_KINESISVIDEO_IMAGE_GENERATION"}})
	require.Equal(t, want, got)
	require.Equal(t, tags8("AWS_KINESISVIDEO_IMAGE_GENERATION", ""), got)
}

// TestAppendTagsAWSLayout pins the start of the service's own tags (§4.2):
// 4-byte sizes, no Targets.
func TestAppendTagsAWSLayout(t *testing.T) {
	fn := "91343852333181432392682062607743920146159169392"
	got := AppendTags([]byte{0xEE}, []SimpleTag{
		{"AWS_KINESISVIDEO_FRAGMENT_NUMBER", fn},
		{"AWS_KINESISVIDEO_SERVER_TIMESTAMP", "1511852109.126"},
		{"AWS_KINESISVIDEO_PRODUCER_TIMESTAMP", "1511852108.513"},
	})
	prefix := cat([]byte{0xEE}, hexb("12 54 c3 67 10 00 00 eb 73 73 10 00 00 e5 67 c8 10 00 00 5b 45 a3 10 00 00 20"),
		[]byte("AWS_KINESISVIDEO_FRAGMENT_NUMBER"), hexb("44 87 10 00 00 2f"), []byte(fn))
	require.Equal(t, prefix, got[:len(prefix)])
	require.Len(t, got, 1+8+0xeb)
}

// TestAppendTagsRoundTrip reads written Tags back with the Reader.
func TestAppendTagsRoundTrip(t *testing.T) {
	tags := []SimpleTag{
		{"AWS_KINESISVIDEO_MILLIS_BEHIND_NOW", "15858"},
		{"AWS_KINESISVIDEO_CONTINUATION_TOKEN", "9134"},
		{"empty", ""},
		{"", "no name"},
		{"long", strings.Repeat("v", 300)},
	}
	for name, appendFn := range map[string]func([]byte, []SimpleTag) []byte{"AppendTags": AppendTags, "AppendTags8": AppendTags8} {
		t.Run(name, func(t *testing.T) {
			for _, in := range [][]SimpleTag{tags, nil, tags[:1]} {
				written := appendFn(nil, in)
				stream := cat(picHeader(), picGOP(1, 1, 1, 0), written)
				res := readAll(bytes.NewReader(stream), Limits{})
				require.ErrorIs(t, res.err, io.EOF)
				last := res.events[len(res.events)-1]
				require.Equal(t, KindTags, last.Kind)
				require.Equal(t, written, last.Raw)
				require.Equal(t, len(in), len(last.Tags))
				if len(in) > 0 {
					require.Equal(t, in, last.Tags)
				}
			}
		})
	}
}

// TestCloseElemWidens checks the fallback for a payload too big for the
// requested size width; 1-byte fields (at most 126) keep the test cheap,
// the code path is the one a 256 MiB tag would take with 4-byte fields.
func TestCloseElemWidens(t *testing.T) {
	for _, n := range []int{126, 127} {
		got := appendString([]byte{0xEE}, idTagString, strings.Repeat("x", n), 1)
		size := hexb("FE")
		if n == 127 {
			size = hexb("01 00 00 00 00 00 00 7F")
		}
		require.Equal(t, cat([]byte{0xEE}, hexb("44 87"), size, bytes.Repeat([]byte("x"), n)), got)
	}
}
