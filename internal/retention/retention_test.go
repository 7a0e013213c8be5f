package retention_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/catalog/bolt"
	"github.com/kvsd/kvsd/internal/catalog/postgres"
	"github.com/kvsd/kvsd/internal/catalog/postgres/pgtest"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/fragstore/disk"
	"github.com/kvsd/kvsd/internal/retention"
)

// node is one kvsd's sweeper: its own store, the cluster's leases in PostgreSQL.
type node struct {
	sw     *retention.Sweeper
	db     *postgres.DB
	cancel context.CancelFunc
	done   chan error
}

func startNode(t *testing.T, pgURL, holder string) *node {
	t.Helper()
	dir := t.TempDir()
	ix, err := bolt.Open(filepath.Join(dir, "catalog.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = ix.Close() })
	m, err := disk.Open(disk.Config{Dir: filepath.Join(dir, "media")})
	require.NoError(t, err)
	store, err := fragstore.Open(fragstore.Config{Media: m, Index: ix})
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	db, err := postgres.Open(context.Background(), postgres.Config{URL: pgURL})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })

	n := &node{db: db, done: make(chan error, 1),
		sw: &retention.Sweeper{Store: store, Catalog: ix, Interval: sweepInterval, Leases: db, Holder: holder}}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() { n.done <- n.sw.Run(ctx) }()
	t.Cleanup(n.stop)
	return n
}

// sweepInterval makes the lease 3 intervals long: long enough that a busy machine (the race
// detector, every package's tests at once) does not stall the holder's renewal past it, which
// handed the sweeps over while the holder was alive (1 run of make test in a few at 20 ms).
const sweepInterval = 100 * time.Millisecond

func (n *node) stop() {
	if n.cancel != nil {
		n.cancel()
		<-n.done
		n.cancel = nil
	}
}

// Two nodes on one catalog: one sweeps, the other does not while the first holds the
// cluster:retention lease; a node that stops hands the sweeps over at once, and one that dies
// (its catalog connection gone, nothing released) hands them over once its lease expired.
func TestOneSweeperPerCluster(t *testing.T) {
	pgURL := pgtest.NewDatabase(t)
	a := startNode(t, pgURL, "a")
	require.Eventually(t, func() bool { return a.sw.Sweeps() >= 1 }, 10*time.Second, 5*time.Millisecond)
	b := startNode(t, pgURL, "b")
	c := startNode(t, pgURL, "c")
	from := a.sw.Sweeps()
	require.Eventually(t, func() bool { return a.sw.Sweeps() >= from+10 }, 10*time.Second, 5*time.Millisecond)
	require.Zero(t, b.sw.Sweeps()+c.sw.Sweeps(), "only the lease holder sweeps")

	a.stop() // released: the next tick of another node takes over
	require.Eventually(t, func() bool { return b.sw.Sweeps()+c.sw.Sweeps() > 0 }, 10*time.Second, 5*time.Millisecond)
	holder, other := b, c
	if c.sw.Sweeps() > 0 {
		holder, other = c, b
	}
	from = holder.sw.Sweeps()
	require.Eventually(t, func() bool { return holder.sw.Sweeps() >= from+5 }, 10*time.Second, 5*time.Millisecond)
	require.Zero(t, other.sw.Sweeps(), "still one sweeper")

	// The holder dies: its catalog connections go first, so it releases nothing.
	require.NoError(t, holder.db.Close())
	holder.stop()
	dead := lease(t, other.db)
	require.Eventually(t, func() bool { return other.sw.Sweeps() > 0 }, 10*time.Second, 5*time.Millisecond)
	taken := lease(t, other.db)
	require.Greater(t, taken.epoch, dead.epoch)
	require.NotEqual(t, dead.holder, taken.holder)
	// The grant is for 3 intervals from the database's now(): it came once the dead one ended.
	ttl := 3 * sweepInterval
	require.False(t, taken.expires.Add(-ttl).Before(dead.expires), "taken over at %v, before the dead lease expired at %v",
		taken.expires.Add(-ttl), dead.expires)
}

type leaseRow struct {
	holder  string
	epoch   int64
	expires time.Time
}

func lease(t *testing.T, db *postgres.DB) leaseRow {
	t.Helper()
	var r leaseRow
	require.NoError(t, db.Pool().QueryRow(context.Background(), `SELECT holder, epoch, expires_at FROM stream_leases WHERE stream = $1`,
		retention.LeaseName).Scan(&r.holder, &r.epoch, &r.expires))
	return r
}
