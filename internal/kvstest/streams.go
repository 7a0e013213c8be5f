package kvstest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/app"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/objstore/s3test"
)

// StartImages runs kvsd in-process on dataDir with image retries capped at a second,
// delivering to s3 (nil: the local folder).
func StartImages(t testing.TB, dataDir string, s3 *s3test.Server) *Server {
	t.Helper()
	opts := Options{DataDir: dataDir, Configure: func(c *app.Config) { c.ImageRetryMax = time.Second }}
	if s3 != nil {
		opts.Env = map[string]string{"AWS_ACCESS_KEY_ID": s3test.AccessKeyID, "AWS_SECRET_ACCESS_KEY": s3test.SecretAccessKey}
		opts.Configure = func(c *app.Config) {
			c.ImageRetryMax, c.S3Endpoint, c.S3PathStyle = time.Second, s3.Endpoint, true
		}
	}
	return Start(t, opts)
}

// CreateStream creates an H.264 stream keeping retention hours of data.
func (s *Server) CreateStream(t testing.TB, name string, retention int32) {
	t.Helper()
	_, err := s.KinesisVideo().CreateStream(context.Background(), &kinesisvideo.CreateStreamInput{
		StreamName: aws.String(name), DataRetentionInHours: aws.Int32(retention), MediaType: aws.String("video/h264")})
	require.NoError(t, err)
}

// ConfigureImages sets a stream's ImageGenerationConfiguration through the API.
func (s *Server) ConfigureImages(t testing.TB, name string, cfg map[string]any) {
	t.Helper()
	status, _, body := s.Call(t, "updateImageGenerationConfiguration", map[string]any{"StreamName": name, "ImageGenerationConfiguration": cfg})
	require.Equal(t, 200, status, string(body))
}

// ImageConfig is an enabled ImageGenerationConfiguration: JPEG by producer time every
// intervalMs to uri, with extra's keys added or replaced.
func ImageConfig(uri string, intervalMs int, extra map[string]any) map[string]any {
	c := map[string]any{"Status": "ENABLED", "ImageSelectorType": "PRODUCER_TIMESTAMP", "SamplingInterval": intervalMs, "Format": "JPEG",
		"DestinationConfig": map[string]any{"Uri": uri, "DestinationRegion": Region}}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// TagStream adds tags to a stream through the API.
func (s *Server) TagStream(t testing.TB, name string, tags map[string]string) {
	t.Helper()
	status, _, body := s.Call(t, "tagStream", map[string]any{"StreamName": name, "Tags": tags})
	require.Equal(t, 200, status, string(body))
}

// FragmentInfo is what ListFragments says about a stored fragment.
type FragmentInfo struct {
	Number   string
	Producer int64 // ms
	Server   int64 // ms
	Length   int64 // ms
}

// ListFragments returns a stream's fragments in number order.
func (s *Server) ListFragments(t testing.TB, name string) []FragmentInfo {
	t.Helper()
	var page struct {
		Fragments []struct {
			FragmentNumber               string
			ProducerTimestamp            float64
			ServerTimestamp              float64
			FragmentLengthInMilliseconds int64
		}
	}
	status, _, body := s.Call(t, "listFragments", map[string]any{"StreamName": name, "FragmentSelector": map[string]any{
		"FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": map[string]any{"StartTimestamp": 0, "EndTimestamp": time.Now().Unix() + 60}}})
	require.Equal(t, 200, status, string(body))
	require.NoError(t, json.Unmarshal(body, &page))
	out := make([]FragmentInfo, len(page.Fragments))
	for i, f := range page.Fragments {
		out[i] = FragmentInfo{Number: f.FragmentNumber, Producer: int64(math.Round(f.ProducerTimestamp * 1000)),
			Server: int64(math.Round(f.ServerTimestamp * 1000)), Length: f.FragmentLengthInMilliseconds}
	}
	slices.SortFunc(out, func(a, b FragmentInfo) int { return strings.Compare(a.Number, b.Number) })
	return out
}

// StoredMedia reads every fragment of a stream back and returns its frames and the producer
// tags that follow each fragment's frames.
func (s *Server) StoredMedia(t testing.TB, name string) ([]mkv.Frame, [][]mkv.SimpleTag) {
	t.Helper()
	var (
		frames []mkv.Frame
		tags   [][]mkv.SimpleTag
	)
	for _, f := range s.ListFragments(t, name) {
		status, _, media := s.Call(t, "getMediaForFragmentList", map[string]any{"StreamName": name, "Fragments": []string{f.Number}})
		require.Equal(t, 200, status, string(media))
		_, fr, err := mkv.ReadFrames(media, mkv.Limits{})
		require.NoError(t, err)
		frames = append(frames, fr...)
		var ft []mkv.SimpleTag
		r := mkv.NewReader(bytes.NewReader(media), mkv.Limits{})
		for {
			ev, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
			if ev.Kind == mkv.KindTags {
				ft = append(ft, ev.Tags...)
			}
		}
		tags = append(tags, ft)
	}
	return frames, tags
}
