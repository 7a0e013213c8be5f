package orphans_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/catalog"
	"github.com/kvsd/kvsd/internal/catalog/postgres"
	"github.com/kvsd/kvsd/internal/catalog/postgres/pgtest"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/fragstore/s3media"
	"github.com/kvsd/kvsd/internal/objstore/s3test"
	"github.com/kvsd/kvsd/internal/orphans"
	"github.com/kvsd/kvsd/internal/stream"
)

var ctx = context.Background()

// node is one kvsd's view of the shared catalog and bucket.
type node struct {
	db    *postgres.DB
	media *s3media.Media
	store *fragstore.Store
}

func openNode(t *testing.T, pgURL string, srv *s3test.Server) node {
	t.Helper()
	db, err := postgres.Open(ctx, postgres.Config{URL: pgURL})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	m, err := s3media.Open(s3media.Config{Client: srv.Client(), Bucket: "media", Prefix: "site-a"})
	require.NoError(t, err)
	st, err := fragstore.Open(fragstore.Config{Media: m, Index: db, Shared: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return node{db: db, media: m, store: st}
}

func (n node) sweeper(holder string, now func() time.Time) *orphans.Sweeper {
	return orphans.New(orphans.Config{Streams: n.db, Index: n.db, Media: n.media, Leases: n.db, Holder: holder, Now: now})
}

var base = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

func frag(k fragstore.Key, seq uint64) *fragment.Fragment {
	p := base.Add(time.Duration(seq) * time.Second)
	return &fragment.Fragment{Seq: seq, Number: fragment.FormatNumber(k.CreatedMs, seq), Timecode: uint64(p.UnixMilli()),
		ProducerTime: p, ServerTime: p, Duration: time.Second, HeaderID: "hdr"}
}

func write(t *testing.T, n node, k fragstore.Key, epoch, seq uint64) error {
	t.Helper()
	c, err := n.store.WriteFenced(ctx, k, epoch, []byte("header"), frag(k, seq), []byte{byte(seq), 1, 2, 3})
	require.NoError(t, err)
	<-c.Done()
	return c.Err()
}

// A node that lost its stream wrote a fragment's object but its commit was fenced: the object
// is an orphan. The sweep, on whichever node holds the cluster's orphan lease, deletes it once
// older than MinAge and leaves every object the index names, which all nodes still read; a
// younger orphan stays (it could be a commit in progress); the other node's sweep is refused
// while the first holds the lease.
func TestSweepDeletesOnlyOldUnreferencedObjects(t *testing.T) {
	pgURL := pgtest.NewDatabase(t)
	srv := s3test.Start(t)
	srv.CreateBucket(t, "media")
	a, b := openNode(t, pgURL, srv), openNode(t, pgURL, srv)
	retention := 24
	_, err := (&stream.Service{Store: a.db, Region: "us-east-1", AccountID: "111122223333"}).Create(ctx, stream.CreateInput{Name: "cam", RetentionHours: &retention})
	require.NoError(t, err)
	st, err := a.db.GetStream(ctx, "cam")
	require.NoError(t, err)
	k := fragstore.KeyOf(st)

	// a writes fragment 1, loses the stream to b (its lease lapsed), b writes 2 and 3, and
	// a's late fragment 2 reaches the bucket but not the index.
	la, err := a.db.AcquireLease(ctx, "cam", "node-a", time.Microsecond)
	require.NoError(t, err)
	require.NoError(t, write(t, a, k, la.Epoch, 1))
	lb, err := b.db.AcquireLease(ctx, "cam", "node-b", time.Hour)
	require.NoError(t, err)
	require.NoError(t, write(t, b, k, lb.Epoch, 2))
	require.NoError(t, write(t, b, k, lb.Epoch, 3))
	require.ErrorIs(t, write(t, a, k, la.Epoch, 2), catalog.ErrFenced)
	// And an object of seq 4 nobody committed (a node killed between PUT and commit).
	_, err = a.media.Append(ctx, k, fragstore.Record{Seq: 4, Time: base, Data: []byte("lost")})
	require.NoError(t, err)
	recs, err := a.media.Records(ctx, k)
	require.NoError(t, err)
	require.Len(t, recs, 5)

	// Young orphans stay.
	r, err := a.sweeper("node-a", time.Now).Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 0, r.Deleted)
	require.Equal(t, 5, r.Objects)

	// a holds the lease until its next sweep: b's is refused.
	_, err = b.sweeper("node-b", time.Now).Sweep(ctx)
	require.ErrorIs(t, err, orphans.ErrBusy)

	// An hour and more later (a's clock), a's next sweep deletes both orphans.
	later := func() time.Time { return time.Now().Add(orphans.DefaultMinAge + time.Minute) }
	r, err = a.sweeper("node-a", later).Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, r.Deleted, "a's fenced fragment 2 and the uncommitted 4")
	left, err := a.media.Records(ctx, k)
	require.NoError(t, err)
	require.Len(t, left, 3)
	for _, n := range []node{a, b} {
		frags, err := n.store.After(ctx, k, 0, 10)
		require.NoError(t, err)
		require.Len(t, frags, 3)
		for _, f := range frags {
			got, err := n.store.Media(ctx, k, f)
			require.NoError(t, err, "fragment %d", f.Seq)
			require.Equal(t, byte(f.Seq), got[0])
		}
	}

	// The lease lapses (a died): b takes the sweep over and finds nothing more to delete.
	_, err = a.db.Pool().Exec(ctx, `UPDATE stream_leases SET expires_at = now() - interval '1 second' WHERE stream = $1`, orphans.LeaseName)
	require.NoError(t, err)
	r, err = b.sweeper("node-b", later).Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 0, r.Deleted)
	require.Equal(t, 3, r.Objects)
}

// A stream deleted from the catalog by a node that died before it deleted the stream's objects:
// the sweep deletes them once they are older than MinAge, and leaves alone the objects of the
// streams the catalog has and whatever else the bucket holds outside kvsd's stream prefixes.
func TestSweepDeletesObjectsOfDeletedStreams(t *testing.T) {
	pgURL := pgtest.NewDatabase(t)
	srv := s3test.Start(t)
	srv.CreateBucket(t, "media")
	a := openNode(t, pgURL, srv)
	retention := 24
	streams := &stream.Service{Store: a.db, Region: "us-east-1", AccountID: "111122223333"}
	keys := map[string]fragstore.Key{}
	for _, name := range []string{"kept", "gone"} {
		_, err := streams.Create(ctx, stream.CreateInput{Name: name, RetentionHours: &retention})
		require.NoError(t, err)
		st, err := a.db.GetStream(ctx, name)
		require.NoError(t, err)
		keys[name] = fragstore.KeyOf(st)
		l, err := a.db.AcquireLease(ctx, name, "node-a", time.Hour)
		require.NoError(t, err)
		for seq := uint64(1); seq <= 3; seq++ {
			require.NoError(t, write(t, a, keys[name], l.Epoch, seq))
		}
	}
	_, err := srv.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("media"), Key: aws.String("site-a/not-kvsd/0001.rec"), Body: strings.NewReader("x")})
	require.NoError(t, err)
	// The catalog forgets "gone"; its objects stay (the deleting node died).
	require.NoError(t, a.db.DeleteStream(ctx, "gone", nil))
	_, err = a.db.GetStream(ctx, "gone")
	require.ErrorIs(t, err, stream.ErrNotFound)

	r, err := a.sweeper("node-a", time.Now).Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 0, r.Deleted, "young objects stay")
	require.Equal(t, 6, r.Objects)

	_, err = a.db.Pool().Exec(ctx, `UPDATE stream_leases SET expires_at = now() - interval '1 second' WHERE stream = $1`, orphans.LeaseName)
	require.NoError(t, err)
	later := func() time.Time { return time.Now().Add(orphans.DefaultMinAge + time.Minute) }
	r, err = a.sweeper("node-a", later).Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, r.Deleted, "the deleted stream's objects")
	left := srv.Keys(t, "media")
	require.Len(t, left, 4, "the kept stream's 3 objects and the object that is not kvsd's: %v", left)
	require.Contains(t, left, "site-a/not-kvsd/0001.rec")
	recs, err := a.media.Records(ctx, keys["kept"])
	require.NoError(t, err)
	require.Len(t, recs, 3)
}
