package bolt

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"github.com/kvsd/kvsd/internal/catalog"
	"github.com/kvsd/kvsd/internal/catalog/catalogtest"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/stream"
)

func openTemp(t testing.TB) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "catalog.db")
	db, err := Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db, path
}

func TestCatalog(t *testing.T) {
	catalogtest.Run(t, func(t *testing.T) catalog.Catalog {
		db, _ := openTemp(t)
		return db
	})
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "catalog.db")
	db, err := Open(path)
	require.NoError(t, err)
	want := &stream.Stream{
		Name: "cam", ARN: "arn", Version: "v1", Status: stream.StatusActive,
		CreationTime: time.UnixMilli(1700000000123).UTC(), RetentionHours: 5,
		Tags: map[string]string{"k": "v"}, StorageTier: "HOT",
	}
	require.NoError(t, db.CreateStream(ctx, want))
	require.NoError(t, db.Close())

	db, err = Open(path)
	require.NoError(t, err)
	defer db.Close()
	got, err := db.GetStream(ctx, "cam")
	require.NoError(t, err)
	assert.Equal(t, want, got)
}

func TestSecondOpenFailsFast(t *testing.T) {
	_, path := openTemp(t)
	start := time.Now()
	db, err := Open(path)
	if db != nil {
		_ = db.Close()
	}
	require.ErrorContains(t, err, "data dir is in use by another kvsd process")
	assert.Less(t, time.Since(start), 3*time.Second)
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	raw, err := bbolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, raw.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		return b.Put(keySchema, []byte("99"))
	}))
	require.NoError(t, raw.Close())

	db, err := Open(path)
	if db != nil {
		_ = db.Close()
	}
	require.ErrorContains(t, err, "schema version 99 is newer than this kvsd supports (1)")
}

func TestCanceledContext(t *testing.T) {
	db, _ := openTemp(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := db.GetStream(ctx, "cam")
	assert.ErrorIs(t, err, context.Canceled)
}

func benchDB(b *testing.B) *DB {
	db, _ := openTemp(b)
	require.NoError(b, db.CreateStream(context.Background(), &stream.Stream{
		Name: "cam", ARN: "arn", Version: "v1", Status: stream.StatusActive,
		CreationTime: time.UnixMilli(1700000000123), Tags: map[string]string{"k": "v"}, StorageTier: "HOT",
	}))
	return db
}

// BenchmarkUpdateStream includes bbolt's fsync per commit, the real cost of a control-plane write.
func BenchmarkUpdateStream(b *testing.B) {
	db, ctx := benchDB(b), context.Background()
	for b.Loop() {
		if _, err := db.UpdateStream(ctx, "cam", func(s *stream.Stream) error {
			s.RetentionHours++
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetStream(b *testing.B) {
	db, ctx := benchDB(b), context.Background()
	for b.Loop() {
		if _, err := db.GetStream(ctx, "cam"); err != nil {
			b.Fatal(err)
		}
	}
}

// A stream created by a build that did not note creation times (no entry in bucket created) is
// noted when it is deleted, so one created again in its millisecond still gets a later time.
func TestCreationTimeOfOlderFileNotedAtDelete(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	old := &stream.Stream{Name: "cam", ARN: stream.FormatARN("us-east-1", "1", "cam", time.UnixMilli(1700000000123)),
		Version: "v1", Status: stream.StatusActive, CreationTime: time.UnixMilli(1700000000123)}
	require.NoError(t, db.CreateStream(ctx, old))
	require.NoError(t, db.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketCreated).Delete([]byte("cam")) }))
	require.NoError(t, db.DeleteStream(ctx, "cam", nil))

	again := &stream.Stream{Name: "cam", ARN: old.ARN, Version: "v2", Status: stream.StatusActive, CreationTime: old.CreationTime}
	require.NoError(t, db.CreateStream(ctx, again))
	assert.Equal(t, int64(1700000000124), again.CreationTime.UnixMilli())
	assert.Equal(t, "arn:aws:kinesisvideo:us-east-1:1:stream/cam/1700000000124", again.ARN)
}

// The embedded catalog has no other node to fence off (catalog.Leases): every acquisition is
// granted with a higher epoch, and commits under any epoch go through, so the single node's
// ingest behaves as before leases existed.
func TestLeasesAreTrivial(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	a, err := db.AcquireLease(ctx, "cam", "node-a", time.Hour)
	require.NoError(t, err)
	b, err := db.AcquireLease(ctx, "cam", "node-b", time.Hour)
	require.NoError(t, err, "no ErrLeaseHeld on a single node")
	assert.Greater(t, b.Epoch, a.Epoch)
	_, err = db.RenewLease(ctx, a, time.Hour)
	require.NoError(t, err)
	renewed, lost, err := db.RenewLeases(ctx, []catalog.Lease{a, b}, time.Hour)
	require.NoError(t, err)
	require.Len(t, renewed, 2, "even a's grant, which b's acquisition replaced")
	assert.Equal(t, a.Epoch, renewed[0].Epoch)
	assert.Empty(t, lost)
	require.NoError(t, db.ReleaseLease(ctx, a))

	k := catalog.Key{Name: "cam", CreatedMs: 1}
	f := &fragment.Fragment{Seq: 1, Number: fragment.FormatNumber(1, 1), HeaderID: "h", ProducerTime: time.UnixMilli(1), ServerTime: time.UnixMilli(1)}
	require.NoError(t, db.PutFragments(ctx, []catalog.Put{{Key: k, Fragment: f, Header: []byte("h"), Epoch: a.Epoch}}), "any epoch commits")
}
