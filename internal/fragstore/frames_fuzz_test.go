package fragstore

import (
	"testing"

	"github.com/kvsd/kvsd/internal/mkv/mkvtest"
)

// A record's frame table is read back from disk: any bytes decode to frames inside the media or
// to an error, never a panic or a frame past the media's end.
func FuzzDecodeFrames(f *testing.F) {
	cluster := mkvtest.Wide.Cluster(7, mkvtest.Block{Track: 1, Key: true, Data: []byte("abc")}, mkvtest.Block{Track: 2, Rel: -1, Data: []byte("de")})
	f.Add(encodeFrames(cluster), int64(len(cluster)))
	f.Add([]byte{1, 1, 0, 0, 0, 5}, int64(4))
	f.Fuzz(func(t *testing.T, b []byte, size int64) {
		frames, err := decodeFrames(b, size)
		if err != nil {
			return
		}
		for _, fr := range frames {
			if fr.Offset < 0 || fr.Size < 0 || fr.Offset+fr.Size > size {
				t.Fatalf("frame %+v outside %d bytes", fr, size)
			}
		}
	})
}
