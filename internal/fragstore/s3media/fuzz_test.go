package s3media

import (
	"crypto/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/keys"
)

// FuzzDecodeHeader: any object bytes either decode to the header of the record at the
// location or fail with ErrCorrupt, never a panic; encoded records, in clear and sealed,
// decode to themselves.
func FuzzDecodeHeader(f *testing.F) {
	k := fragstore.Key{Name: "cam", CreatedMs: 1700000000123}
	loc := fragstore.Location{Segment: 7, Offset: 9, Length: 4}
	r := fragstore.Record{Seq: 9, Meta: []byte("{}"), Data: []byte("data")}
	clear, err := encodeObject(k, 7, r, nil)
	require.NoError(f, err)
	f.Add(clear)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	aead, err := keys.NewAEAD(key)
	require.NoError(f, err)
	sealed, err := encodeObject(k, 7, r, &keys.DataKey{AEAD: aead, Wrapped: keys.Wrapped{Source: keys.SourceFile, KeyID: "k1", Blob: []byte("wrapped")}})
	require.NoError(f, err)
	f.Add(sealed)
	f.Add([]byte("KOBJ\x01"))
	f.Add([]byte("KOBJ\x02"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHeader(k, loc, b)
		if err != nil {
			require.ErrorIs(t, err, fragstore.ErrCorrupt)
			return
		}
		require.Equal(t, uint64(7), h.seg)
		require.Equal(t, uint64(9), h.seq)
		require.LessOrEqual(t, h.len, int64(len(b)))
	})
}
