package media

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/imaging"
)

// These tests need no cgo: planning and NAL framing are pure Go.

func ms(v int) time.Duration { return time.Duration(v) * time.Millisecond }

// gop builds packets from (PTS in ms, key) pairs in decode order.
func gop(spec ...int) []imaging.Packet {
	var p []imaging.Packet
	for i := 0; i < len(spec); i += 2 {
		p = append(p, imaging.Packet{Data: []byte{1}, PTS: ms(spec[i]), Key: spec[i+1] == 1})
	}
	return p
}

func TestMakePlan(t *testing.T) {
	// Decode order with B-frames: I0 P3 B1 B2 | I4 P6 B5, 40 ms per frame.
	bframes := gop(0, 1, 120, 0, 40, 0, 80, 0, 160, 1, 240, 0, 200, 0)
	cases := []struct {
		name    string
		packets []imaging.Packet
		at      []time.Duration
		passes  []pass
		shows   map[int][]int
		errs    map[int]string // sample → error substring
	}{
		{
			name:    "keyframe samples decode keyframes alone",
			packets: gop(0, 1, 40, 0, 80, 0, 120, 1, 160, 0),
			at:      []time.Duration{0, ms(120), ms(121)},
			passes:  []pass{{0, 0}, {3, 3}},
			shows:   map[int][]int{0: {0}, 3: {1, 2}},
		},
		{
			name:    "one pass per GOP up to its last needed frame",
			packets: gop(0, 1, 40, 0, 80, 0, 120, 0, 160, 1, 200, 0, 240, 0),
			at:      []time.Duration{ms(50), ms(130), ms(170), ms(239)},
			passes:  []pass{{0, 3}, {4, 5}},
			shows:   map[int][]int{1: {0}, 3: {1}, 4: {2}, 5: {3}},
		},
		{
			name:    "before the first frame; after the last",
			packets: gop(1000, 1, 1040, 0),
			at:      []time.Duration{ms(999), ms(5000)},
			passes:  []pass{{0, 1}},
			shows:   map[int][]int{1: {1}},
			errs:    map[int]string{0: imaging.ErrNoFrame.Error()},
		},
		{
			name:    "no keyframe before the frame",
			packets: gop(0, 0, 40, 0, 80, 1),
			at:      []time.Duration{ms(40), ms(80)},
			passes:  []pass{{2, 2}},
			shows:   map[int][]int{2: {1}},
			errs:    map[int]string{0: "no keyframe"},
		},
		{
			name:    "B-frames: the frame on screen is by PTS, the pass by decode order",
			packets: bframes,
			at:      []time.Duration{ms(90), ms(40), ms(130), ms(210)},
			passes:  []pass{{0, 3}, {4, 6}},
			shows:   map[int][]int{3: {0}, 2: {1}, 1: {2}, 6: {3}},
		},
		{
			name:    "equal PTS: the later packet",
			packets: gop(0, 1, 40, 0, 40, 0, 80, 0),
			at:      []time.Duration{ms(60)},
			passes:  []pass{{0, 2}},
			shows:   map[int][]int{2: {0}},
		},
		{name: "no packets", at: []time.Duration{0}, errs: map[int]string{0: imaging.ErrNoFrame.Error()}, shows: map[int][]int{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := make([]imaging.Result, len(c.at))
			p := makePlan(c.packets, c.at, res)
			require.Equal(t, c.passes, p.passes)
			require.Equal(t, c.shows, p.shows)
			for i, r := range res {
				if msg, ok := c.errs[i]; ok {
					require.ErrorContains(t, r.Err, msg)
				} else {
					require.NoError(t, r.Err)
				}
			}
			if c.errs[0] == imaging.ErrNoFrame.Error() {
				require.True(t, errors.Is(res[0].Err, imaging.ErrNoFrame))
			}
		})
	}
}

// TestShrinksByHalf: the rule for decoding a keyframe without the
// deblocking filter: the image at most half the picture in both directions.
func TestShrinksByHalf(t *testing.T) {
	for _, c := range []struct {
		spec       imaging.Spec
		srcW, srcH int
		want       bool
	}{
		{imaging.Spec{Width: 320, Height: 240}, 1920, 1080, true},
		{imaging.Spec{Width: 960, Height: 540}, 1920, 1080, true}, // exactly half
		{imaging.Spec{Width: 961, Height: 540}, 1920, 1080, false},
		{imaging.Spec{Width: 960, Height: 541}, 1920, 1080, false},
		{imaging.Spec{Width: 320, Height: 240}, 640, 360, false}, // 1.5× vertically
		{imaging.Spec{Width: 640}, 1280, 720, true},              // 640×360
		{imaging.Spec{Height: 600}, 1920, 1080, false},
		{imaging.Spec{}, 1920, 1080, false},                  // source size
		{imaging.Spec{Width: 320, Height: 240}, 0, 0, false}, // size not known yet
	} {
		require.Equal(t, c.want, shrinksByHalf(c.spec, c.srcW, c.srcH), "%+v of %dx%d", c.spec, c.srcW, c.srcH)
	}
}

func TestNALs(t *testing.T) {
	avcc := []byte{1, 0x64, 0, 0x1F, 0xFF, 0xE1, 0, 4, 0x67, 0x64, 0, 0x1F, 1, 0, 4, 0x68, 0xEE, 0x3C, 0x80}
	n, err := nalLengthSize(imaging.CodecH264, avcc)
	require.NoError(t, err)
	require.Equal(t, 4, n)
	avcc[4] = 0xFD
	n, _ = nalLengthSize(imaging.CodecH264, avcc)
	require.Equal(t, 2, n)
	_, err = nalLengthSize(imaging.CodecH264, avcc[:6])
	require.Error(t, err)
	n, _ = nalLengthSize(imaging.CodecH264, []byte{0, 0, 0, 1, 0x67})
	require.Equal(t, 0, n, "Annex B codec private")
	n, _ = nalLengthSize(imaging.CodecH264, nil)
	require.Equal(t, 0, n)
	hvcc := make([]byte, 23)
	hvcc[0], hvcc[21] = 1, 0x0F
	n, _ = nalLengthSize(imaging.CodecH265, hvcc)
	require.Equal(t, 4, n)
	_, err = nalLengthSize(imaging.CodecH265, hvcc[:10])
	require.Error(t, err)

	for _, c := range []struct {
		data []byte
		n    int
		ok   bool
	}{
		{[]byte{0, 0, 0, 2, 9, 9, 0, 0, 0, 0}, 4, true},
		{[]byte{0, 2, 9, 9, 0, 1, 7}, 2, true},
		{[]byte{0, 0, 0, 3, 9, 9}, 4, false},
		{[]byte{0, 0, 0, 1, 9, 0, 0}, 4, false},
		{[]byte{}, 4, false},
		{[]byte{}, 0, false},
		{[]byte{0, 0, 1, 0x65}, 0, true},
	} {
		err := checkNALs(c.data, c.n)
		require.Equal(t, c.ok, err == nil, "%v/%d: %v", c.data, c.n, err)
	}
}
