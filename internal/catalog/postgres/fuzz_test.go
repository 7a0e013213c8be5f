package postgres

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/mkv"
)

// FuzzDecodeTags: any bytes decode to tags or errTags, never a panic; what decodes encodes
// to bytes that decode to the same tags.
func FuzzDecodeTags(f *testing.F) {
	f.Add(encodeTags([]mkv.SimpleTag{{Name: "a", Value: "b"}, {Name: "", Value: "v\x00"}}))
	f.Add([]byte{0x80})
	f.Add([]byte{5, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		tags, err := decodeTags(b)
		if err != nil {
			require.ErrorIs(t, err, errTags)
			return
		}
		if len(tags) > 0 {
			again, err := decodeTags(encodeTags(tags))
			require.NoError(t, err)
			require.Equal(t, tags, again)
		}
	})
}
