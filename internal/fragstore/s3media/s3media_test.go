package s3media

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/fragstore/mediatest"
	"github.com/kvsd/kvsd/internal/keys"
	"github.com/kvsd/kvsd/internal/objstore/s3test"
)

// TestMedia runs the conformance suite against versitygw, each subtest in its own bucket;
// the prefix makes every key go through the layout's prefix handling.
// Records are sealed, as kvsd writes them; the suite runs in clear too (Config.Keys nil).
func TestMedia(t *testing.T) {
	srv := s3test.Start(t)
	n := 0
	for _, sealed := range []bool{true, false} {
		t.Run(fmt.Sprintf("sealed=%v", sealed), func(t *testing.T) {
			mediatest.TestMedia(t, func(t *testing.T) mediatest.Backend {
				n++
				bucket := fmt.Sprintf("media-%d", n)
				srv.CreateBucket(t, bucket)
				var ring Keys
				if sealed {
					ring = testRing(t, t.TempDir())
				}
				return func() (fragstore.Media, error) {
					return Open(Config{Client: srv.Client(), Bucket: bucket, Prefix: "kvsd/media", Keys: ring})
				}
			})
		})
	}
}

// testRing is a key ring over a key file in dir, as kvsd makes on first start.
func testRing(t testing.TB, dir string) *keys.Ring {
	t.Helper()
	f, err := keys.LoadFile(filepath.Join(dir, keys.DefaultKeyFile), true)
	require.NoError(t, err)
	return keys.NewRing(f, nil)
}

var (
	ctx = context.Background()
	key = fragstore.Key{Name: "cam-1", CreatedMs: 1700000000123}
	t0  = time.UnixMilli(1700000100000).UTC()
)

func newMedia(t *testing.T) (*s3test.Server, *Media) {
	t.Helper()
	srv := s3test.Start(t)
	srv.CreateBucket(t, "media")
	m, err := Open(Config{Client: srv.Client(), Bucket: "media", Prefix: "/kvsd/", Keys: testRing(t, t.TempDir())})
	require.NoError(t, err)
	return srv, m
}

func rec(seq uint64, data string, at time.Time) fragstore.Record {
	return fragstore.Record{Seq: seq, Time: at, Meta: []byte(`{"v":1}`), Data: []byte(data)}
}

// versitygw v1.8.0 honours If-None-Match: * on PutObject: a second PUT of a key is refused
// with 412 and the first object stays.
func TestServerHonoursIfNoneMatch(t *testing.T) {
	srv, _ := newMedia(t)
	c := srv.Client()
	putOnce := func(body string) error {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("media"), Key: aws.String("k"),
			Body: strings.NewReader(body), IfNoneMatch: aws.String("*")})
		return err
	}
	require.NoError(t, putOnce("first"))
	err := putOnce("second")
	require.Error(t, err)
	require.Equal(t, http.StatusPreconditionFailed, httpStatus(err), "%v", err)
	require.Equal(t, []byte("first"), srv.Get(t, "media", "k").Body)
}

// An object is never replaced: the same bytes again (a retried PUT whose answer was lost)
// are accepted, other bytes under the key are refused with ErrObjectExists.
func TestPutNeverReplaces(t *testing.T) {
	srv, m := newMedia(t)
	put := func(body string) error {
		_, err := m.put(ctx, "kvsd/x", []byte(body))
		return err
	}
	require.NoError(t, put("fragment"))
	require.NoError(t, put("fragment"), "a retry of the same write")
	require.ErrorIs(t, put("another writer's"), ErrObjectExists)
	require.Equal(t, []byte("fragment"), srv.Get(t, "media", "kvsd/x").Body)
}

// The key layout of docs/format/media-s3.md: stream, segment and seq in the key, the segment
// numbered by its first record's seq.
func TestKeyLayout(t *testing.T) {
	srv, m := newMedia(t)
	for i, at := range []time.Time{t0, t0.Add(2 * time.Second), t0.Add(time.Minute)} {
		_, err := m.Append(ctx, key, rec(uint64(i+1), "data", at))
		require.NoError(t, err)
	}
	require.Equal(t, []string{
		"kvsd/1700000000123_cam-1/00000000000000000001/00000000000000000001.rec",
		"kvsd/1700000000123_cam-1/00000000000000000001/00000000000000000002.rec",
		"kvsd/1700000000123_cam-1/00000000000000000003/00000000000000000003.rec",
	}, srv.Keys(t, "media"))
}

// A node taking over a stream (a second Media over the same bucket, as after a failover)
// starts a segment above every segment the stream has, so the two writers' objects never
// share a segment or a key, and the old node's objects stay readable.
func TestTakeoverStartsAHigherSegment(t *testing.T) {
	srv, a := newMedia(t)
	la, err := a.Append(ctx, key, rec(1, "from a", t0))
	require.NoError(t, err)
	b, err := Open(Config{Client: srv.Client(), Bucket: "media", Prefix: "kvsd", Keys: a.keys})
	require.NoError(t, err)
	lb, err := b.Append(ctx, key, rec(2, "from b", t0.Add(time.Second)))
	require.NoError(t, err)
	require.Greater(t, lb.Segment, la.Segment)
	for _, tc := range []struct {
		loc  fragstore.Location
		want string
	}{{la, "from a"}, {lb, "from b"}} {
		got, err := b.Read(ctx, key, tc.loc)
		require.NoError(t, err)
		require.Equal(t, tc.want, string(got))
	}
}

// A stored object damaged on the server fails its checksum: ErrCorrupt, never wrong bytes.
func TestReadDetectsDamage(t *testing.T) {
	srv, m := newMedia(t)
	loc, err := m.Append(ctx, key, rec(1, "fragment media", t0))
	require.NoError(t, err)
	path := filepath.Join(srv.Dir, "media", m.objectKey(key, loc.Segment, 1))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	h, err := decodeHeader(key, loc, b)
	require.NoError(t, err)
	b[h.len+nonceLen] ^= 0xff // the first sealed byte
	require.NoError(t, os.WriteFile(path, b, 0o600))
	_, err = m.Read(ctx, key, loc)
	require.ErrorIs(t, err, fragstore.ErrCorrupt)
	_, err = m.TruncateAfter(ctx, key, loc)
	require.ErrorIs(t, err, fragstore.ErrCorrupt)
}

// No object holds the media in clear: the objects hold none of a record's bytes beyond the
// header's, while every record reads back.
func TestObjectsAreSealed(t *testing.T) {
	srv, m := newMedia(t)
	data := strings.Repeat("frame bytes of the producer. ", 40)
	loc, err := m.Append(ctx, key, rec(1, data, t0))
	require.NoError(t, err)
	obj := srv.Get(t, "media", m.objectKey(key, loc.Segment, 1)).Body
	require.NotContains(t, string(obj), data[:64])
	got, err := m.Read(ctx, key, loc)
	require.NoError(t, err)
	require.Equal(t, data, string(got))
}

// Keys: an object sealed under a key file another node lacks fails with the key's error
// (keys.NotFound, KVS's 4506 KMS_KEY_NOT_FOUND, as on disk), one read without keys with errNoKeys; nothing is
// lost: with the right key file it reads again. Objects stored in clear (version 1, before
// encryption) stay readable by a Media with keys.
func TestKeyErrors(t *testing.T) {
	srv, m := newMedia(t)
	loc, err := m.Append(ctx, key, rec(1, "sealed media", t0))
	require.NoError(t, err)

	other, err := Open(Config{Client: srv.Client(), Bucket: "media", Prefix: "kvsd", Keys: testRing(t, t.TempDir())})
	require.NoError(t, err)
	_, err = other.Read(ctx, key, loc)
	require.ErrorIs(t, err, keys.ErrKey)
	code, _ := keys.CodeOf(err)
	require.Equal(t, keys.NotFound, code)
	require.NotErrorIs(t, err, fragstore.ErrCorrupt, "a key problem is not damage")

	none, err := Open(Config{Client: srv.Client(), Bucket: "media", Prefix: "kvsd"})
	require.NoError(t, err)
	_, err = none.Read(ctx, key, loc)
	require.ErrorIs(t, err, errNoKeys)

	got, err := m.Read(ctx, key, loc)
	require.NoError(t, err)
	require.Equal(t, "sealed media", string(got))

	clearKey := fragstore.Key{Name: "old", CreatedMs: 1}
	cl, err := none.Append(ctx, clearKey, rec(1, "stored in clear", t0))
	require.NoError(t, err)
	got, err = m.Read(ctx, clearKey, cl)
	require.NoError(t, err)
	require.Equal(t, "stored in clear", string(got))
}
