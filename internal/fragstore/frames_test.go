package fragstore_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/mkv/mkvtest"
)

// Every stored record carries its fragment's frame table in clear: Sections.Frames gives each
// frame's track, time, key flag and place in the media without reading the media, encrypted or
// not, and those places hold exactly the frames; media that is not a Cluster has no table.
func TestFrameTables(t *testing.T) {
	for _, plain := range []bool{true, false} {
		t.Run(fmt.Sprintf("plain=%v", plain), func(t *testing.T) {
			e := openEnvWith(t, t.TempDir(), plain)
			cluster := mkvtest.Wide.Cluster(5000,
				mkvtest.Block{Track: 1, Rel: 0, Key: true, Data: []byte("key frame")},
				mkvtest.Block{Track: 2, Rel: -3, Data: []byte("audio")},
				mkvtest.Block{Track: 1, Rel: 40, Data: []byte("second frame")},
			)
			cluster = append(cluster, mkvtest.Wide.Tags("n", "1")...)
			f := frag(key, 1)
			require.NoError(t, e.s.Append(ctx, key, header, f, cluster))
			f2 := frag(key, 2)
			require.NoError(t, e.s.Append(ctx, key, header, f2, media(2)))

			frags, err := e.s.After(ctx, key, 0, 10)
			require.NoError(t, err)
			ss, err := e.s.Sections(ctx, key, frags)
			require.NoError(t, err)
			defer ss.Close()
			table, ok := ss.Frames(0)
			require.True(t, ok)
			want := []mkv.FramePlace{
				{Track: 1, Timecode: 5000, Keyframe: true, Size: int64(len("key frame"))},
				{Track: 2, Timecode: 4997, Size: int64(len("audio"))},
				{Track: 1, Timecode: 5040, Size: int64(len("second frame"))},
			}
			require.Len(t, table, len(want))
			for i, fp := range table {
				w := want[i]
				w.Offset = fp.Offset
				require.Equal(t, w, fp)
			}
			for i, data := range []string{"key frame", "audio", "second frame"} {
				require.Equal(t, data, string(cluster[table[i].Offset:table[i].Offset+table[i].Size]))
			}
			_, ok = ss.Frames(1)
			require.False(t, ok, "random bytes are no Cluster: no table")
		})
	}
}
