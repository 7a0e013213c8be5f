package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/cli"
	"github.com/kvsd/kvsd/internal/diag"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/kvsapi"
	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/objstore/s3test"
)

// TestDoctorExplainsEachProblem provokes every diagnosis through the real status API.
func TestDoctorExplainsEachProblem(t *testing.T) {
	srv := kvstest.Start(t)
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	tagged := func(n int) []byte {
		tags := make([][]mkv.SimpleTag, n)
		for i := range tags {
			tags[i] = []mkv.SimpleTag{{Name: fragment.TagImageGeneration}}
		}
		return kvstest.WithTags(t, kvstest.GreyMedia(t, n, start), tags)
	}

	srv.CreateStream(t, "nocfg", 24)
	out, code := kvstest.Doctor(t, srv.URL, "nocfg")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "[IMAGE_CONFIG_MISSING]")
	require.Contains(t, out, "fix: aws kinesisvideo update-image-generation-configuration --stream-name nocfg")
	require.Contains(t, out, "--endpoint-url "+srv.URL, "fixes name the endpoint doctor talked to")
	require.Contains(t, out, "[NO_FRAGMENTS]")

	srv.CreateStream(t, "off", 24)
	srv.ConfigureImages(t, "off", kvstest.ImageConfig("s3://images", 1000, map[string]any{"Status": "DISABLED"}))
	out, _ = kvstest.Doctor(t, srv.URL, "off")
	require.Contains(t, out, "[IMAGE_CONFIG_DISABLED]")

	srv.CreateStream(t, "zero", 0)
	out, _ = kvstest.Doctor(t, srv.URL, "zero")
	require.Contains(t, out, "[RETENTION_ZERO]")
	require.Contains(t, out, "update-data-retention --stream-name zero")

	srv.CreateStream(t, "untagged", 24)
	srv.ConfigureImages(t, "untagged", kvstest.ImageConfig("s3://images", 1000, nil))
	require.Len(t, kvstest.Persisted(t, srv.PutMedia(t, "untagged", bytes.NewReader(kvstest.GreyMedia(t, 2, start)))), 2)
	out, code = kvstest.Doctor(t, srv.URL, "untagged")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "ERROR  none of the 2 fragments of the last 5m0s carries the AWS_KINESISVIDEO_IMAGE_GENERATION tag")
	require.Contains(t, out, "aws kinesisvideo tag-stream --stream-name untagged --tags kvsd:ImageGeneration=ALL_FRAGMENTS --endpoint-url "+srv.URL)

	srv.CreateStream(t, "healthy", 24)
	srv.ConfigureImages(t, "healthy", kvstest.ImageConfig("s3://images", 1000, nil))
	require.Len(t, kvstest.Persisted(t, srv.PutMedia(t, "healthy", bytes.NewReader(tagged(2)))), 2)
	require.Eventually(t, func() bool {
		out, code = kvstest.Doctor(t, srv.URL, "healthy")
		return code == 0 && strings.Contains(out, "2 images delivered since kvsd started")
	}, 10*time.Second, 100*time.Millisecond, out)
	require.Contains(t, out, "[IMAGES_OK]")
	require.Contains(t, out, "2 images delivered since kvsd started")
	require.Contains(t, out, "No problems found.")
	status, _, body := srv.Call(t, kvsapi.StatusOperation, map[string]string{"StreamName": "healthy"})
	require.Equal(t, 200, status, string(body))
	var st kvsapi.StreamStatus
	require.NoError(t, json.Unmarshal(body, &st))
	require.Equal(t, &diag.Images{Delivered: 2}, st.Images, "kvsdStreamStatus counts the images as numbers")
	t.Logf("kvsd doctor healthy:\n%s", out)

	out, code = kvstest.Doctor(t, srv.URL, "nope")
	require.Equal(t, 1, code)
	require.Contains(t, out, "ResourceNotFoundException")

	var stdout, stderr bytes.Buffer
	require.Equal(t, 2, cli.Main(context.Background(), []string{"doctor"}, &stdout, &stderr), "no stream named")
	require.Contains(t, stderr.String(), "Usage: kvsd doctor")
}

// TestDoctorReportsTheS3ErrorCode: a bucket that does not exist is reported with S3's code,
// and the images wait until it exists.
func TestDoctorReportsTheS3ErrorCode(t *testing.T) {
	s3 := s3test.Start(t)
	srv := kvstest.StartImages(t, t.TempDir(), s3)
	srv.CreateStream(t, "cam", 24)
	srv.TagStream(t, "cam", map[string]string{"kvsd:ImageGeneration": "ALL_FRAGMENTS"})
	srv.ConfigureImages(t, "cam", kvstest.ImageConfig("s3://not-yet", 1000, nil))
	require.Len(t, kvstest.Persisted(t, srv.PutMedia(t, "cam", bytes.NewReader(kvstest.GreyMedia(t, 2, time.Now().Add(-time.Minute).Truncate(time.Second))))), 2)
	var out string
	require.Eventually(t, func() bool {
		out, _ = kvstest.Doctor(t, srv.URL, "cam")
		return strings.Contains(out, "[DELIVERY_FAILING]")
	}, 10*time.Second, 100*time.Millisecond, out)
	t.Logf("kvsd doctor cam:\n%s", out)
	require.Contains(t, out, "fails with NoSuchBucket")
	require.Contains(t, out, "fix: create the bucket (aws s3 mb s3://not-yet")

	s3.CreateBucket(t, "not-yet")
	require.Len(t, s3.WaitKeys(t, "not-yet", 2, 20*time.Second), 2, "nothing was dropped while the bucket was missing")
	require.Eventually(t, func() bool {
		out, _ = kvstest.Doctor(t, srv.URL, "cam")
		return !strings.Contains(out, "DELIVERY_FAILING")
	}, 5*time.Second, 100*time.Millisecond, out)
}
