package streamrec

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/stream"
)

// goldenRecord is a version-1 record as docs/format/catalog.md describes it. Files written by
// released kvsd builds contain exactly this; if this test fails, the format changed.
const goldenRecord = `{"v":1,"name":"cam","arn":"arn:aws:kinesisvideo:us-east-1:123456789012:stream/cam/1700000000123",` +
	`"deviceName":"dev","mediaType":"video/h264","kmsKeyId":"k","version":"v1","status":"ACTIVE",` +
	`"creationTimeMs":1700000000123,"retentionHours":24,"tags":{"a":"b"},"storageTier":"HOT",` +
	`"imageGeneration":{"status":"ENABLED","imageSelectorType":"SERVER_TIMESTAMP",` +
	`"destination":{"uri":"s3://b/p","region":"us-east-1"},"samplingIntervalMs":3000,"format":"JPEG",` +
	`"formatConfig":{"JPEGQuality":"80"},"widthPixels":640,"heightPixels":480},` +
	`"notification":{"status":"ENABLED","destination":{"uri":"arn:aws:sns:us-east-1:1:t"}}}`

func TestRecordFormat(t *testing.T) {
	i := func(v int) *int { return &v }
	s := &stream.Stream{
		Name: "cam", ARN: "arn:aws:kinesisvideo:us-east-1:123456789012:stream/cam/1700000000123",
		DeviceName: "dev", MediaType: "video/h264", KmsKeyID: "k", Version: "v1", Status: stream.StatusActive,
		CreationTime: time.UnixMilli(1700000000123).UTC(), RetentionHours: 24,
		Tags: map[string]string{"a": "b"}, StorageTier: "HOT",
		ImageGeneration: &stream.ImageGenerationConfiguration{
			Status: "ENABLED", ImageSelectorType: "SERVER_TIMESTAMP",
			DestinationConfig: &stream.ImageGenerationDestinationConfig{Uri: "s3://b/p", DestinationRegion: "us-east-1"},
			SamplingInterval:  i(3000), Format: "JPEG", FormatConfig: map[string]string{"JPEGQuality": "80"},
			WidthPixels: i(640), HeightPixels: i(480),
		},
		Notification: &stream.NotificationConfiguration{
			Status: "ENABLED", DestinationConfig: &stream.NotificationDestinationConfig{Uri: "arn:aws:sns:us-east-1:1:t"},
		},
	}
	got, err := Encode(s)
	require.NoError(t, err)
	assert.JSONEq(t, goldenRecord, string(got))
	back, err := Decode([]byte(goldenRecord))
	require.NoError(t, err)
	assert.Equal(t, s, back)

	_, err = Decode([]byte(`{"v":2,"name":"cam"}`))
	assert.ErrorContains(t, err, "version 2")
}
