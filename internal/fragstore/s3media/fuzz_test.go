package s3media

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/fragstore"
)

// FuzzDecodeHeader: any object bytes either decode to the header of the record at the
// location or fail with ErrCorrupt, never a panic; an encoded record decodes to itself.
func FuzzDecodeHeader(f *testing.F) {
	k := fragstore.Key{Name: "cam", CreatedMs: 1700000000123}
	loc := fragstore.Location{Segment: 7, Offset: 9, Length: 4}
	f.Add(encodeObject(k, 7, fragstore.Record{Seq: 9, Meta: []byte("{}"), Data: []byte("data")}))
	f.Add([]byte("KOBJ\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHeader(k, loc, b)
		if err != nil {
			require.ErrorIs(t, err, fragstore.ErrCorrupt)
			return
		}
		require.Equal(t, uint64(7), h.seg)
		require.Equal(t, uint64(9), h.seq)
	})
}
