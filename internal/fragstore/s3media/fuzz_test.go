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

// An object sealed before its segment is known (Prepare), into a buffer that held a larger
// object before, reads back as the record in the segment set afterwards, in clear and sealed.
func TestObjectSegmentSetAfterSealing(t *testing.T) {
	k := fragstore.Key{Name: "cam", CreatedMs: 1700000000123}
	rec := fragstore.Record{Seq: 9, Meta: []byte(`{"m":1}`), Data: []byte("the fragment's media")}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	aead, err := keys.NewAEAD(key)
	require.NoError(t, err)
	for _, dk := range []*keys.DataKey{nil, {AEAD: aead, Wrapped: keys.Wrapped{Source: keys.SourceFile, KeyID: "k1", Blob: []byte("wrapped")}}} {
		dirty := make([]byte, 4096)
		for i := range dirty {
			dirty[i] = 0xA5
		}
		b, err := appendObject(dirty, k, 0, rec, dk)
		require.NoError(t, err)
		setSegment(b, k, 42)
		loc := fragstore.Location{Segment: 42, Offset: 9, Length: int64(len(rec.Data))}
		h, err := decodeHeader(k, loc, b)
		require.NoError(t, err)
		data := b[h.len : h.len+h.stored()]
		got, err := openData(k, loc, h, data, aead)
		require.NoError(t, err)
		require.Equal(t, rec.Data, got)
		require.Equal(t, rec.Meta, b[h.len+h.stored():])
		if dk == nil { // byte for byte what encodeObject writes for the segment
			want, err := encodeObject(k, 42, rec, nil)
			require.NoError(t, err)
			require.Equal(t, want, b)
		}
		_, err = decodeHeader(k, fragstore.Location{Segment: 0, Offset: 9}, b)
		require.ErrorIs(t, err, fragstore.ErrCorrupt, "the segment Prepare sealed with is gone")
	}
}
