package remux

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/abema/go-mp4"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/pmp4"
	"github.com/stretchr/testify/require"
)

// clipMoov's sample tables are byte for byte the ones mediacommon writes for the same samples
// (differential: runs of durations and offsets, sync samples, sizes), and the rest of the
// moov is mediacommon's for the whole track.
func TestClipMoovTablesMatchMediacommon(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		n := 1 + rng.IntN(400)
		ss := make([]*pmp4.Sample, n)
		var total uint32
		for k := range ss {
			ss[k] = &pmp4.Sample{
				Duration:        uint32(3000 + rng.IntN(3)*30), // runs, as 33/34 ms frames make
				PTSOffset:       int32(rng.IntN(3)-1) * 3000,
				IsNonSyncSample: round%4 != 0 && k%30 != 0, // some rounds: every sample sync
				PayloadSize:     uint32(1 + rng.IntN(50000)),
			}
			total += ss[k].Duration
		}
		codec := &fmp4.CodecMPEG4Audio{Config: mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 48000, ChannelCount: 2}}
		track := func(samples []*pmp4.Sample) *pmp4.Presentation {
			return &pmp4.Presentation{Tracks: []*pmp4.Track{{ID: 1, TimeScale: 90000, TimeOffset: 1500, Codec: codec, Samples: samples}}}
		}
		var full captureWriter
		require.ErrorIs(t, track(ss).Marshal(&full), errCaptured)
		offs := make([]uint32, n)
		ours, err := clipMoov(track([]*pmp4.Sample{{Duration: total, PTSOffset: ss[0].PTSOffset}}),
			[]*clipTrack{{samples: ss}}, [][]uint32{offs})
		require.NoError(t, err)

		want, got := boxes(t, full.b), boxes(t, ours)
		for _, typ := range []string{"ftyp", "mvhd", "tkhd", "elst", "mdhd", "stsd", "stts", "stss", "ctts", "stsz"} {
			require.Equal(t, want[typ], got[typ], "round %d: %s", round, typ)
		}
		require.Equal(t, round%4 == 0, got["stss"] == nil, "round %d: stss only when some sample is not sync", round)
	}
}

// boxes returns the bytes of every box in an MP4, by type (the last of a type).
func boxes(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	_, err := mp4.ReadBoxStructure(bytes.NewReader(b), func(h *mp4.ReadHandle) (any, error) {
		out[h.BoxInfo.Type.String()] = b[h.BoxInfo.Offset : h.BoxInfo.Offset+h.BoxInfo.Size]
		if h.BoxInfo.IsSupportedType() {
			return h.Expand()
		}
		return nil, nil
	})
	require.NoError(t, err)
	return out
}
