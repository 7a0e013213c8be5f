package app_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/app"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/objstore/s3test"
)

// runDoctor runs `kvsd doctor` as a user would, with kvsd's credentials in the AWS environment.
func runDoctor(t *testing.T, url, stream string) (string, int) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("AWS_ACCESS_KEY_ID", kvstest.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", kvstest.SecretAccessKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", kvstest.Region)
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
	var out, errs bytes.Buffer
	code := app.Main(context.Background(), []string{"doctor", stream, "--endpoint-url", url}, &out, &errs)
	return out.String() + errs.String(), code
}

// TestDoctorExplainsEachProblem provokes every diagnosis through the real status API.
func TestDoctorExplainsEachProblem(t *testing.T) {
	srv := kvstest.Start(t)
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	tagged := func(n int) []byte {
		tags := make([][]mkv.SimpleTag, n)
		for i := range tags {
			tags[i] = []mkv.SimpleTag{{Name: fragment.TagImageGeneration}}
		}
		return withTags(t, greyMedia(t, n, start), tags)
	}

	createStream(t, srv, "nocfg", 24)
	out, code := runDoctor(t, srv.URL, "nocfg")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "[IMAGE_CONFIG_MISSING]")
	require.Contains(t, out, "fix: aws kinesisvideo update-image-generation-configuration --stream-name nocfg")
	require.Contains(t, out, "--endpoint-url "+srv.URL, "fixes name the endpoint doctor talked to")
	require.Contains(t, out, "[NO_FRAGMENTS]")

	createStream(t, srv, "off", 24)
	configureImages(t, srv, "off", imageConfig("s3://images", 1000, map[string]any{"Status": "DISABLED"}))
	out, _ = runDoctor(t, srv.URL, "off")
	require.Contains(t, out, "[IMAGE_CONFIG_DISABLED]")

	createStream(t, srv, "zero", 0)
	out, _ = runDoctor(t, srv.URL, "zero")
	require.Contains(t, out, "[RETENTION_ZERO]")
	require.Contains(t, out, "update-data-retention --stream-name zero")

	createStream(t, srv, "untagged", 24)
	configureImages(t, srv, "untagged", imageConfig("s3://images", 1000, nil))
	require.Len(t, persisted(t, srv.PutMedia(t, "untagged", bytes.NewReader(greyMedia(t, 2, start)))), 2)
	out, code = runDoctor(t, srv.URL, "untagged")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "ERROR  none of the 2 fragments of the last 5m0s carries the AWS_KINESISVIDEO_IMAGE_GENERATION tag")
	require.Contains(t, out, "aws kinesisvideo tag-stream --stream-name untagged --tags kvsd:ImageGeneration=ALL_FRAGMENTS --endpoint-url "+srv.URL)

	createStream(t, srv, "healthy", 24)
	configureImages(t, srv, "healthy", imageConfig("s3://images", 1000, nil))
	require.Len(t, persisted(t, srv.PutMedia(t, "healthy", bytes.NewReader(tagged(2)))), 2)
	require.Eventually(t, func() bool {
		out, code = runDoctor(t, srv.URL, "healthy")
		return code == 0 && strings.Contains(out, "2 images delivered since kvsd started")
	}, 10*time.Second, 100*time.Millisecond, out)
	require.Contains(t, out, "[IMAGES_OK]")
	require.Contains(t, out, "2 images delivered since kvsd started")
	require.Contains(t, out, "No problems found.")
	t.Logf("kvsd doctor healthy:\n%s", out)

	out, code = runDoctor(t, srv.URL, "nope")
	require.Equal(t, 1, code)
	require.Contains(t, out, "ResourceNotFoundException")

	var stdout, stderr bytes.Buffer
	require.Equal(t, 2, app.Main(context.Background(), []string{"doctor"}, &stdout, &stderr), "no stream named")
	require.Contains(t, stderr.String(), "Usage: kvsd doctor")
}

// TestDoctorReportsTheS3ErrorCode: a bucket that does not exist is reported with S3's code,
// and the images wait until it exists.
func TestDoctorReportsTheS3ErrorCode(t *testing.T) {
	s3 := s3test.Start(t)
	srv := startImages(t, t.TempDir(), s3)
	createStream(t, srv, "cam", 24)
	tagStream(t, srv, "cam", map[string]string{"kvsd:ImageGeneration": "ALL_FRAGMENTS"})
	configureImages(t, srv, "cam", imageConfig("s3://not-yet", 1000, nil))
	require.Len(t, persisted(t, srv.PutMedia(t, "cam", bytes.NewReader(greyMedia(t, 2, time.Now().Add(-time.Minute).Truncate(time.Second))))), 2)
	var out string
	require.Eventually(t, func() bool {
		out, _ = runDoctor(t, srv.URL, "cam")
		return strings.Contains(out, "[DELIVERY_FAILING]")
	}, 10*time.Second, 100*time.Millisecond, out)
	t.Logf("kvsd doctor cam:\n%s", out)
	require.Contains(t, out, "fails with NoSuchBucket")
	require.Contains(t, out, "fix: create the bucket (aws s3 mb s3://not-yet")

	s3.CreateBucket(t, "not-yet")
	require.Len(t, s3.WaitKeys(t, "not-yet", 2, 20*time.Second), 2, "nothing was dropped while the bucket was missing")
	require.Eventually(t, func() bool {
		out, _ = runDoctor(t, srv.URL, "cam")
		return !strings.Contains(out, "DELIVERY_FAILING")
	}, 5*time.Second, 100*time.Millisecond, out)
}
