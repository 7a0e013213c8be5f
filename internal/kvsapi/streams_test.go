package kvsapi_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/kvstest"
)

// requireAPIError asserts the AWS error code and HTTP status a client sees.
func requireAPIError(t *testing.T, err error, code string, status int) {
	t.Helper()
	require.Error(t, err)
	var ae smithy.APIError
	require.True(t, errors.As(err, &ae), "not an API error: %v", err)
	require.Equal(t, code, ae.ErrorCode(), "message: %s", ae.ErrorMessage())
	require.NotEmpty(t, ae.ErrorMessage())
	var re *awshttp.ResponseError
	require.True(t, errors.As(err, &re))
	require.Equal(t, status, re.HTTPStatusCode())
	require.NotEmpty(t, re.ServiceRequestID(), "x-amzn-RequestId missing")
}

func createStream(t *testing.T, c *kinesisvideo.Client, name string, retention int32) string {
	t.Helper()
	out, err := c.CreateStream(context.Background(), &kinesisvideo.CreateStreamInput{
		StreamName: aws.String(name), DataRetentionInHours: aws.Int32(retention), MediaType: aws.String("video/h264")})
	require.NoError(t, err)
	return *out.StreamARN
}

func TestCreateAndDescribeStream(t *testing.T) {
	srv := kvstest.Start(t)
	c := srv.KinesisVideo()
	ctx := context.Background()
	before := time.Now().Truncate(time.Millisecond)

	out, err := c.CreateStream(ctx, &kinesisvideo.CreateStreamInput{
		StreamName: aws.String("cam-1"), DeviceName: aws.String("Kinesis_Video_Device"),
		MediaType: aws.String("video/h264"), DataRetentionInHours: aws.Int32(24),
		Tags: map[string]string{"site": "lab"},
	})
	require.NoError(t, err)
	require.Regexp(t, `^arn:aws:kinesisvideo:us-east-1:111122223333:stream/cam-1/\d{13}$`, *out.StreamARN)

	d, err := c.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("cam-1")})
	require.NoError(t, err)
	info := d.StreamInfo
	require.Equal(t, "cam-1", *info.StreamName)
	require.Equal(t, *out.StreamARN, *info.StreamARN)
	require.Equal(t, types.StatusActive, info.Status)
	require.Equal(t, "video/h264", *info.MediaType)
	require.Equal(t, "Kinesis_Video_Device", *info.DeviceName)
	require.Equal(t, int32(24), *info.DataRetentionInHours)
	require.Equal(t, "arn:aws:kms:us-east-1:111122223333:alias/aws/kinesisvideo", *info.KmsKeyId)
	require.Regexp(t, `^[a-zA-Z0-9]{20}$`, *info.Version)
	require.False(t, info.CreationTime.Before(before))
	require.True(t, strings.HasSuffix(*info.StreamARN, fmt.Sprint(info.CreationTime.UnixMilli())), "ARN ends in creation ms")

	byARN, err := c.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamARN: out.StreamARN})
	require.NoError(t, err)
	require.Equal(t, *info.Version, *byARN.StreamInfo.Version)

	_, err = c.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("cam-1")})
	requireAPIError(t, err, "ResourceInUseException", 400)

	_, err = c.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("nope")})
	requireAPIError(t, err, "ResourceNotFoundException", 404)
}

func TestCreateStreamValidation(t *testing.T) {
	c := kvstest.Start(t).KinesisVideo()
	tooMany := map[string]string{}
	for i := range 51 {
		tooMany[fmt.Sprintf("k%d", i)] = "v"
	}
	cases := []struct {
		name string
		in   kinesisvideo.CreateStreamInput
		code string
	}{
		{"bad name chars", kinesisvideo.CreateStreamInput{StreamName: aws.String("cam/1")}, "InvalidArgumentException"},
		{"name too long", kinesisvideo.CreateStreamInput{StreamName: aws.String(strings.Repeat("a", 257))}, "InvalidArgumentException"},
		{"bad device", kinesisvideo.CreateStreamInput{StreamName: aws.String("s1"), DeviceName: aws.String("dev ice")}, "InvalidArgumentException"},
		{"bad media type", kinesisvideo.CreateStreamInput{StreamName: aws.String("s2"), MediaType: aws.String("h264")}, "InvalidArgumentException"},
		{"negative retention", kinesisvideo.CreateStreamInput{StreamName: aws.String("s3"), DataRetentionInHours: aws.Int32(-1)}, "InvalidArgumentException"},
		{"retention over 10 years", kinesisvideo.CreateStreamInput{StreamName: aws.String("s4"), DataRetentionInHours: aws.Int32(87601)}, "InvalidArgumentException"},
		{"51 tags", kinesisvideo.CreateStreamInput{StreamName: aws.String("s5"), Tags: tooMany}, "TagsPerResourceExceededLimitException"},
		{"bad tag key", kinesisvideo.CreateStreamInput{StreamName: aws.String("s6"), Tags: map[string]string{"a*b": "v"}}, "InvalidArgumentException"},
		{"bad storage tier", kinesisvideo.CreateStreamInput{StreamName: aws.String("s7"),
			StreamStorageConfiguration: &types.StreamStorageConfiguration{DefaultStorageTier: "COLD"}}, "InvalidArgumentException"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CreateStream(context.Background(), &tc.in)
			requireAPIError(t, err, tc.code, 400)
		})
	}
	// Nothing invalid was created.
	l, err := c.ListStreams(context.Background(), &kinesisvideo.ListStreamsInput{})
	require.NoError(t, err)
	require.Empty(t, l.StreamInfoList)
}

func TestDescribeStreamArguments(t *testing.T) {
	srv := kvstest.Start(t)
	c := srv.KinesisVideo()
	ctx := context.Background()
	arn := createStream(t, c, "cam", 1)

	_, err := c.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{})
	requireAPIError(t, err, "InvalidArgumentException", 400)
	_, err = c.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("cam"), StreamARN: aws.String(arn)})
	requireAPIError(t, err, "InvalidArgumentException", 400)
	_, err = c.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamARN: aws.String("arn:aws:s3:::bucket")})
	requireAPIError(t, err, "InvalidArgumentException", 400)
	// Same name, other creation time: an ARN of a stream that no longer exists.
	_, err = c.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamARN: aws.String(arn[:strings.LastIndex(arn, "/")] + "/1")})
	requireAPIError(t, err, "ResourceNotFoundException", 404)
	// Other region.
	_, err = c.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamARN: aws.String(strings.Replace(arn, "us-east-1", "eu-west-1", 1))})
	requireAPIError(t, err, "ResourceNotFoundException", 404)
}

func TestListStreams(t *testing.T) {
	c := kvstest.Start(t).KinesisVideo()
	ctx := context.Background()
	for _, n := range []string{"cam-3", "cam-1", "door", "cam-2", "cam-10"} {
		createStream(t, c, n, 0)
	}
	var names []string
	p := kinesisvideo.NewListStreamsPaginator(c, &kinesisvideo.ListStreamsInput{MaxResults: aws.Int32(2),
		StreamNameCondition: &types.StreamNameCondition{ComparisonOperator: types.ComparisonOperatorBeginsWith, ComparisonValue: aws.String("cam")}})
	pages := 0
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		require.NoError(t, err)
		require.LessOrEqual(t, len(out.StreamInfoList), 2)
		for _, s := range out.StreamInfoList {
			names = append(names, *s.StreamName)
		}
		pages++
	}
	require.Equal(t, []string{"cam-1", "cam-10", "cam-2", "cam-3"}, names)
	require.Equal(t, 2, pages)

	all, err := c.ListStreams(ctx, &kinesisvideo.ListStreamsInput{})
	require.NoError(t, err)
	require.Len(t, all.StreamInfoList, 5)
	require.Nil(t, all.NextToken)

	_, err = c.ListStreams(ctx, &kinesisvideo.ListStreamsInput{MaxResults: aws.Int32(0)})
	requireAPIError(t, err, "InvalidArgumentException", 400)
	_, err = c.ListStreams(ctx, &kinesisvideo.ListStreamsInput{MaxResults: aws.Int32(10001)})
	requireAPIError(t, err, "InvalidArgumentException", 400)
	_, err = c.ListStreams(ctx, &kinesisvideo.ListStreamsInput{NextToken: aws.String("not-a-token!")})
	requireAPIError(t, err, "InvalidArgumentException", 400)
}

func TestDeleteStream(t *testing.T) {
	c := kvstest.Start(t).KinesisVideo()
	ctx := context.Background()
	arn := createStream(t, c, "cam", 2)
	d, err := c.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamARN: aws.String(arn)})
	require.NoError(t, err)

	_, err = c.DeleteStream(ctx, &kinesisvideo.DeleteStreamInput{StreamARN: aws.String(arn), CurrentVersion: aws.String("stale000000000000000")})
	requireAPIError(t, err, "VersionMismatchException", 400)
	_, err = c.DeleteStream(ctx, &kinesisvideo.DeleteStreamInput{StreamARN: aws.String("nonsense")})
	requireAPIError(t, err, "InvalidArgumentException", 400)

	_, err = c.DeleteStream(ctx, &kinesisvideo.DeleteStreamInput{StreamARN: aws.String(arn), CurrentVersion: d.StreamInfo.Version})
	require.NoError(t, err)
	_, err = c.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("cam")})
	requireAPIError(t, err, "ResourceNotFoundException", 404)
	_, err = c.DeleteStream(ctx, &kinesisvideo.DeleteStreamInput{StreamARN: aws.String(arn)})
	requireAPIError(t, err, "ResourceNotFoundException", 404)

	// A re-created stream has a new ARN, even within the same millisecond (creation times
	// strictly increase per name); the old ARN does not delete it.
	arn2 := createStream(t, c, "cam", 2)
	require.NotEqual(t, arn, arn2)
	_, err = c.DeleteStream(ctx, &kinesisvideo.DeleteStreamInput{StreamARN: aws.String(arn)})
	requireAPIError(t, err, "ResourceNotFoundException", 404)
	_, err = c.DeleteStream(ctx, &kinesisvideo.DeleteStreamInput{StreamARN: aws.String(arn2)})
	require.NoError(t, err)
}

func describe(t *testing.T, c *kinesisvideo.Client, name string) *types.StreamInfo {
	t.Helper()
	d, err := c.DescribeStream(context.Background(), &kinesisvideo.DescribeStreamInput{StreamName: aws.String(name)})
	require.NoError(t, err)
	return d.StreamInfo
}

func TestUpdateStreamAndVersions(t *testing.T) {
	c := kvstest.Start(t).KinesisVideo()
	ctx := context.Background()
	createStream(t, c, "cam", 2)
	v1 := *describe(t, c, "cam").Version

	_, err := c.UpdateStream(ctx, &kinesisvideo.UpdateStreamInput{StreamName: aws.String("cam"), CurrentVersion: aws.String(v1),
		DeviceName: aws.String("pi-4"), MediaType: aws.String("video/h265")})
	require.NoError(t, err)
	info := describe(t, c, "cam")
	require.Equal(t, "pi-4", *info.DeviceName)
	require.Equal(t, "video/h265", *info.MediaType)
	v2 := *info.Version
	require.NotEqual(t, v1, v2, "every metadata mutation changes the version")

	_, err = c.UpdateStream(ctx, &kinesisvideo.UpdateStreamInput{StreamName: aws.String("cam"), CurrentVersion: aws.String(v1), DeviceName: aws.String("x")})
	requireAPIError(t, err, "VersionMismatchException", 400)
	_, err = c.UpdateStream(ctx, &kinesisvideo.UpdateStreamInput{StreamName: aws.String("nope"), CurrentVersion: aws.String(v2)})
	requireAPIError(t, err, "ResourceNotFoundException", 404)
	_, err = c.UpdateStream(ctx, &kinesisvideo.UpdateStreamInput{StreamName: aws.String("cam"), CurrentVersion: aws.String(v2), MediaType: aws.String("bad")})
	requireAPIError(t, err, "InvalidArgumentException", 400)
	require.Equal(t, v2, *describe(t, c, "cam").Version, "a rejected update changes nothing")

	// Concurrent updates with the same version: exactly one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.UpdateStream(ctx, &kinesisvideo.UpdateStreamInput{StreamName: aws.String("cam"), CurrentVersion: aws.String(v2), DeviceName: aws.String(fmt.Sprintf("d%d", i))})
			if err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Equal(t, 1, wins)
}

func TestUpdateDataRetention(t *testing.T) {
	c := kvstest.Start(t).KinesisVideo()
	ctx := context.Background()
	createStream(t, c, "cam", 2)
	upd := func(op types.UpdateDataRetentionOperation, change int32) error {
		_, err := c.UpdateDataRetention(ctx, &kinesisvideo.UpdateDataRetentionInput{StreamName: aws.String("cam"),
			CurrentVersion: describe(t, c, "cam").Version, Operation: op, DataRetentionChangeInHours: aws.Int32(change)})
		return err
	}
	require.NoError(t, upd(types.UpdateDataRetentionOperationIncreaseDataRetention, 22))
	require.Equal(t, int32(24), *describe(t, c, "cam").DataRetentionInHours)
	require.NoError(t, upd(types.UpdateDataRetentionOperationDecreaseDataRetention, 24))
	require.Equal(t, int32(0), *describe(t, c, "cam").DataRetentionInHours)

	requireAPIError(t, upd(types.UpdateDataRetentionOperationDecreaseDataRetention, 1), "InvalidArgumentException", 400)
	requireAPIError(t, upd(types.UpdateDataRetentionOperationIncreaseDataRetention, 87601), "InvalidArgumentException", 400)
	requireAPIError(t, upd(types.UpdateDataRetentionOperationIncreaseDataRetention, 0), "InvalidArgumentException", 400)
	requireAPIError(t, upd("SIDEWAYS", 1), "InvalidArgumentException", 400)
	require.NoError(t, upd(types.UpdateDataRetentionOperationIncreaseDataRetention, 87600))

	_, err := c.UpdateDataRetention(ctx, &kinesisvideo.UpdateDataRetentionInput{StreamName: aws.String("cam"), CurrentVersion: aws.String("old"),
		Operation: types.UpdateDataRetentionOperationIncreaseDataRetention, DataRetentionChangeInHours: aws.Int32(1)})
	requireAPIError(t, err, "VersionMismatchException", 400)
}

func TestGetDataEndpoint(t *testing.T) {
	srv := kvstest.Start(t)
	c := srv.KinesisVideo()
	createStream(t, c, "cam", 1)
	for _, api := range types.APIName("").Values() {
		out, err := c.GetDataEndpoint(context.Background(), &kinesisvideo.GetDataEndpointInput{StreamName: aws.String("cam"), APIName: api})
		require.NoError(t, err, api)
		require.Equal(t, srv.URL, *out.DataEndpoint, "no path, no trailing slash")
	}
	_, err := c.GetDataEndpoint(context.Background(), &kinesisvideo.GetDataEndpointInput{StreamName: aws.String("cam"), APIName: "GET_TEA"})
	requireAPIError(t, err, "InvalidArgumentException", 400)
	_, err = c.GetDataEndpoint(context.Background(), &kinesisvideo.GetDataEndpointInput{StreamName: aws.String("nope"), APIName: types.APINamePutMedia})
	requireAPIError(t, err, "ResourceNotFoundException", 404)
}

func TestTags(t *testing.T) {
	c := kvstest.Start(t).KinesisVideo()
	ctx := context.Background()
	arn := createStream(t, c, "cam", 1)
	v := *describe(t, c, "cam").Version

	_, err := c.TagStream(ctx, &kinesisvideo.TagStreamInput{StreamARN: aws.String(arn), Tags: map[string]string{"a": "1", "b": "2"}})
	require.NoError(t, err)
	_, err = c.TagStream(ctx, &kinesisvideo.TagStreamInput{StreamName: aws.String("cam"), Tags: map[string]string{"a": "one", "kvsd:ImageGeneration": "ALL_FRAGMENTS"}})
	require.NoError(t, err)
	l, err := c.ListTagsForStream(ctx, &kinesisvideo.ListTagsForStreamInput{StreamName: aws.String("cam")})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"a": "one", "b": "2", "kvsd:ImageGeneration": "ALL_FRAGMENTS"}, l.Tags)
	require.Equal(t, v, *describe(t, c, "cam").Version, "tags are not stream metadata in KVS: version unchanged")

	_, err = c.UntagStream(ctx, &kinesisvideo.UntagStreamInput{StreamARN: aws.String(arn), TagKeyList: []string{"b", "missing"}})
	require.NoError(t, err)
	l, err = c.ListTagsForStream(ctx, &kinesisvideo.ListTagsForStreamInput{StreamARN: aws.String(arn)})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"a": "one", "kvsd:ImageGeneration": "ALL_FRAGMENTS"}, l.Tags)

	// The 50-tag limit counts the merged set.
	many := map[string]string{}
	for i := range 48 {
		many[fmt.Sprintf("k%02d", i)] = "v"
	}
	_, err = c.TagStream(ctx, &kinesisvideo.TagStreamInput{StreamName: aws.String("cam"), Tags: many})
	require.NoError(t, err)
	_, err = c.TagStream(ctx, &kinesisvideo.TagStreamInput{StreamName: aws.String("cam"), Tags: map[string]string{"one-too-many": "v"}})
	requireAPIError(t, err, "TagsPerResourceExceededLimitException", 400)
	_, err = c.TagStream(ctx, &kinesisvideo.TagStreamInput{StreamName: aws.String("cam"), Tags: map[string]string{"a": "overwrite is fine"}})
	require.NoError(t, err)

	_, err = c.TagStream(ctx, &kinesisvideo.TagStreamInput{StreamARN: aws.String("arn:bad"), Tags: map[string]string{"a": "1"}})
	requireAPIError(t, err, "InvalidResourceFormatException", 400)
	_, err = c.UntagStream(ctx, &kinesisvideo.UntagStreamInput{StreamARN: aws.String("arn:bad"), TagKeyList: []string{"a"}})
	requireAPIError(t, err, "InvalidResourceFormatException", 400)
	_, err = c.ListTagsForStream(ctx, &kinesisvideo.ListTagsForStreamInput{StreamARN: aws.String("arn:bad")})
	requireAPIError(t, err, "InvalidResourceFormatException", 400)
	_, err = c.TagStream(ctx, &kinesisvideo.TagStreamInput{StreamName: aws.String("nope"), Tags: map[string]string{"a": "1"}})
	requireAPIError(t, err, "ResourceNotFoundException", 404)
	_, err = c.TagStream(ctx, &kinesisvideo.TagStreamInput{StreamName: aws.String("cam"), Tags: map[string]string{"k": strings.Repeat("v", 257)}})
	requireAPIError(t, err, "InvalidArgumentException", 400)
	_, err = c.UntagStream(ctx, &kinesisvideo.UntagStreamInput{StreamName: aws.String("cam"), TagKeyList: []string{}})
	requireAPIError(t, err, "InvalidArgumentException", 400)
}

func imageConfig() *types.ImageGenerationConfiguration {
	return &types.ImageGenerationConfiguration{
		Status: types.ConfigurationStatusEnabled, ImageSelectorType: types.ImageSelectorTypeProducerTimestamp,
		DestinationConfig: &types.ImageGenerationDestinationConfig{Uri: aws.String("s3://my-bucket/cams"), DestinationRegion: aws.String("us-east-1")},
		SamplingInterval:  aws.Int32(200), Format: types.FormatJpeg,
		FormatConfig: map[string]string{"JPEGQuality": "80"}, WidthPixels: aws.Int32(320), HeightPixels: aws.Int32(240),
	}
}

func TestImageGenerationConfiguration(t *testing.T) {
	c := kvstest.Start(t).KinesisVideo()
	ctx := context.Background()
	createStream(t, c, "cam", 12)
	createStream(t, c, "live-only", 0)

	d, err := c.DescribeImageGenerationConfiguration(ctx, &kinesisvideo.DescribeImageGenerationConfigurationInput{StreamName: aws.String("cam")})
	require.NoError(t, err)
	require.Nil(t, d.ImageGenerationConfiguration, "unset: no configuration")

	_, err = c.UpdateImageGenerationConfiguration(ctx, &kinesisvideo.UpdateImageGenerationConfigurationInput{StreamName: aws.String("cam"), ImageGenerationConfiguration: imageConfig()})
	require.NoError(t, err)
	d, err = c.DescribeImageGenerationConfiguration(ctx, &kinesisvideo.DescribeImageGenerationConfigurationInput{StreamName: aws.String("cam")})
	require.NoError(t, err)
	got := d.ImageGenerationConfiguration
	require.Equal(t, types.ConfigurationStatusEnabled, got.Status)
	require.Equal(t, "s3://my-bucket/cams", *got.DestinationConfig.Uri)
	require.Equal(t, int32(200), *got.SamplingInterval)
	require.Equal(t, map[string]string{"JPEGQuality": "80"}, got.FormatConfig)
	require.Equal(t, int32(320), *got.WidthPixels)
	require.Equal(t, int32(240), *got.HeightPixels)

	bad := []struct {
		name string
		mod  func(*types.ImageGenerationConfiguration)
	}{
		{"interval 199", func(c *types.ImageGenerationConfiguration) { c.SamplingInterval = aws.Int32(199) }},
		{"other region", func(c *types.ImageGenerationConfiguration) {
			c.DestinationConfig.DestinationRegion = aws.String("eu-west-1")
		}},
		{"bad region", func(c *types.ImageGenerationConfiguration) {
			c.DestinationConfig.DestinationRegion = aws.String("moon")
		}},
		{"not s3", func(c *types.ImageGenerationConfiguration) { c.DestinationConfig.Uri = aws.String("gs://bucket") }},
		{"bad uri", func(c *types.ImageGenerationConfiguration) { c.DestinationConfig.Uri = aws.String("no-scheme") }},
		{"quality 0", func(c *types.ImageGenerationConfiguration) { c.FormatConfig = map[string]string{"JPEGQuality": "0"} }},
		{"quality 101", func(c *types.ImageGenerationConfiguration) { c.FormatConfig = map[string]string{"JPEGQuality": "101"} }},
		{"quality text", func(c *types.ImageGenerationConfiguration) { c.FormatConfig = map[string]string{"JPEGQuality": "high"} }},
		{"other key", func(c *types.ImageGenerationConfiguration) { c.FormatConfig = map[string]string{"PNGLevel": "3"} }},
		{"width 0", func(c *types.ImageGenerationConfiguration) { c.WidthPixels = aws.Int32(0) }},
		{"width 3841", func(c *types.ImageGenerationConfiguration) { c.WidthPixels = aws.Int32(3841) }},
		{"height 2161", func(c *types.ImageGenerationConfiguration) { c.HeightPixels = aws.Int32(2161) }},
		{"format gif", func(c *types.ImageGenerationConfiguration) { c.Format = "GIF" }},
		{"selector", func(c *types.ImageGenerationConfiguration) { c.ImageSelectorType = "WALL_CLOCK" }},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			cfg := imageConfig()
			tc.mod(cfg)
			_, err := c.UpdateImageGenerationConfiguration(ctx, &kinesisvideo.UpdateImageGenerationConfigurationInput{StreamName: aws.String("cam"), ImageGenerationConfiguration: cfg})
			requireAPIError(t, err, "InvalidArgumentException", 400)
		})
	}

	_, err = c.UpdateImageGenerationConfiguration(ctx, &kinesisvideo.UpdateImageGenerationConfigurationInput{StreamName: aws.String("live-only"), ImageGenerationConfiguration: imageConfig()})
	requireAPIError(t, err, "NoDataRetentionException", 400)
	_, err = c.UpdateImageGenerationConfiguration(ctx, &kinesisvideo.UpdateImageGenerationConfigurationInput{StreamName: aws.String("nope"), ImageGenerationConfiguration: imageConfig()})
	requireAPIError(t, err, "ResourceNotFoundException", 404)

	// Null deletes the configuration.
	_, err = c.UpdateImageGenerationConfiguration(ctx, &kinesisvideo.UpdateImageGenerationConfigurationInput{StreamName: aws.String("cam")})
	require.NoError(t, err)
	d, err = c.DescribeImageGenerationConfiguration(ctx, &kinesisvideo.DescribeImageGenerationConfigurationInput{StreamName: aws.String("cam")})
	require.NoError(t, err)
	require.Nil(t, d.ImageGenerationConfiguration)
}

func TestNotificationConfiguration(t *testing.T) {
	c := kvstest.Start(t).KinesisVideo()
	ctx := context.Background()
	createStream(t, c, "cam", 1)
	createStream(t, c, "live-only", 0)
	cfg := &types.NotificationConfiguration{Status: types.ConfigurationStatusEnabled,
		DestinationConfig: &types.NotificationDestinationConfig{Uri: aws.String("arn:aws:sns:us-east-1:111122223333:kvs-topic")}}

	_, err := c.UpdateNotificationConfiguration(ctx, &kinesisvideo.UpdateNotificationConfigurationInput{StreamName: aws.String("cam"), NotificationConfiguration: cfg})
	require.NoError(t, err)
	d, err := c.DescribeNotificationConfiguration(ctx, &kinesisvideo.DescribeNotificationConfigurationInput{StreamName: aws.String("cam")})
	require.NoError(t, err)
	require.Equal(t, types.ConfigurationStatusEnabled, d.NotificationConfiguration.Status)
	require.Equal(t, "arn:aws:sns:us-east-1:111122223333:kvs-topic", *d.NotificationConfiguration.DestinationConfig.Uri)

	_, err = c.UpdateNotificationConfiguration(ctx, &kinesisvideo.UpdateNotificationConfigurationInput{StreamName: aws.String("live-only"), NotificationConfiguration: cfg})
	requireAPIError(t, err, "NoDataRetentionException", 400)
	_, err = c.UpdateNotificationConfiguration(ctx, &kinesisvideo.UpdateNotificationConfigurationInput{StreamName: aws.String("cam"),
		NotificationConfiguration: &types.NotificationConfiguration{Status: "ON", DestinationConfig: cfg.DestinationConfig}})
	requireAPIError(t, err, "InvalidArgumentException", 400)

	_, err = c.UpdateNotificationConfiguration(ctx, &kinesisvideo.UpdateNotificationConfigurationInput{StreamName: aws.String("cam")})
	require.NoError(t, err)
	d, err = c.DescribeNotificationConfiguration(ctx, &kinesisvideo.DescribeNotificationConfigurationInput{StreamName: aws.String("cam")})
	require.NoError(t, err)
	require.Nil(t, d.NotificationConfiguration)
}

func TestStreamStorageConfiguration(t *testing.T) {
	c := kvstest.Start(t).KinesisVideo()
	ctx := context.Background()
	_, err := c.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("warm"),
		StreamStorageConfiguration: &types.StreamStorageConfiguration{DefaultStorageTier: types.DefaultStorageTierWarm}})
	require.NoError(t, err)
	createStream(t, c, "cam", 1)

	d, err := c.DescribeStreamStorageConfiguration(ctx, &kinesisvideo.DescribeStreamStorageConfigurationInput{StreamName: aws.String("cam")})
	require.NoError(t, err)
	require.Equal(t, types.DefaultStorageTierHot, d.StreamStorageConfiguration.DefaultStorageTier, "HOT by default")
	require.Equal(t, "cam", *d.StreamName)
	require.NotEmpty(t, *d.StreamARN)
	d, err = c.DescribeStreamStorageConfiguration(ctx, &kinesisvideo.DescribeStreamStorageConfigurationInput{StreamName: aws.String("warm")})
	require.NoError(t, err)
	require.Equal(t, types.DefaultStorageTierWarm, d.StreamStorageConfiguration.DefaultStorageTier)

	v := describe(t, c, "cam").Version
	_, err = c.UpdateStreamStorageConfiguration(ctx, &kinesisvideo.UpdateStreamStorageConfigurationInput{StreamName: aws.String("cam"), CurrentVersion: v,
		StreamStorageConfiguration: &types.StreamStorageConfiguration{DefaultStorageTier: types.DefaultStorageTierWarm}})
	require.NoError(t, err)
	require.NotEqual(t, *v, *describe(t, c, "cam").Version)
	d, err = c.DescribeStreamStorageConfiguration(ctx, &kinesisvideo.DescribeStreamStorageConfigurationInput{StreamName: aws.String("cam")})
	require.NoError(t, err)
	require.Equal(t, types.DefaultStorageTierWarm, d.StreamStorageConfiguration.DefaultStorageTier)

	_, err = c.UpdateStreamStorageConfiguration(ctx, &kinesisvideo.UpdateStreamStorageConfigurationInput{StreamName: aws.String("cam"), CurrentVersion: v,
		StreamStorageConfiguration: &types.StreamStorageConfiguration{DefaultStorageTier: types.DefaultStorageTierHot}})
	requireAPIError(t, err, "VersionMismatchException", 400)
	_, err = c.UpdateStreamStorageConfiguration(ctx, &kinesisvideo.UpdateStreamStorageConfigurationInput{StreamName: aws.String("cam"), CurrentVersion: describe(t, c, "cam").Version,
		StreamStorageConfiguration: &types.StreamStorageConfiguration{DefaultStorageTier: "GLACIER"}})
	requireAPIError(t, err, "InvalidArgumentException", 400)
}

func TestNotImplementedOperations(t *testing.T) {
	c := kvstest.Start(t).KinesisVideo()
	_, err := c.CreateSignalingChannel(context.Background(), &kinesisvideo.CreateSignalingChannelInput{ChannelName: aws.String("ch")})
	requireAPIError(t, err, "NotImplementedException", 501)
	require.Contains(t, err.Error(), "createSignalingChannel")
	_, err = c.ListEdgeAgentConfigurations(context.Background(), &kinesisvideo.ListEdgeAgentConfigurationsInput{HubDeviceArn: aws.String("arn:aws:iot:us-east-1:111122223333:thing/hub")})
	requireAPIError(t, err, "NotImplementedException", 501)
}

func TestCatalogSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	srv := kvstest.Start(t, kvstest.Options{DataDir: dir})
	c := srv.KinesisVideo()
	arn := createStream(t, c, "cam", 5)
	_, err := c.TagStream(context.Background(), &kinesisvideo.TagStreamInput{StreamName: aws.String("cam"), Tags: map[string]string{"site": "lab"}})
	require.NoError(t, err)
	_, err = c.UpdateImageGenerationConfiguration(context.Background(), &kinesisvideo.UpdateImageGenerationConfigurationInput{StreamName: aws.String("cam"), ImageGenerationConfiguration: imageConfig()})
	require.NoError(t, err)
	before := describe(t, c, "cam")
	srv.Stop(t)

	srv2 := kvstest.Start(t, kvstest.Options{DataDir: dir})
	c2 := srv2.KinesisVideo()
	after := describe(t, c2, "cam")
	require.Equal(t, arn, *after.StreamARN)
	require.Equal(t, *before.Version, *after.Version)
	require.Equal(t, before.CreationTime.UnixMilli(), after.CreationTime.UnixMilli())
	l, err := c2.ListTagsForStream(context.Background(), &kinesisvideo.ListTagsForStreamInput{StreamName: aws.String("cam")})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"site": "lab"}, l.Tags)
	d, err := c2.DescribeImageGenerationConfiguration(context.Background(), &kinesisvideo.DescribeImageGenerationConfigurationInput{StreamName: aws.String("cam")})
	require.NoError(t, err)
	require.Equal(t, int32(200), *d.ImageGenerationConfiguration.SamplingInterval)
}
