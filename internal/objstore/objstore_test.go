package objstore_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/objstore"
	"github.com/kvsd/kvsd/internal/objstore/s3test"
)

var meta = map[string]string{
	"aws_kinesisvideo_fragment_number":    "91343852333181432392682062607743920146159169392",
	"aws_kinesisvideo_producer_timestamp": "1690707290324",
	"zone":                                "A-1",
}

func TestDirPutWritesObjectAndMetadata(t *testing.T) {
	root := t.TempDir()
	d := &objstore.Dir{Root: root}
	ctx := context.Background()
	require.NoError(t, d.Put(ctx, "images", "cam/1/x_1.jpg", []byte("jpeg"), "image/jpeg", meta))
	body, err := os.ReadFile(filepath.Join(root, "images", "cam", "1", "x_1.jpg"))
	require.NoError(t, err)
	require.Equal(t, "jpeg", string(body))
	m, err := d.ReadMetadata("images", "cam/1/x_1.jpg")
	require.NoError(t, err)
	require.Equal(t, objstore.Metadata{ContentType: "image/jpeg", Metadata: meta}, m)

	// A second put replaces; nothing temporary stays behind.
	require.NoError(t, d.Put(ctx, "images", "cam/1/x_1.jpg", []byte("jpeg2"), "image/png", nil))
	body, _ = os.ReadFile(filepath.Join(root, "images", "cam", "1", "x_1.jpg"))
	require.Equal(t, "jpeg2", string(body))
	entries, err := os.ReadDir(filepath.Join(root, "images", "cam", "1"))
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.Equal(t, []string{"x_1.jpg", "x_1.jpg.metadata.json"}, names)
	require.NoError(t, d.Sync(ctx))
	require.NoError(t, (&objstore.Dir{Root: filepath.Join(root, "never-used")}).Sync(ctx), "nothing to sync")
}

func TestDirRefusesNamesOutsideTheBucket(t *testing.T) {
	root := t.TempDir()
	d := &objstore.Dir{Root: root}
	for _, c := range []struct{ bucket, key, code string }{
		{"..", "k", "InvalidBucketName"},
		{"a/b", "k", "InvalidBucketName"},
		{"Images", "k", "InvalidBucketName"},
		{"images", "../escape", "InvalidObjectName"},
		{"images", "a/../../escape", "InvalidObjectName"},
		{"images", "/abs", "InvalidObjectName"},
		{"images", "a//b", "InvalidObjectName"},
		{"images", "x.metadata.json", "InvalidObjectName"},
		{"images", "", "KeyTooLongError"},
		{"images", strings.Repeat("k", 1025), "KeyTooLongError"},
	} {
		err := d.Put(context.Background(), c.bucket, c.key, []byte("x"), "image/jpeg", nil)
		require.Error(t, err, "%s/%s", c.bucket, c.key)
		require.Equal(t, c.code, objstore.Code(err), "%s/%s: %v", c.bucket, c.key, err)
		require.True(t, objstore.IsPermanent(err))
	}
	entries, _ := os.ReadDir(root)
	require.Empty(t, entries, "nothing written")
}

func TestDirPermissionDeniedIsPermanent(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory permissions")
	}
	root := t.TempDir()
	require.NoError(t, os.Chmod(root, 0o500))
	t.Cleanup(func() { _ = os.Chmod(root, 0o700) })
	err := (&objstore.Dir{Root: root}).Put(context.Background(), "images", "k.jpg", []byte("x"), "image/jpeg", nil)
	require.Equal(t, "AccessDenied", objstore.Code(err))
	require.True(t, objstore.IsPermanent(err))
}

func newS3(srv *s3test.Server, key, secret string) *objstore.S3 {
	return objstore.NewS3(objstore.S3Config{Endpoint: srv.Endpoint, PathStyle: true, Region: s3test.Region,
		Credentials: credentials.NewStaticCredentialsProvider(key, secret, "")})
}

// TestS3AgainstVersitygw puts through the SDK to a real S3 server and reads the object back,
// then provokes the error codes the generator classifies.
func TestS3AgainstVersitygw(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "images")
	s := newS3(srv, s3test.AccessKeyID, s3test.SecretAccessKey)
	ctx := context.Background()

	body := bytes.Repeat([]byte{0xff, 0xd8, 1, 2}, 1000)
	m := map[string]string{"zone": "A-1", "city": "Zürich"}
	require.NoError(t, s.Put(ctx, "images", "path/a_1.jpg", body, "image/jpeg", m))
	got := srv.Get(t, "images", "path/a_1.jpg")
	require.Equal(t, body, got.Body)
	require.Equal(t, "image/jpeg", got.ContentType)
	require.Equal(t, "A-1", got.Metadata["zone"])
	require.NotEmpty(t, got.Metadata["city"], "non-ASCII metadata is sent RFC 2047-encoded")
	// Same key again: replaced, not duplicated.
	require.NoError(t, s.Put(ctx, "images", "path/a_1.jpg", []byte("x"), "image/jpeg", nil))
	require.Equal(t, []string{"path/a_1.jpg"}, srv.Keys(t, "images"))

	err := s.Put(ctx, "missing-bucket", "k", []byte("x"), "image/jpeg", nil)
	require.Equal(t, "NoSuchBucket", objstore.Code(err), "%v", err)
	require.True(t, objstore.IsPermanent(err))

	err = newS3(srv, "AKIAUNKNOWNKEY000001", "nope").Put(ctx, "images", "k", []byte("x"), "image/jpeg", nil)
	// AWS answers InvalidAccessKeyId; versitygw its own code, still a 403.
	require.Contains(t, []string{"InvalidAccessKeyId", "XAdminUserNotFound"}, objstore.Code(err), "%v", err)
	require.True(t, objstore.IsPermanent(err))

	err = newS3(srv, s3test.AccessKeyID, "wrong-secret").Put(ctx, "images", "k", []byte("x"), "image/jpeg", nil)
	require.Equal(t, "SignatureDoesNotMatch", objstore.Code(err), "%v", err)
	require.True(t, objstore.IsPermanent(err))

	// An outage is transient.
	srv.Stop()
	ctx2, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err = s.Put(ctx2, "images", "k", []byte("x"), "image/jpeg", nil)
	require.Equal(t, "NetworkError", objstore.Code(err), "%v", err)
	require.False(t, objstore.IsPermanent(err))
	srv.Resume(t)
	require.NoError(t, s.Put(ctx, "images", "after-outage", []byte("x"), "image/jpeg", nil))
}

func TestCodeOfUnclassifiedErrors(t *testing.T) {
	require.Equal(t, "", objstore.Code(nil))
	require.Equal(t, "Error", objstore.Code(context.DeadlineExceeded))
	require.False(t, objstore.IsPermanent(context.Canceled))
}
