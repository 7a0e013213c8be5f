package app

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/kvsd/kvsd/internal/egress"
	"github.com/kvsd/kvsd/internal/imagegen"
	"github.com/kvsd/kvsd/internal/media"
	"github.com/kvsd/kvsd/internal/objstore"
)

// imageObjects picks where images go: S3 only when --s3-endpoint names it (ambient AWS
// credentials alone never send images anywhere), the local folder <data-dir>/buckets
// otherwise. It also returns a description for logs and `kvsd doctor`.
func imageObjects(ctx context.Context, cfg Config, getenv func(string) string) (imagegen.Objects, string, error) {
	if cfg.S3Endpoint == "" {
		dir := filepath.Join(cfg.DataDir, "buckets")
		return &objstore.Dir{Root: dir}, fmt.Sprintf("delivered to the local folder %s/<bucket>/<key> (kvsd serve --s3-endpoint sends them to S3)", dir), nil
	}
	creds, region, err := s3Credentials(ctx, getenv)
	if err != nil {
		return nil, "", err
	}
	if region == "" {
		region = cfg.Region
	}
	// The bucket comes from the API and, virtual-hosted, names the host: whatever it resolves
	// to, link-local and cloud metadata addresses are refused (the zero egress policy; the
	// endpoint itself is the operator's, so private addresses stay allowed).
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = egress.Policy{}.Dialer(30 * time.Second).DialContext
	s3 := objstore.NewS3(objstore.S3Config{Endpoint: cfg.S3Endpoint, PathStyle: cfg.S3PathStyle, Region: region, Credentials: creds,
		HTTPClient: &http.Client{Timeout: time.Minute, Transport: tr}})
	style := "virtual-hosted"
	if cfg.S3PathStyle {
		style = "path-style"
	}
	return s3, fmt.Sprintf("delivered to the S3 endpoint %s (%s, region %s)", cfg.S3Endpoint, style, region), nil
}

// s3Credentials follows the standard AWS chain. Keys in the server's environment come first
// (tests hand kvsd an environment of their own); otherwise the SDK's default chain (shared
// config and credentials files, SSO, container and instance roles) decides.
func s3Credentials(ctx context.Context, getenv func(string) string) (aws.CredentialsProvider, string, error) {
	region := getenv("AWS_REGION")
	if region == "" {
		region = getenv("AWS_DEFAULT_REGION")
	}
	if id := getenv("AWS_ACCESS_KEY_ID"); id != "" {
		return credentials.NewStaticCredentialsProvider(id, getenv("AWS_SECRET_ACCESS_KEY"), getenv("AWS_SESSION_TOKEN")), region, nil
	}
	c, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("--s3-endpoint: loading AWS credentials: %w", err)
	}
	if region == "" {
		region = c.Region
	}
	return c.Credentials, region, nil
}

// newDecoder adapts the media package (cgo) to imagegen's Decoder.
func newDecoder(codecID string, codecPrivate []byte) (imagegen.Decoder, error) {
	d, err := media.NewDecoder(codecID, codecPrivate)
	if err != nil {
		return nil, err
	}
	return d, nil
}
