package producer

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/mkv"
)

// TestWriterMatchesOld: the producer's output on mkv.Writer is byte for
// byte what the hand-written writer before it produced, for headers of
// every shape (codec IDs, codec private data from none to 300 bytes and
// past a 1-byte size, sizes beyond 16 bits), cluster starts and blocks.
func TestWriterMatchesOld(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tracks := []Track{
		{CodecID: CodecH264, CodecPrivate: []byte{1, 2, 3}, Width: 1280, Height: 720},
		{CodecID: CodecH265, CodecPrivate: bytes.Repeat([]byte{9}, 300), Width: 1920, Height: 1080},
		{CodecID: "V_VP8", CodecPrivate: nil},
		{CodecID: CodecH264, CodecPrivate: []byte{}, Width: 70000, Height: -1},
	}
	for range 50 {
		tracks = append(tracks, Track{CodecID: CodecH264, CodecPrivate: randBytes(rng, rng.IntN(2000)), Width: rng.IntN(5000), Height: rng.IntN(5000)})
	}
	for i, tr := range tracks {
		var uid [16]byte
		for j := range uid {
			uid[j] = byte(rng.Uint32())
		}
		tuid := rng.Uint64()
		prefix := randBytes(rng, i%3)
		require.Equal(t, oldAppendHeader(bytes.Clone(prefix), tr, uid, tuid), appendHeader(bytes.Clone(prefix), tr, uid, tuid), "track %d", i)
	}
	for _, tc := range []int64{0, 1, 1_700_000_000_123, -1, rng.Int64()} {
		require.Equal(t, oldAppendClusterStart([]byte{7}, tc), appendClusterStart([]byte{7}, tc))
	}
	for i := range 200 {
		data := randBytes(rng, rng.IntN(1<<(i%18)))
		rel := int16(rng.Uint32())
		key := i%2 == 0
		require.Equal(t, oldAppendSimpleBlock([]byte{7}, rel, key, data), appendSimpleBlock([]byte{7}, rel, key, data))
	}
	tags := []mkv.SimpleTag{{Name: tagImage, Value: "front"}, {Name: "zone", Value: "A"}}
	require.Equal(t, oldAppendTags(nil, tags), appendTags(nil, tags))
	require.Equal(t, len(oldAppendSimpleBlock(nil, 0, true, nil)), simpleBlockOverhead)
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}
