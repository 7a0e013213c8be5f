package app_test

import (
	"bytes"
	"image"
	"image/color"
	_ "image/jpeg" // image.Decode of delivered JPEGs
	_ "image/png"  // and PNGs
	"math"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// greyFrame reads the frame index (mod 50) back from a JPEG or PNG of kvstest.GreyMedia (full-range
// output: luma 4N·255/219; levels 4.7 apart survive compression).
func greyFrame(t *testing.T, data []byte) int {
	t.Helper()
	img, _, err := image.Decode(bytes.NewReader(data))
	require.NoError(t, err)
	b := img.Bounds()
	sum, n := 0, 0
	for y := b.Min.Y + b.Dy()/4; y < b.Max.Y-b.Dy()/4; y++ {
		for x := b.Min.X + b.Dx()/4; x < b.Max.X-b.Dx()/4; x++ {
			sum += int(color.GrayModel.Convert(img.At(x, y)).(color.Gray).Y)
			n++
		}
	}
	return int(math.Round(float64(sum) / float64(n) * 219 / 255 / 4))
}

func imageSize(t *testing.T, data []byte) (string, int, int) {
	t.Helper()
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	require.NoError(t, err)
	return format, cfg.Width, cfg.Height
}

// keyPattern is the KVS image key: [path/][prefix_]account_stream_ms_uuid.ext.
var keyPattern = regexp.MustCompile(`^(?:(.+)/)?(?:([^/_]+)_)?111122223333_([a-zA-Z0-9.-]+)_(\d{13})_([0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})\.(jpg|png)$`)

type parsedKey struct {
	path, prefix, stream string
	ms                   int64
	ext                  string
}

func parseKey(t *testing.T, key string) parsedKey {
	t.Helper()
	m := keyPattern.FindStringSubmatch(key)
	require.NotNil(t, m, "key %q does not follow the KVS pattern", key)
	ms, _ := strconv.ParseInt(m[4], 10, 64)
	return parsedKey{path: m[1], prefix: m[2], stream: m[3], ms: ms, ext: m[6]}
}
