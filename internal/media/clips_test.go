//go:build cgo

package media_test

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"math"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvsd/kvsd/internal/imaging"
	"github.com/kvsd/kvsd/internal/media"
	"github.com/kvsd/kvsd/internal/mkv"
)

// Test media made by ffmpeg once per process and shared by the tests.

// clip is a Matroska file read with mkv.ReadFrames, as packets.
type clip struct {
	track   mkv.Track
	packets []imaging.Packet
}

// Grey clips encode each frame's index in its brightness: frame N is a flat
// picture of limited-range luma 16+2N (neutral chroma), 25 fps, a keyframe
// every 25 frames, no B-frames, quantiser 10 so levels survive exactly.
const (
	greyFrames = 100
	greyGOP    = 25
	greyStep   = 40 * time.Millisecond
)

func greySource(size string) string {
	return fmt.Sprintf("nullsrc=s=%s:r=25,geq=lum='16+2*N':cb=128:cr=128", size)
}

// encoders maps a codec to the ffmpeg arguments for the grey clips.
var encoders = map[string][]string{
	imaging.CodecH264: {"-c:v", "libx264", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0", "-bf", "0", "-qp", "10"},
	imaging.CodecH265: {"-c:v", "libx265", "-qp", "10", "-x265-params", "keyint=25:min-keyint=25:bframes=0:scenecut=0:log-level=error"},
}

var (
	clipMu    sync.Mutex
	clipCache = map[string]*clipResult{}
)

type clipResult struct {
	once sync.Once
	c    *clip
	err  error
}

// loadClip runs ffmpeg with args (input and encoder; the Matroska muxer to
// stdout is added) once per process and returns the parsed result. Tests
// skip when ffmpeg is missing.
func loadClip(tb testing.TB, args ...string) *clip {
	tb.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		tb.Skip("ffmpeg not installed (make setup installs it)")
	}
	key := strings.Join(args, "\x00")
	clipMu.Lock()
	r := clipCache[key]
	if r == nil {
		r = &clipResult{}
		clipCache[key] = r
	}
	clipMu.Unlock()
	r.once.Do(func() { r.c, r.err = makeClip(args) })
	if r.err != nil {
		tb.Fatal(r.err)
	}
	return r.c
}

func makeClip(args []string) (*clip, error) {
	full := append([]string{"-hide_banner", "-loglevel", "error", "-nostdin"}, args...)
	full = append(full, "-f", "matroska", "-")
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("ffmpeg", full...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("ffmpeg %s: %v\n%s", strings.Join(full, " "), err, stderr.String())
	}
	hdr, frames, err := mkv.ReadFrames(stdout.Bytes(), mkv.Limits{})
	if err != nil {
		return nil, err
	}
	if len(hdr.Tracks) != 1 {
		return nil, fmt.Errorf("%d tracks", len(hdr.Tracks))
	}
	c := &clip{track: hdr.Tracks[0]}
	for _, f := range frames {
		c.packets = append(c.packets, imaging.Packet{
			Data: f.Data,
			PTS:  time.Duration(f.Timecode) * time.Duration(hdr.TimecodeScale),
			Key:  f.Keyframe,
		})
	}
	return c, nil
}

// greyClip returns the 100-frame grey clip of a codec at 320×240.
func greyClip(tb testing.TB, codec string) *clip {
	tb.Helper()
	args := append([]string{"-f", "lavfi", "-i", greySource("320x240"), "-frames:v", fmt.Sprint(greyFrames)}, encoders[codec]...)
	c := loadClip(tb, args...)
	checkGreyClip(tb, c)
	return c
}

// checkGreyClip makes sure ffmpeg made what the tests assume.
func checkGreyClip(tb testing.TB, c *clip) {
	tb.Helper()
	if len(c.packets) != greyFrames {
		tb.Fatalf("%d packets, want %d", len(c.packets), greyFrames)
	}
	for i, p := range c.packets {
		if p.PTS != time.Duration(i)*greyStep || p.Key != (i%greyGOP == 0) {
			tb.Fatalf("packet %d: PTS %v key %v; want %v %v", i, p.PTS, p.Key, time.Duration(i)*greyStep, i%greyGOP == 0)
		}
	}
}

// newDecoder opens a decoder for c and closes it at the end of the test.
func (c *clip) newDecoder(tb testing.TB) *media.Decoder {
	tb.Helper()
	d, err := media.NewDecoder(c.track.CodecID, c.track.CodecPrivate)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(d.Close)
	return d
}

// decodeImage decodes JPEG or PNG bytes with Go's decoders.
func decodeImage(b []byte, f imaging.Format) (image.Image, error) {
	if f == imaging.PNG {
		return png.Decode(bytes.NewReader(b))
	}
	return jpeg.Decode(bytes.NewReader(b))
}

// meanLuma is the mean full-range luma of an image: the Y plane of a JPEG's
// YCbCr, the Rec. 601 luma of an RGB image.
func meanLuma(img image.Image) float64 {
	var sum float64
	b := img.Bounds()
	if y, ok := img.(*image.YCbCr); ok {
		for row := b.Min.Y; row < b.Max.Y; row++ {
			for col := b.Min.X; col < b.Max.X; col++ {
				sum += float64(y.Y[y.YOffset(col, row)])
			}
		}
	} else {
		for row := b.Min.Y; row < b.Max.Y; row++ {
			for col := b.Min.X; col < b.Max.X; col++ {
				r, g, bl, _ := img.At(col, row).RGBA()
				sum += (0.299*float64(r) + 0.587*float64(g) + 0.114*float64(bl)) / 257
			}
		}
	}
	return sum / float64(b.Dx()*b.Dy())
}

// greyIndex maps an image of the grey clip back to its frame index. Frame
// N has limited-range luma 16+2N, so full range 2N·255/219: 2.33 levels
// apart. Output pixels are whole numbers and JPEG adds its own error, so a
// correct image is within about ±1 level (±0.45 index); further off (e.g.
// output left in limited range) fails.
func greyIndex(img image.Image) (int, error) {
	v := meanLuma(img) * 219 / 255 / 2
	n := math.Round(v)
	if math.Abs(v-n) > 0.45 {
		return -1, fmt.Errorf("mean luma %.2f is index %.2f, not a whole frame index (limited range output?)", meanLuma(img), v)
	}
	return int(n), nil
}
