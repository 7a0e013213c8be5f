//go:build cgo

package media_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/imaging"
	"github.com/kvsd/kvsd/internal/media"
)

var codecs = []string{imaging.CodecH264, imaging.CodecH265}

func ms(v int) time.Duration { return time.Duration(v) * time.Millisecond }

// onScreen is the grey clip's frame on screen at t, or -1 before the first.
func onScreen(t time.Duration) int {
	if t < 0 {
		return -1
	}
	return min(int(t/greyStep), greyFrames-1)
}

// checkImages checks every result against the frame on screen at its time.
func checkImages(t *testing.T, res []imaging.Result, at []time.Duration, spec imaging.Spec, w, h int) {
	t.Helper()
	require.Len(t, res, len(at))
	for i, r := range res {
		want := onScreen(at[i])
		require.Equal(t, at[i], r.At)
		if want < 0 {
			require.ErrorIs(t, r.Err, imaging.ErrNoFrame, "sample %v", at[i])
			require.Nil(t, r.Image)
			continue
		}
		require.NoError(t, r.Err, "sample %v", at[i])
		require.Equal(t, time.Duration(want)*greyStep, r.FramePTS, "sample %v", at[i])
		require.Equal(t, [2]int{w, h}, [2]int{r.Width, r.Height}, "sample %v", at[i])
		img, err := decodeImage(r.Image, spec.Format)
		require.NoError(t, err, "sample %v", at[i])
		require.Equal(t, [2]int{w, h}, [2]int{img.Bounds().Dx(), img.Bounds().Dy()}, "sample %v", at[i])
		got, err := greyIndex(img)
		require.NoError(t, err, "sample %v", at[i])
		require.Equal(t, want, got, "sample %v shows the wrong frame", at[i])
	}
}

// TestFrameSelection checks that every image is the frame on screen at its
// sample time, on real H.264 and H.265 video whose frames encode their index.
func TestFrameSelection(t *testing.T) {
	at := []time.Duration{
		-ms(1),        // before the first frame: ErrNoFrame
		0,             // first keyframe
		ms(1), ms(39), // between frames 0 and 1: frame 0
		ms(40),   // exactly frame 1
		ms(280),  // mid-GOP, frame 7
		ms(500),  // between frames 12 and 13
		ms(999),  // frame 24, last of the first GOP
		ms(1000), // keyframe 25
		ms(1460), // frame 36 (second GOP)
		ms(1479), // frame 36 again: two samples, one frame
		ms(2000), // keyframe 50
		ms(2020), // between keyframe 50 and 51
		ms(3960), // last frame
		ms(5000), // after the last frame: still the last frame
	}
	for _, codec := range codecs {
		c := greyClip(t, codec)
		for _, format := range []imaging.Format{imaging.JPEG, imaging.PNG} {
			t.Run(fmt.Sprintf("%s/%v", codec, format), func(t *testing.T) {
				d := c.newDecoder(t)
				spec := imaging.Spec{Format: format}
				res := d.Render(c.packets, at, spec)
				checkImages(t, res, at, spec, 320, 240)
				// Samples sharing a frame get equal images in separate slices.
				require.Equal(t, res[9].Image, res[10].Image)
				require.NotSame(t, &res[9].Image[0], &res[10].Image[0])
			})
		}
	}
}

// TestFullRange checks the limited→full range conversion: frame 0 is video
// black (luma 16) and must come out as black (0), not dark grey.
func TestFullRange(t *testing.T) {
	c := greyClip(t, imaging.CodecH264)
	d := c.newDecoder(t)
	for _, spec := range []imaging.Spec{{Format: imaging.JPEG, Quality: 95}, {Format: imaging.PNG}, {Format: imaging.JPEG, Width: 160}} {
		res := d.Render(c.packets, []time.Duration{0, ms(40 * 99)}, spec)
		for i, wantLuma := range []float64{0, 214 - 16} {
			require.NoError(t, res[i].Err)
			img, err := decodeImage(res[i].Image, spec.Format)
			require.NoError(t, err)
			require.InDelta(t, wantLuma*255/219, meanLuma(img), 1.0, "%+v frame %d", spec, i)
		}
	}
}

// TestSourceFormats: a full-range source (yuvj420p, as some cameras send)
// must not be expanded a second time, and 10-bit H.265 (Main 10) comes out
// as ordinary 8-bit images.
func TestSourceFormats(t *testing.T) {
	clips := map[string]*clip{
		"full range H.264": loadClip(t, "-f", "lavfi", "-i",
			"nullsrc=s=320x240:r=25,format=yuvj420p,geq=lum='2*N*255/219':cb=128:cr=128", "-frames:v", "100",
			"-c:v", "libx264", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0", "-bf", "0", "-qp", "10", "-color_range", "pc"),
		"10-bit H.265": loadClip(t, append([]string{"-f", "lavfi", "-i",
			"nullsrc=s=320x240:r=25,format=yuv420p10le,geq=lum='4*(16+2*N)':cb=512:cr=512", "-frames:v", "100"},
			encoders[imaging.CodecH265]...)...),
	}
	at := []time.Duration{0, ms(40 * 13), ms(40 * 50), ms(40 * 99)}
	for name, c := range clips {
		checkGreyClip(t, c)
		t.Run(name+"/JPEG", func(t *testing.T) {
			spec := imaging.Spec{}
			checkImages(t, c.newDecoder(t).Render(c.packets, at, spec), at, spec, 320, 240)
		})
		t.Run(name+"/PNG", func(t *testing.T) {
			spec := imaging.Spec{Format: imaging.PNG, Width: 160}
			checkImages(t, c.newDecoder(t).Render(c.packets, at, spec), at, spec, 160, 120)
		})
	}
}

// TestResize checks the three size rules, JPEG and PNG, and that the image
// still shows the right frame.
func TestResize(t *testing.T) {
	cases := []struct {
		w, h         int
		wantW, wantH int
	}{
		{0, 0, 320, 240},     // source size
		{160, 120, 160, 120}, // exact
		{100, 200, 100, 200}, // exact, aspect not kept
		{99, 77, 99, 77},     // odd sizes are fine for 4:2:0 JPEG
		{200, 0, 200, 150},   // width only
		{161, 0, 161, 121},   // width only: 240·161/320 = 120.75 → 121
		{0, 100, 133, 100},   // height only: 320·100/240 = 133.3 → 133
		{0, 480, 640, 480},   // upscaling
	}
	c := greyClip(t, imaging.CodecH264)
	d := c.newDecoder(t)
	at := []time.Duration{0, ms(520), ms(1000), ms(1520)}
	for _, format := range []imaging.Format{imaging.JPEG, imaging.PNG} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%v/%dx%d", format, tc.w, tc.h), func(t *testing.T) {
				spec := imaging.Spec{Format: format, Width: tc.w, Height: tc.h}
				checkImages(t, d.Render(c.packets, at, spec), at, spec, tc.wantW, tc.wantH)
			})
		}
		// Extreme reductions are valid sizes, but swscale's filters lose
		// precision at such ratios (a few levels, as with the ffmpeg CLI),
		// so only the size is checked.
		for _, tc := range []struct{ w, h, wantW, wantH int }{{1, 0, 1, 1}, {0, 1, 1, 1}, {3, 2, 3, 2}} {
			spec := imaging.Spec{Format: format, Width: tc.w, Height: tc.h}
			r := d.Render(c.packets, at[:1], spec)[0]
			require.NoError(t, r.Err)
			img, err := decodeImage(r.Image, format)
			require.NoError(t, err)
			require.Equal(t, [2]int{tc.wantW, tc.wantH}, [2]int{img.Bounds().Dx(), img.Bounds().Dy()})
		}
	}
}

// texturedClip is 2 s of testsrc2 at 320×240: detail for the JPEG
// quantiser to work on.
func texturedClip(tb testing.TB) *clip {
	return loadClip(tb, "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "2",
		"-c:v", "libx264", "-g", "25", "-bf", "0", "-preset", "veryfast")
}

// TestQuality checks that JPEG size grows with quality, and that quality 0
// means 80.
func TestQuality(t *testing.T) {
	c := texturedClip(t)
	d := c.newDecoder(t)
	at := []time.Duration{ms(1200)}
	size := func(q int) int {
		r := d.Render(c.packets, at, imaging.Spec{Format: imaging.JPEG, Quality: q})[0]
		require.NoError(t, r.Err)
		_, err := decodeImage(r.Image, imaging.JPEG)
		require.NoError(t, err)
		return len(r.Image)
	}
	prev := 0
	for _, q := range []int{1, 10, 30, 50, 70, 80, 90, 100} {
		n := size(q)
		require.Greater(t, n, prev, "quality %d", q)
		prev = n
	}
	require.Equal(t, size(80), size(0), "quality 0 is 80")
}

// TestSelectiveDecoding proves from the decoder's own count that only
// needed packets are decoded.
func TestSelectiveDecoding(t *testing.T) {
	for _, codec := range codecs {
		c := greyClip(t, codec)
		t.Run(codec+"/keyframes", func(t *testing.T) {
			d := c.newDecoder(t)
			at := []time.Duration{0, ms(1000), ms(2000), ms(3000)}
			checkImages(t, d.Render(c.packets, at, imaging.Spec{}), at, imaging.Spec{}, 320, 240)
			st := d.Stats()
			require.Equal(t, 4, st.Decoded, "keyframe samples must not decode P-frames")
			require.Equal(t, greyFrames-4, st.Skipped)
			require.Positive(t, st.Decode)
			require.Positive(t, st.Scale)
			require.Positive(t, st.Encode)
		})
		t.Run(codec+"/one mid-GOP sample per GOP", func(t *testing.T) {
			d := c.newDecoder(t)
			offsets := []int{7, 0, 24, 12} // frame within each GOP
			var at []time.Duration
			want := 0
			for g, o := range offsets {
				at = append(at, time.Duration(g*greyGOP+o)*greyStep+ms(5))
				want += o + 1 // keyframe to that frame
			}
			checkImages(t, d.Render(c.packets, at, imaging.Spec{}), at, imaging.Spec{}, 320, 240)
			require.Equal(t, want, d.Stats().Decoded)
			require.Equal(t, greyFrames-want, d.Stats().Skipped)
		})
		t.Run(codec+"/several samples in one GOP", func(t *testing.T) {
			d := c.newDecoder(t)
			at := []time.Duration{ms(40 * 27), ms(40 * 30), ms(40*30 + 10), ms(40 * 41)}
			checkImages(t, d.Render(c.packets, at, imaging.Spec{}), at, imaging.Spec{}, 320, 240)
			require.Equal(t, 41-25+1, d.Stats().Decoded, "one pass from keyframe 25 to frame 41")
		})
	}
}

// TestFragmentAfterFragment renders GOP-sized fragments one call at a time
// on one decoder, in order and out of order, with a second codec's decoder
// in between (a codec private change means a new decoder).
func TestFragmentAfterFragment(t *testing.T) {
	h264, h265 := greyClip(t, imaging.CodecH264), greyClip(t, imaging.CodecH265)
	d := h264.newDecoder(t)
	for _, g := range []int{0, 1, 2, 3, 1, 3, 0} {
		frag := h264.packets[g*greyGOP : (g+1)*greyGOP]
		start := frag[0].PTS
		at := []time.Duration{start + ms(40*13), start + ms(40*3), start}
		checkImages(t, d.Render(frag, at, imaging.Spec{Width: 160}), at, imaging.Spec{Width: 160}, 160, 120)

		// Between fragments, another stream's decoder with other codec
		// private data.
		d2 := h265.newDecoder(t)
		at2 := []time.Duration{start + ms(40*20)}
		checkImages(t, d2.Render(h265.packets[g*greyGOP:(g+1)*greyGOP], at2, imaging.Spec{Format: imaging.PNG}), at2, imaging.Spec{Format: imaging.PNG}, 320, 240)
	}
	// The producer restarts with another resolution: new codec private
	// data, so the stream gets a new decoder.
	small := loadClip(t, append([]string{"-f", "lavfi", "-i", greySource("160x120"), "-frames:v", fmt.Sprint(greyFrames)},
		encoders[imaging.CodecH264]...)...)
	require.NotEqual(t, h264.track.CodecPrivate, small.track.CodecPrivate)
	d.Close()
	d = small.newDecoder(t)
	at := []time.Duration{ms(40 * 30), ms(40 * 99)}
	checkImages(t, d.Render(small.packets[25:], at, imaging.Spec{}), at, imaging.Spec{}, 160, 120)
	d = h264.newDecoder(t)

	// Two fragments in a row in one call, samples in both.
	at = []time.Duration{ms(40 * 49), ms(40 * 50), ms(40 * 74)}
	checkImages(t, d.Render(h264.packets[25:75], at, imaging.Spec{}), at, imaging.Spec{}, 320, 240)
	// A fragment missing in the middle (a gap): the later fragment still
	// decodes from its own keyframe.
	gap := append(append([]imaging.Packet{}, h264.packets[0:25]...), h264.packets[75:]...)
	at = []time.Duration{ms(40 * 10), ms(40 * 60), ms(40 * 80)}
	res := d.Render(gap, at, imaging.Spec{})
	require.NoError(t, res[0].Err)
	require.Equal(t, 24*greyStep, res[1].FramePTS, "the gap shows the last frame before it")
	require.Equal(t, 80*greyStep, res[2].FramePTS)
	for _, i := range []int{0, 2} {
		img, err := decodeImage(res[i].Image, imaging.JPEG)
		require.NoError(t, err)
		n, err := greyIndex(img)
		require.NoError(t, err)
		require.Equal(t, onScreen(at[i]), n)
	}
}

// TestAnnexB feeds Annex B packets with in-band parameter sets and no codec
// private data, as some producers send them.
func TestAnnexB(t *testing.T) {
	c := greyClip(t, imaging.CodecH264)
	packets := annexB(t, c)
	d, err := media.NewDecoder(imaging.CodecH264, nil)
	require.NoError(t, err)
	defer d.Close()
	at := []time.Duration{0, ms(40 * 30), ms(40 * 77)}
	checkImages(t, d.Render(packets, at, imaging.Spec{}), at, imaging.Spec{}, 320, 240)
}

// annexB rewrites an H.264 clip's packets as Annex B access units with the
// parameter sets of its avcC record before each keyframe.
func annexB(t *testing.T, c *clip) []imaging.Packet {
	t.Helper()
	cp := c.track.CodecPrivate
	require.Equal(t, byte(1), cp[0])
	// avcC: 5 bytes, SPS count, {len16, SPS}..., PPS count, {len16, PPS}...
	var params []byte
	b := cp[5:]
	for range 2 {
		n := int(b[0] & 0x1F)
		b = b[1:]
		for range n {
			l := int(b[0])<<8 | int(b[1])
			params = append(append(params, 0, 0, 0, 1), b[2:2+l]...)
			b = b[2+l:]
		}
		if len(b) > 0 { // the PPS count is a full byte
			b = append([]byte{b[0] & 0x1F}, b[1:]...)
		}
	}
	lenSize := int(cp[4]&3) + 1
	var packets []imaging.Packet
	for _, p := range c.packets {
		var out []byte
		if p.Key {
			out = append(out, params...)
		}
		for b := p.Data; len(b) > 0; {
			n := 0
			for _, x := range b[:lenSize] {
				n = n<<8 | int(x)
			}
			out = append(append(out, 0, 0, 0, 1), b[lenSize:lenSize+n]...)
			b = b[lenSize+n:]
		}
		packets = append(packets, imaging.Packet{Data: out, PTS: p.PTS, Key: p.Key})
	}
	return packets
}

// TestBrokenInput: damaged packets give Result.Err, never a crash, and the
// decoder keeps working afterwards.
func TestBrokenInput(t *testing.T) {
	c := greyClip(t, imaging.CodecH264)
	d := c.newDecoder(t)
	good := func() {
		t.Helper()
		at := []time.Duration{ms(40 * 27), ms(40 * 50)}
		checkImages(t, d.Render(c.packets, at, imaging.Spec{}), at, imaging.Spec{}, 320, 240)
	}
	replace := func(i int, data []byte) []imaging.Packet {
		p := append([]imaging.Packet{}, c.packets...)
		p[i].Data = data
		return p
	}
	key := c.packets[25].Data
	cases := map[string][]imaging.Packet{
		"truncated keyframe":         replace(25, key[:len(key)/2]),
		"empty keyframe":             replace(25, []byte{}),
		"garbage keyframe":           replace(25, bytes.Repeat([]byte{0xA5}, 500)),
		"garbage with valid framing": replace(25, append([]byte{0, 0, 1, 0xF4, 0x65}, bytes.Repeat([]byte{0xFF}, 499)...)),
		"truncated P-frame":          replace(26, c.packets[26].Data[:len(c.packets[26].Data)-1]),
	}
	for name, packets := range cases {
		t.Run(name, func(t *testing.T) {
			at := []time.Duration{ms(40 * 10), ms(40 * 25), ms(40 * 26), ms(40 * 27)}
			res := d.Render(packets, at, imaging.Spec{})
			require.NoError(t, res[0].Err, "the GOP before is unharmed")
			for _, r := range res[1:] {
				if name == "truncated P-frame" && r.At == ms(40*25) {
					require.NoError(t, r.Err, "the keyframe before the damage is fine")
					continue
				}
				require.Error(t, r.Err, "sample %v", r.At)
				require.Nil(t, r.Image)
				t.Logf("sample %v: %v", r.At, r.Err)
			}
			good()
		})
	}
	t.Run("no keyframe", func(t *testing.T) {
		res := d.Render(c.packets[1:25], []time.Duration{ms(40 * 5)}, imaging.Spec{})
		require.ErrorContains(t, res[0].Err, "no keyframe")
		require.NotErrorIs(t, res[0].Err, imaging.ErrNoFrame)
		good()
	})
	t.Run("random damage", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		for range 40 {
			packets := append([]imaging.Packet{}, c.packets...)
			for range 1 + rng.IntN(5) {
				i := rng.IntN(len(packets))
				b := bytes.Clone(packets[i].Data)
				for range 1 + rng.IntN(8) {
					b[rng.IntN(len(b))] = byte(rng.Uint32())
				}
				if rng.IntN(3) == 0 {
					b = b[:rng.IntN(len(b))]
				}
				packets[i].Data = b
			}
			at := []time.Duration{ms(rng.IntN(4000)), ms(rng.IntN(4000)), ms(rng.IntN(4000))}
			for _, r := range d.Render(packets, at, imaging.Spec{Format: imaging.Format(rng.IntN(2))}) {
				if r.Err == nil {
					require.NotEmpty(t, r.Image)
				}
			}
		}
		good()
	})
}

func TestNewDecoderErrors(t *testing.T) {
	_, err := media.NewDecoder("V_VP9", nil)
	require.ErrorIs(t, err, imaging.ErrUnsupportedCodec)
	require.ErrorContains(t, err, `"V_VP9"`)
	_, err = media.NewDecoder(imaging.CodecH264, []byte{1, 2, 3})
	require.Error(t, err)
	require.False(t, errors.Is(err, imaging.ErrUnsupportedCodec))
}

func TestSpecErrors(t *testing.T) {
	c := greyClip(t, imaging.CodecH264)
	d := c.newDecoder(t)
	for _, spec := range []imaging.Spec{
		{Format: imaging.JPEG, Quality: 101}, {Format: imaging.JPEG, Quality: -1}, {Format: 7},
		{Width: -1}, {Height: imaging.MaxDimension + 1},
	} {
		res := d.Render(c.packets, []time.Duration{0, ms(100)}, spec)
		for _, r := range res {
			require.Error(t, r.Err, "%+v", spec)
		}
	}
	require.Zero(t, d.Stats().Decoded)
}

func TestClose(t *testing.T) {
	c := greyClip(t, imaging.CodecH264)
	d, err := media.NewDecoder(c.track.CodecID, c.track.CodecPrivate)
	require.NoError(t, err)
	d.Close()
	d.Close()
	res := d.Render(c.packets, []time.Duration{0}, imaging.Spec{})
	require.ErrorContains(t, res[0].Err, "closed")
}

// TestUnorderedSamples: samples need not be sorted, and results keep their
// order.
func TestUnorderedSamples(t *testing.T) {
	c := greyClip(t, imaging.CodecH265)
	d := c.newDecoder(t)
	at := []time.Duration{ms(3000), ms(40), -ms(5), ms(1999), ms(40)}
	checkImages(t, d.Render(c.packets, at, imaging.Spec{}), at, imaging.Spec{}, 320, 240)
}

// TestDeterministic: the same sample gives the same bytes whatever the
// decoder rendered before (odd sizes once picked up stale buffer padding).
func TestDeterministic(t *testing.T) {
	c := texturedClip(t)
	at := []time.Duration{ms(1000), ms(1300)}
	for _, spec := range []imaging.Spec{{Width: 99, Height: 77}, {Width: 161}, {Format: imaging.PNG, Width: 99, Height: 77}, {}} {
		d1 := c.newDecoder(t)
		want := d1.Render(c.packets, at, spec)
		d2 := c.newDecoder(t)
		for _, other := range []imaging.Spec{{Format: imaging.PNG}, {Width: 640, Height: 480}, {Width: 98, Height: 76}} {
			d2.Render(c.packets, at, other)
		}
		got := d2.Render(c.packets, at, spec)
		for i := range at {
			require.NoError(t, want[i].Err)
			require.Equal(t, want[i].Image, got[i].Image, "%+v sample %v", spec, at[i])
		}
	}
}

// TestStatsWhileRendering: metrics may read Stats while Render runs (the
// race detector checks it).
func TestStatsWhileRendering(t *testing.T) {
	c := greyClip(t, imaging.CodecH264)
	d := c.newDecoder(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			_ = d.Stats()
		}
	}()
	for range 5 {
		d.Render(c.packets, []time.Duration{0, ms(1500)}, imaging.Spec{})
	}
	<-done
	require.Equal(t, 5*(1+13), d.Stats().Decoded)
}

// TestParallelDecoders: decoders of different streams run at the same time
// (that is how kvsd uses several cores).
func TestParallelDecoders(t *testing.T) {
	clips := []*clip{greyClip(t, imaging.CodecH264), greyClip(t, imaging.CodecH265)}
	at := []time.Duration{ms(40 * 3), ms(1000), ms(40 * 60), ms(3900)}
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			c := clips[g%2]
			d, err := media.NewDecoder(c.track.CodecID, c.track.CodecPrivate)
			if err != nil {
				errs <- err
				return
			}
			defer d.Close()
			spec := imaging.Spec{Format: imaging.Format(g / 2)}
			for range 5 {
				for i, r := range d.Render(c.packets, at, spec) {
					if r.Err != nil {
						errs <- r.Err
						return
					}
					img, err := decodeImage(r.Image, spec.Format)
					if err != nil {
						errs <- err
						return
					}
					if n, err := greyIndex(img); err != nil || n != onScreen(at[i]) {
						errs <- fmt.Errorf("goroutine %d sample %v: index %d (%v), want %d", g, at[i], n, err, onScreen(at[i]))
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		require.NoError(t, <-errs)
	}
}

// TestSkipsUnneededBFrames: with B-frames (CABAC, 3 B-frames, no B-pyramid, so every B-frame
// is a non-reference picture), samples on the P-frames decode only the keyframe and P-frames
// up to them, and still show the right frames; a sample on a B-frame decodes it.
func TestSkipsUnneededBFrames(t *testing.T) {
	args := []string{"-f", "lavfi", "-i", greySource("320x240"), "-frames:v", fmt.Sprint(greyFrames),
		"-c:v", "libx264", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0", "-qp", "10",
		"-bf", "3", "-b_strategy", "0", "-x264-params", "b-pyramid=none:b-adapt=0:open-gop=0"}
	c := loadClip(t, args...)
	d := c.newDecoder(t)
	// Decode order I0 P4 B1 B2 B3 P8 B5 B6 B7 …: the P-frames of the first GOP.
	var at []time.Duration
	for f := 4; f < greyGOP; f += 4 {
		at = append(at, time.Duration(f)*greyStep)
	}
	checkImages(t, d.Render(c.packets, at, imaging.Spec{}), at, imaging.Spec{}, 320, 240)
	st := d.Stats()
	require.Equal(t, 1+len(at), st.Decoded, "the keyframe and the P-frames; no B-frame")
	require.Equal(t, greyFrames-st.Decoded, st.Skipped)

	d = c.newDecoder(t)
	at = []time.Duration{6 * greyStep} // B6, after P8 in decode order
	checkImages(t, d.Render(c.packets, at, imaging.Spec{}), at, imaging.Spec{}, 320, 240)
	require.Equal(t, 4, d.Stats().Decoded, "I0 P4 P8 B6")
}
