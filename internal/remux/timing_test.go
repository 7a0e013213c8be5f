package remux

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/pmp4"
	"github.com/stretchr/testify/require"
)

func readPart(t *testing.T, b []byte) *fmp4.PartTrack {
	t.Helper()
	var parts fmp4.Parts
	require.NoError(t, parts.Unmarshal(b))
	require.Len(t, parts, 1)
	require.Len(t, parts[0].Tracks, 1)
	return parts[0].Tracks[0]
}

// A GOP of I P B B in decode order (presented I B B P, 40 ms apart), the Cluster at the
// keyframe: decode times are the presentation times in order, moved back by the reorder
// depth (one frame), and composition offsets say the rest.
func TestBFrameTimes(t *testing.T) {
	m, err := Open(testHeader())
	require.NoError(t, err)
	start := 1_700_000_000 * time.Second
	f := Fragment{
		Media: mkvCluster(5000,
			block{1, 0, true, testIDR}, block{1, 120, false, testP},
			block{1, 40, false, testP}, block{1, 80, false, testP},
		),
		Timecode: 5000,
		Start:    start,
		Duration: 160 * time.Millisecond,
	}
	b, err := m.AppendMP4Fragment(nil, f, 1, 7)
	require.NoError(t, err)
	pt := readPart(t, b)
	base := uint64(start / time.Second * 90000)
	require.Equal(t, base-3600, pt.BaseTime) // 64 bits: 1.5e14
	var got [][3]int64
	for _, s := range pt.Samples {
		got = append(got, [3]int64{int64(s.Duration), int64(s.PTSOffset), map[bool]int64{false: 1}[s.IsNonSyncSample]})
	}
	// Duration, composition offset, sync. The last frame lasts to Start + Duration.
	require.Equal(t, [][3]int64{{3600, 3600, 1}, {3600, 10800, 0}, {3600, 0, 0}, {3600, 0, 0}}, got)

	// A timeline that starts at 0 leaves no room for the shift: tfdt 0, the B-frames' offsets
	// negative.
	f.Start = 0
	pt = readPart(t, must(m.AppendMP4Fragment(nil, f, 1, 7)))
	require.Zero(t, pt.BaseTime)
	var offsets []int32
	for _, s := range pt.Samples {
		offsets = append(offsets, s.PTSOffset)
	}
	require.Equal(t, []int32{0, 7200, -3600, -3600}, offsets)
	f.Start = start

	// TS: the same decode times, modulo 2^33.
	units, err := m.tsUnits(must(m.parse(f)))
	require.NoError(t, err)
	var pts, dts []int64
	for _, u := range units {
		pts, dts = append(pts, u.pts-int64(base)), append(dts, u.dts-int64(base))
	}
	require.Equal(t, []int64{0, 10800, 3600, 7200}, pts)
	require.Equal(t, []int64{-3600, 0, 3600, 7200}, dts)
}

// The last video frame lasts until Start + Duration, or as long as the one before when
// Duration leaves nothing; the last AAC frame lasts 1024 samples whatever Duration says.
func TestLastSampleDuration(t *testing.T) {
	m, err := Open(testHeader())
	require.NoError(t, err)
	media := mkvCluster(0,
		block{1, 0, true, testIDR}, block{2, 0, true, testAAC},
		block{1, 40, false, testP}, block{2, 21, true, testAAC},
	)
	for _, c := range []struct {
		duration    time.Duration
		video, aac  uint32
		description string
	}{
		{100 * time.Millisecond, 5400, 1024, "to the end"},
		{0, 3600, 1024, "no Duration"},
		{40 * time.Millisecond, 3600, 1024, "Duration ends at the last frame"},
	} {
		t.Run(c.description, func(t *testing.T) {
			f := Fragment{Media: media, Duration: c.duration}
			v := readPart(t, must(m.AppendMP4Fragment(nil, f, 1, 1)))
			require.Equal(t, c.video, v.Samples[1].Duration)
			a := readPart(t, must(m.AppendMP4Fragment(nil, f, 2, 1)))
			require.Equal(t, []uint32{1008, c.aac}, []uint32{a.Samples[0].Duration, a.Samples[1].Duration})
		})
	}
}

// Frames stored with 2-byte NAL unit lengths become 4-byte ones in MP4 (the sample entry
// mediacommon writes says 4), in fragments and clips alike.
func TestNALLengthSize(t *testing.T) {
	avcc := bytes.Clone(testAVCC)
	avcc[4] = 0xfc | 1 // lengthSizeMinusOne 1
	m, err := Open(mkvHeader(trackEntry(1, 1, codecIDH264, avcc)))
	require.NoError(t, err)
	two := []byte{0, 2, 0x65, 0x88, 0, 3, 0x06, 0x05, 0x80} // IDR slice and SEI
	four := []byte{0, 0, 0, 2, 0x65, 0x88, 0, 0, 0, 3, 0x06, 0x05, 0x80}
	f := Fragment{Media: mkvCluster(0, block{1, 0, true, two}, block{1, 40, false, two})}
	pt := readPart(t, must(m.AppendMP4Fragment(nil, f, 1, 1)))
	require.Equal(t, four, pt.Samples[0].Payload)

	var clip bytes.Buffer
	_, err = m.WriteClip(&clip, 1, func(int, []byte) (Fragment, error) { return f, nil })
	require.NoError(t, err)
	var p pmp4.Presentation
	require.NoError(t, p.Unmarshal(bytes.NewReader(clip.Bytes())))
	require.Len(t, p.Tracks[0].Samples, 2)
	require.EqualValues(t, len(four), p.Tracks[0].Samples[0].PayloadSize)
	require.Equal(t, four, must(p.Tracks[0].Samples[1].GetPayload()))

	// TS: Annex B with the parameter sets before the keyframe.
	ts := must(m.AppendTS(nil, f))
	require.Positive(t, bytes.Count(ts, []byte{0, 0, 0, 1, 0x65, 0x88}))
	require.Positive(t, bytes.Count(ts, append([]byte{0, 0, 0, 1}, 0x67)))
}

// A fragment without frames of a track gives that track an empty moof, and a TS segment
// with the tracks that have frames.
func TestFragmentWithoutATrack(t *testing.T) {
	m, err := Open(testHeader())
	require.NoError(t, err)
	f := Fragment{Media: mkvCluster(0, block{1, 0, true, testIDR}), Start: time.Second}
	a := readPart(t, must(m.AppendMP4Fragment(nil, f, 2, 3)))
	require.Empty(t, a.Samples)
	_, err = m.AppendTS(nil, f)
	require.NoError(t, err)
}

// The tfdt of epoch-based fragments needs 48 bits, and the conversion to 90 kHz rounds
// to the nearest tick without overflowing.
func TestTicks(t *testing.T) {
	for _, c := range []struct {
		ns, timescale, want int64
	}{
		{0, 90000, 0},
		{int64(1_700_000_000 * time.Second), 90000, 153_000_000_000_000},
		{int64(1_700_000_000*time.Second + 40*time.Millisecond), 90000, 153_000_000_003_600},
		{int64(time.Second / 3), 90000, 30000},
		{int64(time.Millisecond), 44100, 44},      // 44.1 rounds down
		{int64(time.Millisecond) * 3, 44100, 132}, // 132.3
		{-int64(time.Millisecond), 90000, -90},
		{-1, 90000, 0},
		{math.MaxInt64, 90000, 830_103_483_316_930}, // 9223372036.854775807 s, 292 years
	} {
		require.Equal(t, c.want, ticks(c.ns, c.timescale), "%d ns at %d Hz", c.ns, c.timescale)
	}
}

// Overlapping fragments in a clip: decode times never go back.
func TestClipOverlap(t *testing.T) {
	m, err := Open(testHeader())
	require.NoError(t, err)
	frag := func(i int, _ []byte) (Fragment, error) {
		return Fragment{
			Media: mkvCluster(0, block{1, 0, true, testIDR}, block{1, 40, false, testP}, block{2, 0, true, testAAC}),
			Start: time.Duration(i) * 30 * time.Millisecond, // each starts 10 ms before the last frame of the one before
		}, nil
	}
	var clip bytes.Buffer
	_, err = m.WriteClip(&clip, 3, frag)
	require.NoError(t, err)
	var p pmp4.Presentation
	require.NoError(t, p.Unmarshal(bytes.NewReader(clip.Bytes())))
	var durations []uint32
	for _, s := range p.Tracks[0].Samples {
		durations = append(durations, s.Duration)
	}
	// Frames at 0 and 40 ms, 30 and 70, 60 and 100: the first frame of each later fragment
	// is decoded with the last of the one before.
	require.Equal(t, []uint32{3600, 0, 2700, 0, 2700, 3600}, durations)
}

// At 44.1 kHz an AAC frame is 23.2199… ms: the last one still lasts 1024 samples exactly.
func TestLastAACFrameAt44100(t *testing.T) {
	m, err := Open(mkvHeader(trackEntry(1, 1, codecIDH264, testAVCC), trackEntry(2, 2, codecIDAAC, []byte{0x12, 0x10})))
	require.NoError(t, err)
	require.Equal(t, 44100, m.Audio.SampleRate)
	f := Fragment{Media: mkvCluster(0, block{1, 0, true, testIDR}, block{2, 0, true, testAAC}, block{2, 23, true, testAAC})}
	a := readPart(t, must(m.AppendMP4Fragment(nil, f, 2, 1)))
	require.Equal(t, []uint32{1014, 1024}, []uint32{a.Samples[0].Duration, a.Samples[1].Duration}) // 23 ms is 1014.3
}

// Moving decode times back cannot push a composition offset past 32 bits.
func TestCompositionOffsetLimit(t *testing.T) {
	// One-second ticks, so that one Cluster spans hours.
	m, err := Open(mkvHeaderScale(1e9, trackEntry(1, 1, codecIDH264, testAVCC)))
	require.NoError(t, err)
	// Decoded first and presented 5 hours (1.6e9 ticks) after the frame decoded next: each is
	// 5 hours from its sorted decode time, and the first 10 hours (3.2e9) after its shifted one.
	const h = 3600
	f := Fragment{Media: mkvCluster(0, block{1, 5 * h, true, testIDR}, block{1, 0, false, testP}), Start: 6 * time.Hour}
	_, err = m.AppendMP4Fragment(nil, f, 1, 1)
	require.ErrorIs(t, err, ErrInvalidFrame)
	require.ErrorContains(t, err, "after its decode time")
}
