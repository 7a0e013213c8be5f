package kvsapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/kvstest"
)

// signed builds a request signed by the AWS SDK's own SigV4 signer.
type signer struct {
	url, key, secret, region string
	now                      time.Time
}

func newSigner(srv *kvstest.Server) *signer {
	return &signer{url: srv.URL, key: kvstest.AccessKeyID, secret: kvstest.SecretAccessKey, region: kvstest.Region, now: time.Now()}
}

func (s *signer) request(t *testing.T, method, path, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256([]byte(body))
	err = v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: s.key, SecretAccessKey: s.secret},
		req, hex.EncodeToString(sum[:]), "kinesisvideo", s.region, s.now)
	require.NoError(t, err)
	return req
}

type awsError struct {
	status    int
	errorType string
	requestID string
	message   string
}

func do(t *testing.T, req *http.Request) (awsError, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var msg struct {
		Message string `json:"message"`
	}
	_ = json.Unmarshal(body, &msg)
	return awsError{resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), resp.Header.Get("x-amzn-RequestId"), msg.Message}, body
}

func requireWireError(t *testing.T, got awsError, status int, errorType, msgPart string) {
	t.Helper()
	require.Equal(t, status, got.status, "message: %s", got.message)
	require.Equal(t, errorType, got.errorType, "message: %s", got.message)
	require.Regexp(t, `^[0-9a-f-]{36}$`, got.requestID)
	require.Contains(t, got.message, msgPart)
}

func TestWireConventions(t *testing.T) {
	srv := kvstest.Start(t)
	s := newSigner(srv)

	got, body := do(t, s.request(t, "POST", "/createStream", `{"StreamName":"cam","DataRetentionInHours":2}`))
	require.Equal(t, 200, got.status, string(body))
	require.Contains(t, string(body), `"StreamARN":"arn:aws:kinesisvideo:us-east-1:111122223333:stream/cam/`)

	got, body = do(t, s.request(t, "POST", "/describeStream", `{"StreamName":"cam"}`))
	require.Equal(t, 200, got.status)
	var d struct {
		StreamInfo map[string]any
	}
	require.NoError(t, json.Unmarshal(body, &d))
	ct, ok := d.StreamInfo["CreationTime"].(float64)
	require.True(t, ok, "CreationTime is a JSON number: %s", body)
	require.InDelta(t, float64(time.Now().Unix()), ct, 60)
	require.Contains(t, d.StreamInfo, "DeviceName", "absent strings are null, as KVS sends them")
	require.Nil(t, d.StreamInfo["DeviceName"])

	got, body = do(t, s.request(t, "POST", "/tagStream", `{"StreamName":"cam","Tags":{"a":"b"}}`))
	require.Equal(t, 200, got.status)
	require.JSONEq(t, `{}`, string(body), "empty outputs are {}")

	cases := []struct {
		name, method, path, body string
		status                   int
		errorType, msg           string
	}{
		{"unknown path", "POST", "/makeCoffee", `{}`, 404, "UnknownOperationException", "/makeCoffee"},
		{"wrong method", "GET", "/describeStream", ``, 404, "UnknownOperationException", "POST"},
		{"malformed json", "POST", "/describeStream", `{"StreamName":`, 400, "InvalidArgumentException", "not valid JSON"},
		{"wrong type", "POST", "/createStream", `{"StreamName":"x","DataRetentionInHours":"two"}`, 400, "InvalidArgumentException", "DataRetentionInHours must be an integer"},
		{"nested wrong type", "POST", "/updateImageGenerationConfiguration", `{"StreamName":"cam","ImageGenerationConfiguration":{"SamplingInterval":"fast"}}`, 400, "InvalidArgumentException", "SamplingInterval"},
		{"array body", "POST", "/describeStream", `[1,2]`, 400, "InvalidArgumentException", "JSON object"},
		{"two values", "POST", "/describeStream", `{"StreamName":"cam"} {}`, 400, "InvalidArgumentException", "more than one"},
		// Required members the SDKs check client-side; other clients rely on the server.
		{"image config without interval", "POST", "/updateImageGenerationConfiguration", `{"StreamName":"cam","ImageGenerationConfiguration":{"Status":"ENABLED","ImageSelectorType":"PRODUCER_TIMESTAMP","DestinationConfig":{"Uri":"s3://bucket","DestinationRegion":"us-east-1"},"Format":"JPEG"}}`, 400, "InvalidArgumentException", "SamplingInterval is required"},
		{"image config without destination", "POST", "/updateImageGenerationConfiguration", `{"StreamName":"cam","ImageGenerationConfiguration":{"Status":"ENABLED","ImageSelectorType":"PRODUCER_TIMESTAMP","SamplingInterval":1000,"Format":"JPEG"}}`, 400, "InvalidArgumentException", "DestinationConfig is required"},
		{"image config without status", "POST", "/updateImageGenerationConfiguration", `{"StreamName":"cam","ImageGenerationConfiguration":{"ImageSelectorType":"PRODUCER_TIMESTAMP","DestinationConfig":{"Uri":"s3://bucket","DestinationRegion":"us-east-1"},"SamplingInterval":1000,"Format":"JPEG"}}`, 400, "InvalidArgumentException", "Status is required"},
		{"notification without destination", "POST", "/updateNotificationConfiguration", `{"StreamName":"cam","NotificationConfiguration":{"Status":"ENABLED"}}`, 400, "InvalidArgumentException", "DestinationConfig is required"},
		{"delete without ARN", "POST", "/deleteStream", `{"StreamName":"cam"}`, 400, "InvalidArgumentException", "StreamARN is required"},
		{"data endpoint without API name", "POST", "/getDataEndpoint", `{"StreamName":"cam"}`, 400, "InvalidArgumentException", "APIName is required"},
		{"update without version", "POST", "/updateStream", `{"StreamName":"cam","DeviceName":"d"}`, 400, "InvalidArgumentException", "CurrentVersion"},
		{"not implemented", "POST", "/describeSignalingChannel", `{}`, 501, "NotImplementedException", "describeSignalingChannel"},
		{"missing stream", "POST", "/describeStream", `{"StreamName":"none"}`, 404, "ResourceNotFoundException", "not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := do(t, s.request(t, tc.method, tc.path, tc.body))
			requireWireError(t, got, tc.status, tc.errorType, tc.msg)
		})
	}

	t.Run("body over 1 MiB", func(t *testing.T) {
		big := `{"StreamName":"` + strings.Repeat("a", 1<<20) + `"}`
		got, _ := do(t, s.request(t, "POST", "/describeStream", big))
		requireWireError(t, got, 413, "InvalidArgumentException", "larger than")
	})
}

func TestAuthRejections(t *testing.T) {
	srv := kvstest.Start(t)
	body := `{"StreamName":"cam"}`
	good := newSigner(srv)

	unsigned, err := http.NewRequest("POST", srv.URL+"/describeStream", strings.NewReader(body))
	require.NoError(t, err)
	got, _ := do(t, unsigned)
	requireWireError(t, got, 403, "MissingAuthenticationTokenException", "")

	wrongSecret := *good
	wrongSecret.secret = "not-the-secret"
	got, _ = do(t, wrongSecret.request(t, "POST", "/describeStream", body))
	requireWireError(t, got, 403, "InvalidSignatureException", "signature we calculated does not match")

	unknownKey := *good
	unknownKey.key = "AKIAUNKNOWNKEY000000"
	got, _ = do(t, unknownKey.request(t, "POST", "/describeStream", body))
	requireWireError(t, got, 403, "UnrecognizedClientException", "security token included in the request is invalid")

	expired := *good
	expired.now = time.Now().Add(-6 * time.Minute)
	got, _ = do(t, expired.request(t, "POST", "/describeStream", body))
	requireWireError(t, got, 403, "InvalidSignatureException", "Signature expired")

	wrongRegion := *good
	wrongRegion.region = "eu-west-1"
	got, _ = do(t, wrongRegion.request(t, "POST", "/describeStream", body))
	requireWireError(t, got, 403, "InvalidSignatureException", "eu-west-1")
	require.Contains(t, got.message, "us-east-1", "the message names the server's region")

	tampered := good.request(t, "POST", "/describeStream", body)
	tampered.Body = io.NopCloser(bytes.NewReader([]byte(`{"StreamName":"cat"}`)))
	got, _ = do(t, tampered)
	requireWireError(t, got, 403, "InvalidSignatureException", "")

	// After all that, a correct request still works (and the stream was never created by them).
	got, _ = do(t, good.request(t, "POST", "/createStream", `{"StreamName":"cam"}`))
	require.Equal(t, 200, got.status)
	got, _ = do(t, good.request(t, "POST", "/describeStream", body))
	require.Equal(t, 200, got.status)
}

func TestHealthzAndMetricsNeedNoAuth(t *testing.T) {
	srv := kvstest.Start(t)
	resp, err := http.Get(srv.URL + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)

	_, _ = do(t, newSigner(srv).request(t, "POST", "/describeStream", `{"StreamName":"none"}`))
	resp, err = http.Get(srv.URL + "/metrics")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Contains(t, string(b), `kvsd_api_requests_total{code="404",operation="describeStream"} 1`)
	require.Contains(t, string(b), `kvsd_api_request_duration_seconds_bucket{operation="describeStream"`)
}
