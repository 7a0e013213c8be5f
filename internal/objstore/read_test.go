package objstore_test

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/objstore"
	"github.com/kvsd/kvsd/internal/objstore/s3test"
)

// readBack puts a folder of objects and checks List, Head and Open of r against them: one
// folder level, key order, the prefix's last segment as a name filter, metadata, NoSuchKey.
func readBack(t *testing.T, s objstore.Store, r objstore.Reader) {
	ctx := context.Background()
	for _, k := range []string{"cam/b.jpg", "cam/a.jpg", "cam/sub/c.jpg", "cam/x_d.png", "other/e.jpg", "top.jpg"} {
		require.NoError(t, s.Put(ctx, "images", k, []byte("body of "+k), "image/jpeg", map[string]string{"zone": "A"}))
	}
	keys := func(prefix string) []string {
		objs, err := r.List(ctx, "images", prefix)
		require.NoError(t, err)
		var out []string
		for _, o := range objs {
			out = append(out, o.Key)
			require.Equal(t, int64(len("body of ")+len(o.Key)), o.Size, o.Key)
		}
		return out
	}
	require.Equal(t, []string{"cam/a.jpg", "cam/b.jpg", "cam/x_d.png"}, keys("cam/"))
	require.Equal(t, []string{"cam/x_d.png"}, keys("cam/x_"))
	require.Equal(t, []string{"top.jpg"}, keys(""))
	require.Empty(t, keys("nothing/"))

	m, err := r.Head(ctx, "images", "cam/a.jpg")
	require.NoError(t, err)
	require.Equal(t, "image/jpeg", m.ContentType)
	require.Equal(t, "A", m.Metadata["zone"])
	body, m, err := r.Open(ctx, "images", "cam/b.jpg")
	require.NoError(t, err)
	b, err := io.ReadAll(body)
	require.NoError(t, err)
	require.NoError(t, body.Close())
	require.Equal(t, "body of cam/b.jpg", string(b))
	require.Equal(t, "A", m.Metadata["zone"])

	_, err = r.Head(ctx, "images", "cam/missing.jpg")
	require.True(t, errors.Is(err, objstore.ErrNoSuchKey), "%v", err)
	_, _, err = r.Open(ctx, "images", "cam/missing.jpg")
	require.True(t, errors.Is(err, objstore.ErrNoSuchKey), "%v", err)
}

func TestDirReadBack(t *testing.T) {
	d := &objstore.Dir{Root: t.TempDir()}
	readBack(t, d, d)
	_, err := d.List(context.Background(), "images", "../../etc/")
	require.Error(t, err)
	_, err = d.List(context.Background(), "NOT_A_BUCKET", "")
	require.Equal(t, "InvalidBucketName", objstore.Code(err))
}

func TestS3ReadBack(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "images")
	s := newS3(srv, s3test.AccessKeyID, s3test.SecretAccessKey)
	readBack(t, s, s)
}
