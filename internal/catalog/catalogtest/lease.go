package catalogtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/catalog"
)

// Fenced is what TestLeases needs of a catalog: leases and the index they fence.
type Fenced interface {
	catalog.Index
	catalog.Leases
}

// TestLeases runs the catalog.Leases suite for catalogs shared between processes, where
// leases exclude and epochs fence. open must return an empty catalog; each writer in these
// tests stands for a node, each with its own view of the same catalog.
func TestLeases(t *testing.T, open func(t *testing.T) Fenced) {
	tests := []struct {
		name string
		fn   func(t *testing.T, c Fenced)
	}{
		{"Exclusive", testLeaseExclusive},
		{"StaleCommitRefused", testLeaseStaleCommit},
		{"ExpiryLetsANewHolderIn", testLeaseExpiry},
		{"Release", testLeaseRelease},
		{"EpochsNeverReused", testLeaseEpochs},
		{"ConcurrentAcquire", testLeaseConcurrent},
		{"FencedBatchStoresNothing", testLeaseFencedBatch},
		{"RenewBatch", testLeaseRenewBatch},
		{"RenewBatchEmpty", testLeaseRenewBatchEmpty},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

const long = time.Hour

// expired is a ttl that has passed by the time any later request reaches the catalog: the
// next transaction's now() is read a network round trip after this one's.
const expired = time.Microsecond

func acquire(t *testing.T, c Fenced, stream, holder string, ttl time.Duration) catalog.Lease {
	t.Helper()
	l, err := c.AcquireLease(context.Background(), stream, holder, ttl)
	require.NoError(t, err)
	require.Equal(t, stream, l.Stream)
	require.Equal(t, holder, l.Holder)
	require.NotZero(t, l.Epoch)
	return l
}

// fencedPut is seq of ixKey (stream ixKey.Name), committed under epoch.
func fencedPut(seq, epoch uint64) catalog.Put {
	off := time.Duration(seq) * 2 * time.Second
	return catalog.Put{Key: ixKey, Fragment: frag(ixKey, seq, off, off), Location: locOf(seq), Header: ixHdr, Epoch: epoch}
}

func requireFenced(t *testing.T, err error, epoch, current uint64) {
	t.Helper()
	require.ErrorIs(t, err, catalog.ErrFenced)
	var fe *catalog.FencedError
	require.True(t, errors.As(err, &fe), "a *catalog.FencedError: %v", err)
	require.Equal(t, ixKey.Name, fe.Stream)
	require.Equal(t, epoch, fe.Epoch)
	require.Equal(t, current, fe.Current)
}

func lastSeq(t *testing.T, c Fenced) uint64 {
	t.Helper()
	seq, _, err := c.LastFragment(context.Background(), ixKey)
	require.NoError(t, err)
	return seq
}

func testLeaseExclusive(t *testing.T, c Fenced) {
	ctx := context.Background()
	a := acquire(t, c, ixKey.Name, "node-a", long)
	_, err := c.AcquireLease(ctx, ixKey.Name, "node-b", long)
	require.ErrorIs(t, err, catalog.ErrLeaseHeld)
	require.ErrorContains(t, err, "node-a", "the error names the holder")

	// Other streams are free; the holder's renewal keeps its epoch.
	acquire(t, c, "other", "node-b", long)
	r, err := c.RenewLease(ctx, a, long)
	require.NoError(t, err)
	require.Equal(t, a.Epoch, r.Epoch)
	require.False(t, r.Expires.Before(a.Expires), "a renewal does not shorten the grant")
	require.NoError(t, c.PutFragments(ctx, []catalog.Put{fencedPut(1, a.Epoch)}))

	// The holder acquiring again (a new connection on the same node) gets a new epoch, which
	// fences its own previous grant.
	a2 := acquire(t, c, ixKey.Name, "node-a", long)
	require.Greater(t, a2.Epoch, a.Epoch)
	requireFenced(t, c.PutFragments(ctx, []catalog.Put{fencedPut(2, a.Epoch)}), a.Epoch, a2.Epoch)
	require.NoError(t, c.PutFragments(ctx, []catalog.Put{fencedPut(2, a2.Epoch)}))
	require.Equal(t, uint64(2), lastSeq(t, c))
}

// testLeaseStaleCommit is the paused owner: A's lease expires while it is stopped, B takes the
// stream and commits; A resumes and tries to commit and renew: both are refused, nothing of
// A's is stored, B goes on.
func testLeaseStaleCommit(t *testing.T, c Fenced) {
	ctx := context.Background()
	a := acquire(t, c, ixKey.Name, "node-a", expired)
	require.NoError(t, c.PutFragments(ctx, []catalog.Put{fencedPut(1, a.Epoch)}), "an expired grant nobody took over still commits")

	b := acquire(t, c, ixKey.Name, "node-b", long)
	require.Greater(t, b.Epoch, a.Epoch)
	require.NoError(t, c.PutFragments(ctx, []catalog.Put{fencedPut(2, b.Epoch)}))

	requireFenced(t, c.PutFragments(ctx, []catalog.Put{fencedPut(3, a.Epoch)}), a.Epoch, b.Epoch)
	_, err := c.RenewLease(ctx, a, long)
	requireFenced(t, err, a.Epoch, b.Epoch)
	_, err = c.GetFragment(ctx, ixKey, 3)
	require.ErrorIs(t, err, catalog.ErrFragmentNotFound)
	require.Equal(t, uint64(2), lastSeq(t, c))

	require.NoError(t, c.PutFragments(ctx, []catalog.Put{fencedPut(3, b.Epoch)}))
	require.NoError(t, c.PutFragments(ctx, []catalog.Put{fencedPut(4, 0)}), "epoch 0 is unfenced")
	require.Equal(t, uint64(4), lastSeq(t, c))
}

func testLeaseExpiry(t *testing.T, c Fenced) {
	ctx := context.Background()
	a := acquire(t, c, ixKey.Name, "node-a", expired)
	b := acquire(t, c, ixKey.Name, "node-b", long) // a's grant ended: no ErrLeaseHeld
	require.Greater(t, b.Epoch, a.Epoch)
	_, err := c.AcquireLease(ctx, ixKey.Name, "node-a", long)
	require.ErrorIs(t, err, catalog.ErrLeaseHeld, "b's live grant is not taken back")

	// An expired grant nobody else took is renewed with its epoch: nobody wrote meanwhile.
	e := acquire(t, c, "other", "node-a", expired)
	r, err := c.RenewLease(ctx, e, long)
	require.NoError(t, err)
	require.Equal(t, e.Epoch, r.Epoch)
	_, err = c.AcquireLease(ctx, "other", "node-b", long)
	require.ErrorIs(t, err, catalog.ErrLeaseHeld, "the renewed grant is live again")
}

func testLeaseRelease(t *testing.T, c Fenced) {
	ctx := context.Background()
	a := acquire(t, c, ixKey.Name, "node-a", long)
	require.NoError(t, c.ReleaseLease(ctx, a))
	_, err := c.RenewLease(ctx, a, long)
	require.ErrorIs(t, err, catalog.ErrFenced, "a released grant is not renewed")
	b := acquire(t, c, ixKey.Name, "node-b", long) // at once, long before a's ttl
	require.Greater(t, b.Epoch, a.Epoch)
	require.NoError(t, c.ReleaseLease(ctx, a), "releasing a lost grant is no error")
	_, err = c.AcquireLease(ctx, ixKey.Name, "node-c", long)
	require.ErrorIs(t, err, catalog.ErrLeaseHeld, "a stale release leaves the current grant alone")
	requireFenced(t, c.PutFragments(ctx, []catalog.Put{fencedPut(1, a.Epoch)}), a.Epoch, b.Epoch)
}

func testLeaseEpochs(t *testing.T, c Fenced) {
	ctx := context.Background()
	var last uint64
	for i := range 5 {
		l := acquire(t, c, ixKey.Name, fmt.Sprintf("node-%d", i%2), long)
		require.Greater(t, l.Epoch, last)
		last = l.Epoch
		require.NoError(t, c.ReleaseLease(ctx, l))
	}
	// A fenced commit under an epoch never granted for this stream is refused too.
	requireFenced(t, c.PutFragments(ctx, []catalog.Put{fencedPut(1, last+1)}), last+1, last)
	err := c.PutFragments(ctx, []catalog.Put{{Key: catalog.Key{Name: "never-leased", CreatedMs: 1},
		Fragment: frag(catalog.Key{Name: "never-leased", CreatedMs: 1}, 1, 0, 0), Location: locOf(1), Header: ixHdr, Epoch: 1}})
	require.ErrorIs(t, err, catalog.ErrFenced, "a stream without a lease fences every epoch")
}

func testLeaseConcurrent(t *testing.T, c Fenced) {
	const nodes = 8
	var wg sync.WaitGroup
	won := make(chan catalog.Lease, nodes)
	errs := make(chan error, nodes)
	for i := range nodes {
		wg.Go(func() {
			l, err := c.AcquireLease(context.Background(), ixKey.Name, fmt.Sprintf("node-%d", i), long)
			if err != nil {
				errs <- err
				return
			}
			won <- l
		})
	}
	wg.Wait()
	close(won)
	close(errs)
	require.Len(t, won, 1, "exactly one node holds the stream")
	for err := range errs {
		require.ErrorIs(t, err, catalog.ErrLeaseHeld)
	}
}

// testLeaseFencedBatch: a group commit holding one stale entry stores nothing, other streams'
// entries included (they are retried on their own by fragstore).
func testLeaseFencedBatch(t *testing.T, c Fenced) {
	ctx := context.Background()
	other := catalog.Key{Name: "cam_2", CreatedMs: 1700000000456}
	a := acquire(t, c, ixKey.Name, "node-a", expired)
	b := acquire(t, c, ixKey.Name, "node-b", long)
	o := acquire(t, c, other.Name, "node-a", long)
	otherPut := catalog.Put{Key: other, Fragment: frag(other, 1, 0, 0), Location: locOf(1), Header: ixHdr, Epoch: o.Epoch}
	requireFenced(t, c.PutFragments(ctx, []catalog.Put{otherPut, fencedPut(1, a.Epoch)}), a.Epoch, b.Epoch)
	seq, _, err := c.LastFragment(ctx, other)
	require.NoError(t, err)
	require.Zero(t, seq)
	require.NoError(t, c.PutFragments(ctx, []catalog.Put{otherPut}))
}

// testLeaseRenewBatch: one RenewLeases answers for each grant as RenewLease would, the others
// in the batch unaffected: current grants (an expired one nobody took included) are renewed,
// one another node took since and one released are lost, with their current epochs.
func testLeaseRenewBatch(t *testing.T, c Fenced) {
	ctx := context.Background()
	live := acquire(t, c, "cam_live", "node-a", long)
	lapsed := acquire(t, c, "cam_lapsed", "node-a", expired)
	taken := acquire(t, c, ixKey.Name, "node-a", expired)
	b := acquire(t, c, ixKey.Name, "node-b", long)
	released := acquire(t, c, "cam_released", "node-a", long)
	require.NoError(t, c.ReleaseLease(ctx, released))

	renewed, lost, err := c.RenewLeases(ctx, []catalog.Lease{live, taken, lapsed, released}, long)
	require.NoError(t, err)
	require.Len(t, renewed, 2)
	require.Equal(t, live.Stream, renewed[0].Stream, "renewed in the batch's order")
	require.Equal(t, live.Epoch, renewed[0].Epoch)
	require.False(t, renewed[0].Expires.Before(live.Expires), "a renewal does not shorten the grant")
	require.Equal(t, lapsed.Stream, renewed[1].Stream)
	require.Equal(t, lapsed.Epoch, renewed[1].Epoch)
	require.True(t, renewed[1].Expires.After(lapsed.Expires))

	require.Len(t, lost, 2)
	requireFenced(t, lost[0], taken.Epoch, b.Epoch)
	require.Equal(t, &catalog.FencedError{Stream: released.Stream, Epoch: released.Epoch, Current: released.Epoch}, lost[1],
		"a released grant is not renewed; its epoch stays the stream's current one")

	// The renewed grants are live, the lost ones untouched: b still holds its stream, and the
	// released stream is free.
	for _, l := range []catalog.Lease{live, lapsed, taken} {
		_, err = c.AcquireLease(ctx, l.Stream, "node-c", long)
		require.ErrorIs(t, err, catalog.ErrLeaseHeld, l.Stream)
	}
	acquire(t, c, released.Stream, "node-c", long)
	require.NoError(t, c.PutFragments(ctx, []catalog.Put{fencedPut(1, b.Epoch)}))
}

func testLeaseRenewBatchEmpty(t *testing.T, c Fenced) {
	renewed, lost, err := c.RenewLeases(context.Background(), nil, long)
	require.NoError(t, err)
	require.Empty(t, renewed)
	require.Empty(t, lost)
}
