package kvsapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/imagegen"
	"github.com/kvsd/kvsd/internal/kvsapi"
	"github.com/kvsd/kvsd/internal/stream"
)

// fakeGallery is fakeImages with delivered images to list and open.
type fakeGallery struct {
	fakeImages
	gotList imagegen.ListDeliveredInput
	images  []imagegen.DeliveredImage
	bodies  map[string]string
}

func (f *fakeGallery) ListDelivered(_ context.Context, st *stream.Stream, in imagegen.ListDeliveredInput) ([]imagegen.DeliveredImage, string, error) {
	f.gotList, f.stream = in, st.Name
	return f.images, "bmV4dA", nil
}

func (f *fakeGallery) OpenDelivered(_ context.Context, st *stream.Stream, key string) (io.ReadCloser, string, error) {
	b, ok := f.bodies[key]
	if !ok {
		return nil, "", fmt.Errorf("%w: %s", imagegen.ErrNoImage, key)
	}
	return io.NopCloser(strings.NewReader(b)), "text/html", nil
}

func TestGalleryWire(t *testing.T) {
	g := &fakeGallery{images: []imagegen.DeliveredImage{{Key: "cam/111122223333_cam_1700000001000_u.jpg",
		URI: "s3://images/cam/111122223333_cam_1700000001000_u.jpg", Time: time.UnixMilli(1700000001000), Size: 5,
		ContentType: "image/jpeg", ProducerTime: time.UnixMilli(1700000001000), ServerTime: time.UnixMilli(1700000001042),
		FragmentNumber: "9123", Tags: map[string]string{"zone": "A"}}},
		bodies: map[string]string{"k.jpg": "<script>alert(1)</script>", "k.png": "png"}}
	srv, svc := apiServer(t, kvsapi.Config{Images: g})
	retention := 24
	_, err := svc.Create(context.Background(), stream.CreateInput{Name: "cam", RetentionHours: &retention})
	require.NoError(t, err)

	status, _, out := post(t, srv, kvsapi.ListImagesOperation, `{"StreamName":"cam","StartTimestamp":1700000000,"EndTimestamp":1700000002.5,"MaxResults":10,"NextToken":"abc"}`)
	require.Equal(t, 200, status, out)
	require.Equal(t, imagegen.ListDeliveredInput{From: time.UnixMilli(1700000000000).UTC(), To: time.UnixMilli(1700000002500).UTC(),
		MaxResults: 10, NextToken: "abc"}, g.gotList)
	require.Equal(t, map[string]any{"NextToken": "bmV4dA", "Images": []any{map[string]any{
		"Key": "cam/111122223333_cam_1700000001000_u.jpg", "Uri": "s3://images/cam/111122223333_cam_1700000001000_u.jpg",
		"ImageTimestamp": 1700000001.0, "Size": 5.0, "ContentType": "image/jpeg", "ProducerTimestamp": 1700000001.0,
		"ServerTimestamp": 1700000001.042, "FragmentNumber": "9123", "Tags": map[string]any{"zone": "A"}}}}, out)

	// After a time alone (the console's After) and before a time alone (its Before).
	status, _, out = post(t, srv, kvsapi.ListImagesOperation, `{"StreamName":"cam","StartTimestamp":1700000001.25}`)
	require.Equal(t, 200, status, out)
	require.Equal(t, imagegen.ListDeliveredInput{From: time.UnixMilli(1700000001250).UTC()}, g.gotList)
	status, _, out = post(t, srv, kvsapi.ListImagesOperation, `{"StreamName":"cam","EndTimestamp":1700000001.25}`)
	require.Equal(t, 200, status, out)
	require.Equal(t, imagegen.ListDeliveredInput{To: time.UnixMilli(1700000001250).UTC()}, g.gotList)

	status, code, _ := post(t, srv, kvsapi.ListImagesOperation, `{"StreamName":"nope"}`)
	require.Equal(t, 404, status)
	require.Equal(t, "ResourceNotFoundException", code)

	get := func(query string) *http.Response {
		res, err := http.Get(srv.URL + "/" + kvsapi.GetImageOperation + "?" + query)
		require.NoError(t, err)
		t.Cleanup(func() { res.Body.Close() })
		return res
	}
	// The type follows the key, not the metadata, and nothing in it can run.
	res := get("StreamName=cam&Key=k.jpg")
	require.Equal(t, 200, res.StatusCode)
	require.Equal(t, "image/jpeg", res.Header.Get("Content-Type"))
	require.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"))
	require.Equal(t, "default-src 'none'", res.Header.Get("Content-Security-Policy"))
	b, _ := io.ReadAll(res.Body)
	require.Equal(t, "<script>alert(1)</script>", string(b))
	require.Equal(t, "image/png", get("StreamName=cam&Key=k.png").Header.Get("Content-Type"))
	res = get("StreamName=cam&Key=other.jpg")
	require.Equal(t, 404, res.StatusCode)
	require.Equal(t, "ResourceNotFoundException", res.Header.Get("x-amzn-ErrorType"))
	require.Equal(t, 404, get("StreamName=nope&Key=k.jpg").StatusCode)
}
