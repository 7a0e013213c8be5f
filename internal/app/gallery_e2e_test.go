package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/objstore/s3test"
)

// The console's gallery operations on a real kvsd: kvsdListImages lists the images delivered to
// the local folder, or to S3 (versitygw), with their metadata, and kvsdGetImage answers one to a
// URL presigned with SigV4 (as a browser's <img> loads it), and nothing to an unsigned or altered
// one.
func TestGalleryOperations(t *testing.T) {
	t.Run("local folder", func(t *testing.T) { galleryOperations(t, kvstest.Start(t)) })
	t.Run("S3", func(t *testing.T) {
		s3 := s3test.Start(t)
		s3.CreateBucket(t, "images")
		galleryOperations(t, kvstest.StartImages(t, t.TempDir(), s3))
	})
}

func galleryOperations(t *testing.T, srv *kvstest.Server) {
	srv.CreateStream(t, "cam", 24)
	srv.ConfigureImages(t, "cam", kvstest.ImageConfig("s3://images/site", 1000, nil))
	srv.TagStream(t, "cam", map[string]string{"kvsd:ImageGeneration": "ALL_FRAGMENTS"})
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	require.NotEmpty(t, kvstest.Persisted(t, srv.PutMedia(t, "cam", bytes.NewReader(kvstest.TestPattern(t, 3, start)))))

	type image struct {
		Key, Uri, FragmentNumber          string
		ImageTimestamp, ProducerTimestamp float64
	}
	var listed struct {
		Images    []image
		NextToken *string
	}
	require.Eventually(t, func() bool {
		status, _, body := srv.Call(t, "kvsdListImages", map[string]any{"StreamName": "cam"})
		require.Equal(t, 200, status, string(body))
		require.NoError(t, json.Unmarshal(body, &listed))
		return len(listed.Images) >= 3
	}, 20*time.Second, 100*time.Millisecond)
	newest := listed.Images[0]
	require.Regexp(t, `^site/111122223333_cam_[0-9]{13}_[0-9a-f-]{36}\.jpg$`, newest.Key)
	require.Equal(t, "s3://images/"+newest.Key, newest.Uri)
	require.Regexp(t, `^9[0-9]{46}$`, newest.FragmentNumber)
	require.Greater(t, newest.ImageTimestamp, listed.Images[len(listed.Images)-1].ImageTimestamp, "newest first")
	require.InDelta(t, float64(start.Unix()), newest.ProducerTimestamp, 5)
	// After a time (StartTimestamp, inclusive): the second oldest and newer, not the oldest.
	oldest, second := listed.Images[len(listed.Images)-1], listed.Images[len(listed.Images)-2]
	var after struct{ Images []image }
	status, _, body := srv.Call(t, "kvsdListImages", map[string]any{"StreamName": "cam", "StartTimestamp": second.ImageTimestamp})
	require.Equal(t, 200, status, string(body))
	require.NoError(t, json.Unmarshal(body, &after))
	require.GreaterOrEqual(t, len(after.Images), len(listed.Images)-1)
	require.Equal(t, second.Key, after.Images[len(after.Images)-1].Key)
	for _, img := range after.Images {
		require.NotEqual(t, oldest.Key, img.Key)
		require.GreaterOrEqual(t, img.ImageTimestamp, second.ImageTimestamp)
	}
	status, hdr, body := srv.Call(t, "kvsdListImages", map[string]any{"StreamName": "cam", "StartTimestamp": newest.ImageTimestamp, "EndTimestamp": newest.ImageTimestamp - 1})
	require.Equal(t, 400, status, string(body))
	require.Equal(t, "InvalidArgumentException", hdr.Get("x-amzn-ErrorType"))

	get := func(key string, presign bool) *http.Response {
		q := url.Values{"StreamName": {"cam"}, "Key": {key}, "X-Amz-Expires": {"300"}}
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/kvsdGetImage?"+q.Encode(), nil)
		require.NoError(t, err)
		if presign {
			u, _, err := v4.NewSigner().PresignHTTP(context.Background(),
				aws.Credentials{AccessKeyID: kvstest.AccessKeyID, SecretAccessKey: kvstest.SecretAccessKey},
				req, "UNSIGNED-PAYLOAD", "kinesisvideo", kvstest.Region, time.Now())
			require.NoError(t, err)
			req, err = http.NewRequest(http.MethodGet, u, nil)
			require.NoError(t, err)
		}
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { res.Body.Close() })
		return res
	}
	res := get(newest.Key, true)
	require.Equal(t, 200, res.StatusCode)
	require.Equal(t, "image/jpeg", res.Header.Get("Content-Type"))
	jpeg, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(jpeg, []byte{0xff, 0xd8}), "a JPEG")

	res = get(newest.Key, false)
	require.Equal(t, 403, res.StatusCode)
	require.Equal(t, "MissingAuthenticationTokenException", res.Header.Get("x-amzn-ErrorType"))
	// A URL presigned for one key does not open another.
	u := res.Request.URL
	signed := get(newest.Key, true).Request.URL.Query()
	signed.Set("Key", listed.Images[1].Key)
	u.RawQuery = signed.Encode()
	res2, err := http.Get(u.String())
	require.NoError(t, err)
	defer res2.Body.Close()
	require.Equal(t, 403, res2.StatusCode)
	require.Equal(t, "InvalidSignatureException", res2.Header.Get("x-amzn-ErrorType"))
}
