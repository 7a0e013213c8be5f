//go:build cgo

package media_test

import (
	"bytes"
	"fmt"
	"image"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/imaging"
	"github.com/kvsd/kvsd/internal/media"
)

// TestUnfilteredKeyframeQuality: a keyframe decoded alone for an image at
// most half its size skips the deblocking filter. The image must not
// visibly differ from the exactly decoded one: PSNR ≥ 40 dB on real
// camera-like content (testsrc2 through libx264 at the benchmark's
// 2 Mbit/s, and libx265), compared losslessly (PNG). Everything else, the
// first picture of a decoder included, must come out byte for byte as the
// exact decode.
func TestUnfilteredKeyframeQuality(t *testing.T) {
	clips := map[string]*clip{
		"H.264 1080p 2 Mbit/s": loadClip(t, "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30", "-t", "2",
			"-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-bf", "0",
			"-b:v", "2M", "-maxrate", "2M", "-bufsize", "4M", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0"),
		"H.265 720p 1 Mbit/s": loadClip(t, "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30", "-t", "2",
			"-c:v", "libx265", "-preset", "ultrafast", "-b:v", "1M",
			"-x265-params", "keyint=30:min-keyint=30:bframes=0:scenecut=0:log-level=error"),
	}
	keys := []time.Duration{0, time.Second} // the two keyframes
	for name, c := range clips {
		t.Run(name, func(t *testing.T) {
			for _, spec := range []imaging.Spec{
				{Format: imaging.PNG, Width: 320, Height: 240},
				{Format: imaging.PNG, Width: 640},                            // a third of 1080p, half of 720p
				{Format: imaging.PNG, Height: c.height(t) / 2},               // exactly half: the limit
				{Format: imaging.JPEG, Quality: 80, Width: 320, Height: 240}, // the benchmark's images
			} {
				exact, fast := c.newDecoder(t), c.newDecoder(t)
				exactSpec := spec
				exactSpec.Exact = true
				want := exact.Render(c.packets, keys, exactSpec)
				// A decoder's first picture is decoded exactly: its size is
				// not known before.
				first := fast.Render(c.packets, keys[:1], spec)[0]
				require.NoError(t, first.Err)
				require.Equal(t, want[0].Image, first.Image, "%+v: the first picture", spec)
				require.Zero(t, fast.Stats().Unfiltered)
				got := fast.Render(c.packets, keys, spec)
				require.Equal(t, len(keys), fast.Stats().Unfiltered, "%+v: every keyframe decoded alone skips the filter", spec)
				require.Zero(t, exact.Stats().Unfiltered)
				for i := range keys {
					require.NoError(t, want[i].Err)
					require.NoError(t, got[i].Err)
					require.False(t, bytes.Equal(want[i].Image, got[i].Image), "%+v: the filter made no difference; the test proves nothing", spec)
					p := psnr(t, want[i].Image, got[i].Image, spec.Format)
					t.Logf("%+v keyframe %v: PSNR %.1f dB", spec, keys[i], p)
					require.GreaterOrEqual(t, p, 40.0, "%+v keyframe %v", spec, keys[i])
				}
			}

			// Exact decoding everywhere else: images less than halved, the
			// source size, and samples that need P-frames.
			for _, tc := range []struct {
				spec imaging.Spec
				at   []time.Duration
			}{
				{imaging.Spec{Format: imaging.PNG, Width: c.width(t)/2 + 1}, keys},
				{imaging.Spec{Format: imaging.PNG, Width: 640, Height: c.height(t)/2 + 1}, keys},
				{imaging.Spec{Format: imaging.JPEG}, keys},
				{imaging.Spec{Format: imaging.PNG, Width: 320, Height: 240}, []time.Duration{ms(500), ms(1500)}},
			} {
				exact, fast := c.newDecoder(t), c.newDecoder(t)
				exactSpec := tc.spec
				exactSpec.Exact = true
				want, got := exact.Render(c.packets, tc.at, exactSpec), fast.Render(c.packets, tc.at, tc.spec)
				for i := range tc.at {
					require.NoError(t, got[i].Err)
					require.Equal(t, want[i].Image, got[i].Image, "%+v sample %v", tc.spec, tc.at[i])
				}
				require.Zero(t, fast.Stats().Unfiltered, "%+v", tc.spec)
				require.Equal(t, exact.Stats().Decoded, fast.Stats().Decoded, "%+v: nothing decoded twice", tc.spec)
			}
		})
	}
}

// width and height are the clip's picture size, from a decoded image.
func (c *clip) width(t *testing.T) int  { w, _ := c.size(t); return w }
func (c *clip) height(t *testing.T) int { _, h := c.size(t); return h }

func (c *clip) size(t *testing.T) (int, int) {
	t.Helper()
	d := c.newDecoder(t)
	r := d.Render(c.packets[:1], []time.Duration{0}, imaging.Spec{Format: imaging.JPEG})[0]
	require.NoError(t, r.Err)
	return r.Width, r.Height
}

// psnr is the peak signal-to-noise ratio of image b against image a over
// their R, G and B samples (8-bit, peak 255).
func psnr(t *testing.T, a, b []byte, f imaging.Format) float64 {
	t.Helper()
	ia, err := decodeImage(a, f)
	require.NoError(t, err)
	ib, err := decodeImage(b, f)
	require.NoError(t, err)
	require.Equal(t, ia.Bounds(), ib.Bounds())
	var sum float64
	n := 0
	r := ia.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			sum += sqDiff(ia, ib, x, y)
			n += 3
		}
	}
	if sum == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(255*255/(sum/float64(n)))
}

func sqDiff(a, b image.Image, x, y int) float64 {
	r1, g1, b1, _ := a.At(x, y).RGBA()
	r2, g2, b2, _ := b.At(x, y).RGBA()
	var s float64
	for _, d := range [3]float64{float64(r1>>8) - float64(r2>>8), float64(g1>>8) - float64(g2>>8), float64(b1>>8) - float64(b2>>8)} {
		s += d * d
	}
	return s
}

// TestUnfilteredSizeChange: the decision is made from the last picture's
// size; when in-band parameter sets change the size so that the image is no
// longer shrunk by half, the keyframe is decoded again, exactly.
func TestUnfilteredSizeChange(t *testing.T) {
	big := greyClip(t, imaging.CodecH264)
	small := loadClip(t, append([]string{"-f", "lavfi", "-i", greySource("160x120"), "-frames:v", fmt.Sprint(greyFrames)},
		encoders[imaging.CodecH264]...)...)
	// One Annex B stream: the 320×240 clip's first two GOPs, then the
	// 160×120 clip's last two, each keyframe with its parameter sets.
	packets := append(annexB(t, big)[:2*greyGOP], annexB(t, small)[2*greyGOP:]...)
	d, err := media.NewDecoder(imaging.CodecH264, nil)
	require.NoError(t, err)
	defer d.Close()
	spec := imaging.Spec{Width: 160}
	// 320×240 → 160×120 qualifies (once the first picture told the size).
	at := []time.Duration{0, ms(1000)}
	checkImages(t, d.Render(packets, at, spec), at, spec, 160, 120)
	require.Equal(t, 1, d.Stats().Unfiltered)
	// 160×120 → 160×120 does not: the unfiltered guess is redone.
	before := d.Stats()
	at = []time.Duration{ms(2000), ms(3000)}
	checkImages(t, d.Render(packets, at, spec), at, spec, 160, 120)
	st := d.Stats()
	require.Equal(t, before.Unfiltered+1, st.Unfiltered, "the first keyframe of the new size was tried without the filter")
	require.Equal(t, before.Decoded+3, st.Decoded, "and decoded again; the next was known not to qualify")
}
