package fragstore_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/catalog"
	"github.com/kvsd/kvsd/internal/catalog/postgres"
	"github.com/kvsd/kvsd/internal/catalog/postgres/pgtest"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/fragstore/s3media"
	"github.com/kvsd/kvsd/internal/objstore/s3test"
)

// node is one kvsd's store over the shared catalog and bucket.
type node struct {
	db *postgres.DB
	s  *fragstore.Store
}

func openNode(t *testing.T, pgURL string, srv *s3test.Server) node {
	t.Helper()
	db, err := postgres.Open(ctx, postgres.Config{URL: pgURL})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	s, err := fragstore.Open(fragstore.Config{Media: newMedia(t, srv), Index: db})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return node{db: db, s: s}
}

func newMedia(t *testing.T, srv *s3test.Server) *s3media.Media {
	t.Helper()
	m, err := s3media.Open(s3media.Config{Client: srv.Client(), Bucket: "media", Prefix: "kvsd"})
	require.NoError(t, err)
	return m
}

func (n node) write(t *testing.T, k fragstore.Key, epoch, seq uint64) *fragstore.Commit {
	t.Helper()
	c, err := n.s.WriteFenced(ctx, k, epoch, header, frag(k, seq), media(seq))
	require.NoError(t, err, "the media write is not fenced: only the commit is")
	<-c.Done()
	return c
}

// TestFencedWrites is a stream moving from node A to node B on PostgreSQL and S3: A's lease
// lapses, B acquires the stream and writes; A's late fragment reaches media but its commit is
// refused, so it is never acknowledged and never listed, while A's other stream commits in the
// same group commit and B goes on.
func TestFencedWrites(t *testing.T) {
	pgURL := pgtest.NewDatabase(t)
	srv := s3test.Start(t)
	srv.CreateBucket(t, "media")
	a, b := openNode(t, pgURL, srv), openNode(t, pgURL, srv)
	other := fragstore.Key{Name: "cam-2", CreatedMs: 1700000000456}

	la, err := a.db.AcquireLease(ctx, key.Name, "node-a", time.Microsecond) // lapses at once
	require.NoError(t, err)
	lo, err := a.db.AcquireLease(ctx, other.Name, "node-a", time.Hour)
	require.NoError(t, err)
	require.NoError(t, a.write(t, key, la.Epoch, 1).Err())

	lb, err := b.db.AcquireLease(ctx, key.Name, "node-b", time.Hour)
	require.NoError(t, err)
	require.NoError(t, b.write(t, key, lb.Epoch, 2).Err())

	// A, paused past its lease, resumes: its fragment 3 and its other stream's fragment are
	// queued together (one group commit, or two: each entry is judged on its own either way).
	c3, err := a.s.WriteFenced(ctx, key, la.Epoch, header, frag(key, 3), media(3))
	require.NoError(t, err)
	co, err := a.s.WriteFenced(ctx, other, lo.Epoch, header, frag(other, 1), media(1))
	require.NoError(t, err)
	<-c3.Done()
	<-co.Done()
	require.ErrorIs(t, c3.Err(), catalog.ErrFenced)
	require.NoError(t, co.Err(), "another stream's entry in the same group commit")

	last, err := b.s.LastSeq(ctx, key)
	require.NoError(t, err)
	require.Equal(t, uint64(2), last, "nothing of A's commit is stored")
	require.NoError(t, b.write(t, key, lb.Epoch, 3).Err(), "B writes sequence 3 itself")

	for _, n := range []node{a, b} { // every node reads the same, B's fragment 3 included
		fs, err := n.s.After(ctx, key, 0, 10)
		require.NoError(t, err)
		require.Len(t, fs, 3)
		for _, f := range fs {
			got, err := n.s.Media(ctx, key, f)
			require.NoError(t, err)
			require.True(t, bytes.Equal(media(f.Seq), got), "media of %d", f.Seq)
		}
	}

	// A, having lost the stream, reads its last sequence from the index again: a write
	// below it is refused before any media is written.
	_, err = a.s.WriteFenced(ctx, key, la.Epoch, header, frag(key, 3), media(3))
	require.ErrorContains(t, err, "is not after the last stored 3")
}

// A node starting while another writes: with Shared its store's Open deletes nothing, so a
// fragment whose media is stored and whose commit is still to come survives; without it
// (a single node's recovery) that media would be cut as never committed.
func TestSharedOpenRepairsNothing(t *testing.T) {
	pgURL := pgtest.NewDatabase(t)
	srv := s3test.Start(t)
	srv.CreateBucket(t, "media")
	a := openNode(t, pgURL, srv)
	a.write(t, key, 0, 1)
	// Fragment 2's media is stored by the writing node, its commit not yet made.
	m := newMedia(t, srv)
	loc, err := m.Append(ctx, key, fragstore.Record{Seq: 2, Time: frag(key, 2).ServerTime, Meta: []byte("{}"), Data: media(2)})
	require.NoError(t, err)

	db, err := postgres.Open(ctx, postgres.Config{URL: pgURL})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	shared, err := fragstore.Open(fragstore.Config{Media: newMedia(t, srv), Index: db, Shared: true})
	require.NoError(t, err)
	require.NoError(t, shared.Close())
	got, err := m.Read(ctx, key, loc)
	require.NoError(t, err, "the other node's fragment in flight is still there")
	require.True(t, bytes.Equal(media(2), got))

	single, err := fragstore.Open(fragstore.Config{Media: newMedia(t, srv), Index: db})
	require.NoError(t, err)
	require.NoError(t, single.Close())
	_, err = m.Read(ctx, key, loc)
	require.ErrorIs(t, err, fragstore.ErrNotFound, "a single node's recovery removes media never committed")
}
