package objstore

import (
	"bytes"
	"context"
	"errors"
	"mime"
	"net/http"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// S3Config selects an S3-compatible endpoint. kvsd sends images to S3 only when an endpoint is
// configured explicitly, so ambient AWS credentials never make it write anywhere by accident.
type S3Config struct {
	Endpoint    string // e.g. https://s3.eu-west-1.amazonaws.com or http://127.0.0.1:7070
	PathStyle   bool   // bucket in the path (most self-hosted servers) instead of the host name
	Region      string // the region requests are signed for
	Credentials aws.CredentialsProvider
	HTTPClient  *http.Client // nil: the SDK's default
}

// S3 puts objects with the AWS SDK for Go v2.
type S3 struct {
	client *s3.Client
}

// NewS3 returns an S3 store; it does no I/O.
func NewS3(cfg S3Config) *S3 {
	opts := s3.Options{
		BaseEndpoint: aws.String(cfg.Endpoint),
		UsePathStyle: cfg.PathStyle,
		Region:       cfg.Region,
		Credentials:  cfg.Credentials,
		// The generator retries with its own backoff and records every failure; SDK retries
		// would only hide them and hold a worker.
		RetryMaxAttempts: 1,
		// Checksums only where the API requires them: S3-compatible servers differ in which
		// of the newer checksum headers and trailers they accept.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	if cfg.HTTPClient != nil {
		opts.HTTPClient = cfg.HTTPClient
	}
	return &S3{client: s3.New(opts)}
}

// Put uploads body with one PutObject.
func (s *S3) Put(ctx context.Context, bucket, key string, body []byte, contentType string, meta map[string]string) error {
	enc := make(map[string]string, len(meta))
	for k, v := range meta {
		enc[k] = headerValue(v)
	}
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String(contentType),
		Metadata:      enc,
	})
	return classifyS3(ctx, err)
}

// headerValue keeps metadata values that HTTP headers can carry as they are, and encodes the
// rest as RFC 2047 words, which is how S3 itself returns non-ASCII metadata.
func headerValue(v string) string {
	for _, r := range v {
		if r > unicode.MaxASCII || (r < ' ' && r != '\t') || r == 0x7f {
			return mime.QEncoding.Encode("utf-8", v)
		}
	}
	return v
}

// classifyS3 wraps an SDK error in *Error with its S3 code.
func classifyS3(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err() // shutting down: not a delivery failure
	}
	var se *v4.SigningError
	if errors.As(err, &se) {
		// No usable credentials in kvsd's environment: nothing changes until someone
		// provides them.
		return &Error{Code: "CredentialsError", Permanent: true, Err: err}
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		code := api.ErrorCode()
		permanent := permanentCodes[code]
		var re *awshttp.ResponseError
		if !permanent && errors.As(err, &re) {
			// An unlisted 4xx (other than timeouts and throttling) is a request the
			// server will refuse again.
			st := re.HTTPStatusCode()
			permanent = st >= 400 && st < 500 && st != http.StatusRequestTimeout && st != http.StatusTooManyRequests && st != http.StatusConflict
		}
		msg := api.ErrorMessage()
		if msg == "" {
			msg = err.Error()
		}
		return &Error{Code: code, Permanent: permanent, Err: errors.New(msg)}
	}
	return &Error{Code: "NetworkError", Err: err}
}
