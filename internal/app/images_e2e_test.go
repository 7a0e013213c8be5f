package app_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	kvtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	amtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/objstore"
	"github.com/kvsd/kvsd/internal/objstore/s3test"
)

// TestImagesDeliveredToS3 runs kvsd against a real S3 server (versitygw, SigV4 enforced) and
// checks every delivered object: key, content type, metadata, count per fragment and the frame
// each image shows. Stream "tagged" uses producer tags (AWS's rule), the producer timeline and
// JPEG scaled to 80 px wide; stream "all" has no producer tags but the stream tag
// kvsd:ImageGeneration=ALL_FRAGMENTS, the server timeline and PNG.
func TestImagesDeliveredToS3(t *testing.T) {
	s3 := s3test.Start(t)
	s3.CreateBucket(t, "images")
	srv := kvstest.StartImages(t, t.TempDir(), s3)
	// On a multiple of 2 s, so that the 400-ms samples fall at 0, 400 and 800 ms of each 1-s
	// fragment (samples lie on the multiples of the interval on the stream's clock).
	start := time.Now().Add(-time.Hour).Truncate(2 * time.Second)

	srv.CreateStream(t, "tagged", 24)
	srv.ConfigureImages(t, "tagged", kvstest.ImageConfig("s3://images/cams/tagged", 400, map[string]any{
		"FormatConfig": map[string]string{"JPEGQuality": "90"}, "WidthPixels": 80}))
	srv.CreateStream(t, "all", 24)
	srv.TagStream(t, "all", map[string]string{"kvsd:ImageGeneration": "ALL_FRAGMENTS"})
	srv.ConfigureImages(t, "all", kvstest.ImageConfig("s3://images", 500, map[string]any{"ImageSelectorType": "SERVER_TIMESTAMP", "Format": "PNG"}))

	media := kvstest.GreyMedia(t, 3, start)
	imageTag := mkv.SimpleTag{Name: fragment.TagImageGeneration}
	tagged := kvstest.WithTags(t, media, [][]mkv.SimpleTag{
		{imageTag, {Name: fragment.TagImagePrefix, Value: "front"}, {Name: "zone", Value: "A"}, {Name: "Camera", Value: "7"}},
		nil, // an untagged fragment gets no images on AWS, nor here
		{imageTag},
	})
	require.Len(t, kvstest.Persisted(t, srv.PutMedia(t, "tagged", bytes.NewReader(tagged))), 3)
	require.Len(t, kvstest.Persisted(t, srv.PutMedia(t, "all", bytes.NewReader(media))), 3)

	keys := s3.WaitKeys(t, "images", 12, 30*time.Second)
	require.Len(t, keys, 12, "tagged: 2 fragments × 3 samples (0, 400, 800 ms); all: 3 fragments × 2 samples (the multiples of 500 ms in each 1-s fragment)")
	frags := map[string][]kvstest.FragmentInfo{"tagged": srv.ListFragments(t, "tagged"), "all": srv.ListFragments(t, "all")}
	perFragment := map[string]int{}
	for _, key := range keys {
		k := parseKey(t, key)
		obj := s3.Get(t, "images", key)
		idx := -1
		for i, f := range frags[k.stream] {
			if f.Number == obj.Metadata["aws_kinesisvideo_fragment_number"] {
				idx = i
			}
		}
		require.GreaterOrEqual(t, idx, 0, "%s: metadata %v names a stored fragment", key, obj.Metadata)
		f := frags[k.stream][idx]
		perFragment[f.Number]++
		require.Equal(t, fmt.Sprint(f.Producer), obj.Metadata["aws_kinesisvideo_producer_timestamp"], key)
		require.Equal(t, fmt.Sprint(f.Server), obj.Metadata["aws_kinesisvideo_server_timestamp"], key)
		var offset int64
		switch k.stream {
		case "tagged":
			require.Equal(t, "cams/tagged", k.path)
			require.Equal(t, "jpg", k.ext)
			require.Equal(t, "image/jpeg", obj.ContentType)
			offset = k.ms - f.Producer
			if idx == 0 {
				require.Equal(t, "front", k.prefix, key)
				require.Equal(t, "A", obj.Metadata["zone"], key)
				require.Equal(t, "7", obj.Metadata["camera"], key)
			} else {
				require.Equal(t, 2, idx, "the untagged fragment has no images")
				require.Empty(t, k.prefix, key)
				require.NotContains(t, obj.Metadata, "zone")
			}
			format, w, h := imageSize(t, obj.Body)
			require.Equal(t, []any{"jpeg", 80, 60}, []any{format, w, h}, "width 80 keeps the 4:3 aspect")
		case "all":
			require.Empty(t, k.path)
			require.Equal(t, "png", k.ext)
			require.Equal(t, "image/png", obj.ContentType)
			offset = k.ms - f.Server // the server timeline
			format, w, h := imageSize(t, obj.Body)
			require.Equal(t, []any{"png", 160, 120}, []any{format, w, h})
		}
		interval := map[string]int64{"tagged": 400, "all": 500}[k.stream]
		require.Zero(t, k.ms%interval, "%s: on the multiples of the interval on the stream's clock", key)
		require.True(t, offset >= 0 && offset < 1000, "%s: offset %d within the fragment", key, offset)
		want := 25*idx + int(offset/40) // the frame on screen at the sample time
		require.Equal(t, want%50, greyFrame(t, obj.Body), "%s: offset %d ms in fragment %d", key, offset, idx)
	}
	require.Len(t, perFragment, 5)
	for n, c := range perFragment {
		require.Contains(t, []int{2, 3}, c, n)
	}
}

// TestImagesLocalFolderAndGetImages: with no --s3-endpoint, images land in
// <data-dir>/buckets/<bucket>/<key> with <key>.metadata.json beside them. GetImages (signed
// HTTP and the aws CLI) renders any stored fragment, tagged or not.
func TestImagesLocalFolderAndGetImages(t *testing.T) {
	dataDir := t.TempDir()
	srv := kvstest.StartImages(t, dataDir, nil)
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	srv.CreateStream(t, "cam", 24)
	srv.TagStream(t, "cam", map[string]string{"kvsd:ImageGeneration": "ALL_FRAGMENTS"})
	srv.ConfigureImages(t, "cam", kvstest.ImageConfig("s3://local-images/p", 1000, nil))
	require.Len(t, kvstest.Persisted(t, srv.PutMedia(t, "cam", bytes.NewReader(kvstest.GreyMedia(t, 3, start)))), 3)

	dir := filepath.Join(dataDir, "buckets", "local-images", "p")
	var names []string
	require.Eventually(t, func() bool {
		entries, _ := os.ReadDir(dir)
		names = names[:0]
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), ".") {
				names = append(names, e.Name())
			}
		}
		return len(names) == 6
	}, 30*time.Second, 50*time.Millisecond, "3 images and 3 metadata files")
	frags := srv.ListFragments(t, "cam")
	local := &objstore.Dir{Root: filepath.Join(dataDir, "buckets")}
	for _, n := range names {
		if strings.HasSuffix(n, objstore.MetadataSuffix) {
			continue
		}
		k := parseKey(t, "p/"+n)
		i := int((k.ms - start.UnixMilli()) / 1000)
		m, err := local.ReadMetadata("local-images", "p/"+n)
		require.NoError(t, err)
		require.Equal(t, "image/jpeg", m.ContentType)
		require.Equal(t, frags[i].Number, m.Metadata["aws_kinesisvideo_fragment_number"])
		body, err := os.ReadFile(filepath.Join(dir, n))
		require.NoError(t, err)
		require.Equal(t, 25*i%50, greyFrame(t, body))
	}

	// GetImages over signed HTTP: every 200 ms across a gap before the media and the end.
	status, _, body := srv.Call(t, "getImages", map[string]any{"StreamName": "cam", "ImageSelectorType": "PRODUCER_TIMESTAMP",
		"StartTimestamp": float64(start.UnixMilli()-400) / 1000, "EndTimestamp": float64(start.UnixMilli()+3400) / 1000,
		"SamplingInterval": 200, "Format": "PNG", "HeightPixels": 60, "MaxResults": 100})
	require.Equal(t, 200, status, string(body))
	var out struct {
		Images []struct {
			TimeStamp    float64
			Error        string
			ImageContent string
		}
		NextToken *string
	}
	require.NoError(t, json.Unmarshal(body, &out))
	require.Nil(t, out.NextToken)
	require.Len(t, out.Images, 20)
	for i, img := range out.Images {
		offset := i*200 - 400
		require.InDelta(t, float64(start.UnixMilli()+int64(offset))/1000, img.TimeStamp, 0.0005)
		if offset < 0 || offset >= 3000 {
			require.Equal(t, "NO_MEDIA", img.Error, "entry %d (offset %d ms)", i, offset)
			continue
		}
		require.Empty(t, img.Error, "entry %d", i)
		data, err := base64.StdEncoding.DecodeString(img.ImageContent)
		require.NoError(t, err)
		format, w, h := imageSize(t, data)
		require.Equal(t, []any{"png", 80, 60}, []any{format, w, h})
		require.Equal(t, offset/40%50, greyFrame(t, data), "entry %d", i)
	}

	// The aws CLI, at the endpoint GetDataEndpoint names for GET_IMAGES.
	status, _, body = srv.Call(t, "getDataEndpoint", map[string]any{"StreamName": "cam", "APIName": "GET_IMAGES"})
	require.Equal(t, 200, status, string(body))
	var ep struct{ DataEndpoint string }
	require.NoError(t, json.Unmarshal(body, &ep))
	data := kvstest.Attach(ep.DataEndpoint)
	cli, err := data.AWSCLI(t, t.TempDir(), "", "kinesis-video-archived-media", "get-images", "--stream-name", "cam",
		"--image-selector-type", "PRODUCER_TIMESTAMP", "--start-timestamp", fmt.Sprint(start.Unix()), "--end-timestamp", fmt.Sprint(start.Unix()+6),
		"--sampling-interval", "3000", "--format", "JPEG", "--format-config", "JPEGQuality=95", "--width-pixels", "64", "--height-pixels", "64")
	require.NoError(t, err)
	var cliOut struct {
		Images []struct {
			Error        string
			ImageContent string
		}
	}
	require.NoError(t, json.Unmarshal([]byte(cli), &cliOut))
	require.Len(t, cliOut.Images, 3, "0, 3 and 6 s")
	data0, err := base64.StdEncoding.DecodeString(cliOut.Images[0].ImageContent)
	require.NoError(t, err)
	format, w, h := imageSize(t, data0)
	require.Equal(t, []any{"jpeg", 64, 64}, []any{format, w, h}, "both sizes given: stretched")
	require.Equal(t, 0, greyFrame(t, data0))
	require.Empty(t, cliOut.Images[0].Error)
	require.Equal(t, "NO_MEDIA", cliOut.Images[2].Error)

	// The Go SDK at the same endpoint, paging by MaxResults: the same 20 entries as one call.
	am := srv.ArchivedMedia(t, "cam", kvtypes.APINameGetImages)
	pages := kinesisvideoarchivedmedia.NewGetImagesPaginator(am, &kinesisvideoarchivedmedia.GetImagesInput{
		StreamName: aws.String("cam"), ImageSelectorType: amtypes.ImageSelectorTypeProducerTimestamp,
		StartTimestamp: aws.Time(start.Add(-400 * time.Millisecond)), EndTimestamp: aws.Time(start.Add(3400 * time.Millisecond)),
		SamplingInterval: aws.Int32(200), Format: amtypes.FormatPng, HeightPixels: aws.Int32(60), MaxResults: aws.Int64(6)})
	var sdkImages []amtypes.Image
	for pages.HasMorePages() {
		page, err := pages.NextPage(context.Background())
		require.NoError(t, err)
		require.LessOrEqual(t, len(page.Images), 6)
		sdkImages = append(sdkImages, page.Images...)
	}
	require.Len(t, sdkImages, len(out.Images))
	for i, img := range sdkImages {
		require.InDelta(t, out.Images[i].TimeStamp, float64(img.TimeStamp.UnixMilli())/1000, 0.0005)
		require.Equal(t, out.Images[i].Error, string(img.Error), "entry %d", i)
		if img.Error == "" {
			data, err := base64.StdEncoding.DecodeString(aws.ToString(img.ImageContent))
			require.NoError(t, err)
			require.Equal(t, (i*200-400)/40%50, greyFrame(t, data), "entry %d", i)
		}
	}

	// Validation errors have the AWS shape.
	for _, c := range []struct {
		in   map[string]any
		code string
	}{
		{map[string]any{"StreamName": "cam", "ImageSelectorType": "PRODUCER_TIMESTAMP", "StartTimestamp": 0, "EndTimestamp": 301, "Format": "JPEG"}, "InvalidArgumentException"},
		{map[string]any{"StreamName": "cam", "ImageSelectorType": "PRODUCER_TIMESTAMP", "StartTimestamp": 0, "EndTimestamp": 1, "SamplingInterval": 100, "Format": "JPEG"}, "InvalidArgumentException"},
		{map[string]any{"StreamName": "cam", "ImageSelectorType": "WALL_CLOCK", "StartTimestamp": 0, "EndTimestamp": 1, "Format": "JPEG"}, "InvalidArgumentException"},
		{map[string]any{"StreamName": "cam", "ImageSelectorType": "PRODUCER_TIMESTAMP", "StartTimestamp": 0, "EndTimestamp": 1, "Format": "JPEG", "MaxResults": 101}, "InvalidArgumentException"},
		{map[string]any{"StreamName": "cam", "ImageSelectorType": "PRODUCER_TIMESTAMP", "StartTimestamp": 0, "EndTimestamp": 1, "Format": "JPEG", "NextToken": "bm90IG91cnM="}, "InvalidArgumentException"},
		{map[string]any{"StreamName": "nope", "ImageSelectorType": "PRODUCER_TIMESTAMP", "StartTimestamp": 0, "EndTimestamp": 1, "Format": "JPEG"}, "ResourceNotFoundException"},
	} {
		status, hdr, body := srv.Call(t, "getImages", c.in)
		require.Equal(t, c.code, hdr.Get("x-amzn-ErrorType"), string(body))
		require.Less(t, status, 500)
	}
	srv.CreateStream(t, "live-only", 0)
	status, hdr, body := srv.Call(t, "getImages", map[string]any{"StreamName": "live-only", "ImageSelectorType": "SERVER_TIMESTAMP",
		"StartTimestamp": 0, "EndTimestamp": 1, "Format": "JPEG"})
	require.Equal(t, 400, status)
	require.Equal(t, "NoDataRetentionException", hdr.Get("x-amzn-ErrorType"), string(body))
}

// TestImagesFromClustersCutMidGOP: a producer whose clusters do not start at keyframes (cut by
// time) still gets exact images: the decoder is fed the previous fragment's last GOP first.
func TestImagesFromClustersCutMidGOP(t *testing.T) {
	dataDir := t.TempDir()
	srv := kvstest.StartImages(t, dataDir, nil)
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	srv.CreateStream(t, "cut", 24)
	srv.TagStream(t, "cut", map[string]string{"kvsd:ImageGeneration": "ALL_FRAGMENTS"})
	srv.ConfigureImages(t, "cut", kvstest.ImageConfig("s3://cut", 200, nil))
	n := len(kvstest.Persisted(t, srv.PutMedia(t, "cut", bytes.NewReader(kvstest.GreyMediaCut(t, 3, start, 500)))))
	frags := srv.ListFragments(t, "cut")
	require.Len(t, frags, n)
	// Samples at the multiples of 200 ms on the producer clock, across the fragments.
	want := 0
	for _, f := range frags {
		for at := (f.Producer + 199) / 200 * 200; at < f.Producer+f.Length; at += 200 {
			want++
		}
	}
	dir := filepath.Join(dataDir, "buckets", "cut")
	jpegs := func() []string {
		var names []string
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".jpg") {
				names = append(names, e.Name())
			}
		}
		return names
	}
	assert.Eventually(t, func() bool { return len(jpegs()) >= want }, 30*time.Second, 50*time.Millisecond)
	images := jpegs()
	if len(images) != want {
		_ = filepath.Walk(dataDir, func(p string, _ os.FileInfo, _ error) error { t.Log(p); return nil })
	}
	require.Len(t, images, want, "%d fragments %v", n, frags)
	for _, name := range images {
		k := parseKey(t, name)
		body, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		require.Equal(t, int((k.ms-start.UnixMilli())/40)%50, greyFrame(t, body), name)
	}
}
