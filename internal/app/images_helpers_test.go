package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // image.Decode of delivered JPEGs
	_ "image/png"  // and PNGs
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/app"
	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/objstore/s3test"
)

// greyMedia is H.264 Matroska of n seconds at 25 fps, 160×120, a keyframe every second (one
// fragment per second), absolute ms timecodes from start. Frame N (counted over the whole clip)
// is a flat picture of limited-range luma 16+4·(N mod 50), so an image tells which frame it
// shows (greyFrame), to within the 50-frame cycle.
func greyMedia(t *testing.T, seconds int, start time.Time) []byte {
	// Tiny frames: the live muxer cuts clusters by time alone, so 999 ms puts each cut at a
	// keyframe.
	return greyMediaCut(t, seconds, start, 999)
}

// greyMediaCut is greyMedia with clusters cut every clusterMs, wherever that falls in the GOP.
func greyMediaCut(t *testing.T, seconds int, start time.Time, clusterMs int) []byte {
	return kvstest.FFmpegMKV(t, "-f", "lavfi", "-i", "nullsrc=s=160x120:r=25,geq=lum='16+4*mod(N,50)':cb=128:cr=128",
		"-frames:v", strconv.Itoa(seconds*25), "-c:v", "libx264", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
		"-bf", "0", "-qp", "10",
		"-cluster_time_limit", strconv.Itoa(clusterMs), "-cluster_size_limit", "10000000", "-output_ts_offset", fmt.Sprintf("%d.%03d", start.UnixMilli()/1000, start.UnixMilli()%1000),
		"-f", "matroska", "-live", "1", "-")
}

// greyFrame reads the frame index (mod 50) back from a JPEG or PNG of greyMedia (full-range
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

// withTags rebuilds media with producer Tags after each fragment (tags[i] for fragment i).
func withTags(t *testing.T, media []byte, tags [][]mkv.SimpleTag) []byte {
	header, frags := kvstest.Clusters(t, media)
	out := bytes.Clone(header)
	for i, f := range frags {
		out = append(out, f...)
		if i < len(tags) && len(tags[i]) > 0 {
			out = mkv.AppendTags8(out, tags[i])
		}
	}
	return out
}

// startImages runs kvsd in-process on dataDir, delivering to s3 (nil: the local folder).
func startImages(t *testing.T, dataDir string, s3 *s3test.Server) *kvstest.Server {
	t.Helper()
	opts := kvstest.Options{DataDir: dataDir, Configure: func(c *app.Config) { c.ImageRetryMax = time.Second }}
	if s3 != nil {
		opts.Env = map[string]string{"AWS_ACCESS_KEY_ID": s3test.AccessKeyID, "AWS_SECRET_ACCESS_KEY": s3test.SecretAccessKey}
		opts.Configure = func(c *app.Config) {
			c.ImageRetryMax, c.S3Endpoint, c.S3PathStyle = time.Second, s3.Endpoint, true
		}
	}
	return kvstest.Start(t, opts)
}

// configureImages sets a stream's ImageGenerationConfiguration through the API.
func configureImages(t *testing.T, srv *kvstest.Server, name string, cfg map[string]any) {
	t.Helper()
	status, _, body := srv.Call(t, "updateImageGenerationConfiguration", map[string]any{"StreamName": name, "ImageGenerationConfiguration": cfg})
	require.Equal(t, 200, status, string(body))
}

func imageConfig(uri string, intervalMs int, extra map[string]any) map[string]any {
	c := map[string]any{"Status": "ENABLED", "ImageSelectorType": "PRODUCER_TIMESTAMP", "SamplingInterval": intervalMs, "Format": "JPEG",
		"DestinationConfig": map[string]any{"Uri": uri, "DestinationRegion": kvstest.Region}}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

func tagStream(t *testing.T, srv *kvstest.Server, name string, tags map[string]string) {
	t.Helper()
	status, _, body := srv.Call(t, "tagStream", map[string]any{"StreamName": name, "Tags": tags})
	require.Equal(t, 200, status, string(body))
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

// fragmentInfo is what ListFragments says about a stored fragment.
type fragmentInfo struct {
	Number   string
	Producer int64 // ms
	Server   int64 // ms
	Length   int64 // ms
}

// listFragments returns a stream's fragments in number order.
func listFragments(t *testing.T, srv *kvstest.Server, name string) []fragmentInfo {
	t.Helper()
	var page struct {
		Fragments []struct {
			FragmentNumber               string
			ProducerTimestamp            float64
			ServerTimestamp              float64
			FragmentLengthInMilliseconds int64
		}
	}
	status, _, body := srv.Call(t, "listFragments", map[string]any{"StreamName": name, "FragmentSelector": map[string]any{
		"FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": map[string]any{"StartTimestamp": 0, "EndTimestamp": time.Now().Unix() + 60}}})
	require.Equal(t, 200, status, string(body))
	require.NoError(t, json.Unmarshal(body, &page))
	out := make([]fragmentInfo, len(page.Fragments))
	for i, f := range page.Fragments {
		out[i] = fragmentInfo{Number: f.FragmentNumber, Producer: int64(math.Round(f.ProducerTimestamp * 1000)),
			Server: int64(math.Round(f.ServerTimestamp * 1000)), Length: f.FragmentLengthInMilliseconds}
	}
	slices.SortFunc(out, func(a, b fragmentInfo) int { return strings.Compare(a.Number, b.Number) })
	return out
}
