package kvsapi_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/kvstest"
)

// TestNotificationDestinations: the destination URI selects the transport, so
// UpdateNotificationConfiguration accepts exactly the URIs kvsd can deliver to and refuses the
// rest with an InvalidArgumentException that lists the supported destinations.
func TestNotificationDestinations(t *testing.T) {
	c := kvstest.Start(t).KinesisVideo()
	ctx := context.Background()
	createStream(t, c, "cam", 1)
	update := func(uri string) error {
		_, err := c.UpdateNotificationConfiguration(ctx, &kinesisvideo.UpdateNotificationConfigurationInput{
			StreamName: aws.String("cam"), NotificationConfiguration: &types.NotificationConfiguration{
				Status: types.ConfigurationStatusEnabled, DestinationConfig: &types.NotificationDestinationConfig{Uri: aws.String(uri)}}})
		return err
	}

	for _, uri := range []string{
		"arn:aws:sns:us-east-1:111122223333:kvs-topic",
		"arn:aws:sns:eu-west-1:111122223333:kvs_topic-2",
		"arn:aws-cn:sns:cn-north-1:111122223333:t",
		"arn:aws:sns:us-east-1:111122223333:events.fifo",
		"https://hooks.example.com/kvs?token=abc",
		"http://10.0.0.5:8080/events",
		"HTTPS://example.com",
		"nats://127.0.0.1:4222/kvs.events",
		"nats://user:pass@nats.local/kvs.cam-1.events",
		"mqtt://127.0.0.1:1883/kvs/events",
		"mqtts://broker.example.com:8883/site/a/kvs",
		"mqtt://broker/t",
	} {
		require.NoError(t, update(uri), uri)
		d, err := c.DescribeNotificationConfiguration(ctx, &kinesisvideo.DescribeNotificationConfigurationInput{StreamName: aws.String("cam")})
		require.NoError(t, err)
		require.Equal(t, uri, *d.NotificationConfiguration.DestinationConfig.Uri, "stored as given")
	}

	for uri, why := range map[string]string{
		"s3://bucket/path":                         "unsupported scheme",
		"ftp://host/file":                          "unsupported scheme",
		"amqp://broker:5672/q":                     "unsupported scheme",
		"kafka://broker:9092/topic":                "unsupported scheme",
		"arn:aws:sqs:us-east-1:111122223333:queue": "not an SNS topic ARN",
		"arn:aws:sns:us-east-1:1111:topic":         "not an SNS topic ARN",
		"arn:aws:sns:us-east-1:111122223333:a:b":   "not an SNS topic ARN",
		"nats://127.0.0.1:4222":                    "one NATS subject",
		"nats://127.0.0.1:4222/":                   "one NATS subject",
		"nats://127.0.0.1:4222/kvs.>":              "one NATS subject",
		"nats://127.0.0.1:4222/kvs..events":        "one NATS subject",
		"nats://127.0.0.1:4222/kvs.events?x=1":     "query",
		"mqtt://127.0.0.1:1883":                    "one MQTT topic",
		"mqtt://127.0.0.1:1883/kvs/+/events":       "one MQTT topic",
		"mqtt://127.0.0.1:1883/kvs/#":              "'#'",
		"no-scheme":                                "not a valid destination URI",
		"mqtt:///kvs/events":                       "not a valid destination URI",
		"https:///path":                            "not a valid destination URI",
		"https://:8080/path":                       "names no host",
		"nats://host:99999/kvs":                    "invalid port",
	} {
		err := update(uri)
		require.Error(t, err, uri)
		requireAPIError(t, err, "InvalidArgumentException", 400)
		var ae smithy.APIError
		require.True(t, errors.As(err, &ae))
		msg := ae.ErrorMessage()
		require.Contains(t, msg, why, uri)
		require.Contains(t, msg, uri, "the message names the URI")
		require.Contains(t, msg, "arn:aws:sns:<region>:<account>:<topic>", "the message lists the supported destinations")
		require.Contains(t, msg, "nats://host:port/<subject>")
		require.Contains(t, msg, "mqtt://host:port/<topic>")
		require.Contains(t, msg, "https://")
	}

	requireAPIError(t, update(""), "InvalidArgumentException", 400)
}
