package catalogtest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/catalog"
)

// Claimed is what TestWorkClaims needs of a catalog: work claims and the state they fence.
type Claimed interface {
	catalog.State
	catalog.WorkClaims
}

// TestWorkClaims runs the catalog.WorkClaims suite; every catalog passes it (bolt keeps its
// claims in memory). Each holder stands for a node.
func TestWorkClaims(t *testing.T, open func(t *testing.T) Claimed) {
	t.Run("OneOfTwoClaimersWins", func(t *testing.T) { testWorkOneWins(t, open(t)) })
	t.Run("ExpiryPassesItOn", func(t *testing.T) { testWorkExpiry(t, open(t)) })
	t.Run("ReleaseAndList", func(t *testing.T) { testWorkRelease(t, open(t)) })
}

const workKey = "1700000000000_cam"

func claim(t *testing.T, c Claimed, holder string, ttl time.Duration) catalog.WorkClaim {
	t.Helper()
	w, err := c.ClaimWork(context.Background(), "imagegen", workKey, holder, ttl)
	require.NoError(t, err)
	require.Equal(t, holder, w.Holder)
	require.NotZero(t, w.Epoch)
	return w
}

func loadState(t *testing.T, c Claimed) string {
	t.Helper()
	b, err := c.LoadState(context.Background(), "imagegen", workKey)
	require.NoError(t, err)
	return string(b)
}

// Two nodes claim the same stream's work at once: exactly one wins, the other is told who
// holds it; other kinds and streams are separate claims.
func testWorkOneWins(t *testing.T, c Claimed) {
	ctx := context.Background()
	var wg sync.WaitGroup
	wins := make([]catalog.WorkClaim, 2)
	errs := make([]error, 2)
	for i, holder := range []string{"node-a", "node-b"} {
		wg.Go(func() { wins[i], errs[i] = c.ClaimWork(ctx, "imagegen", workKey, holder, long) })
	}
	wg.Wait()
	require.True(t, (errs[0] == nil) != (errs[1] == nil), "exactly one claimer wins: %v", errs)
	winner, loser := 0, 1
	if errs[0] != nil {
		winner, loser = 1, 0
	}
	require.ErrorIs(t, errs[loser], catalog.ErrLeaseHeld)
	require.ErrorContains(t, errs[loser], wins[winner].Holder, "the error names the holder")
	held, ok := errors.AsType[*catalog.HeldError](errs[loser])
	require.True(t, ok, "the refusal says how long the grant has left: %v", errs[loser])
	require.Equal(t, wins[winner].Holder, held.Holder)
	require.True(t, held.Left > 0 && held.Left <= long, "%v left of a %v grant", held.Left, long)
	require.NoError(t, c.SaveStateFenced(ctx, wins[winner], "imagegen", workKey, []byte("5")))
	require.Equal(t, "5", loadState(t, c))

	_, err := c.ClaimWork(ctx, "notify", workKey, "node-x", long)
	require.NoError(t, err, "another kind of work is another claim")
	_, err = c.ClaimWork(ctx, "imagegen", "1700000000000_other", "node-x", long)
	require.NoError(t, err, "another stream is another claim")

	// The holder claiming again (after a restart of its worker) gets a newer epoch, fencing
	// its previous grant.
	again, err := c.ClaimWork(ctx, "imagegen", workKey, wins[winner].Holder, long)
	require.NoError(t, err)
	require.Greater(t, again.Epoch, wins[winner].Epoch)
	requireWorkFenced(t, c.SaveStateFenced(ctx, wins[winner], "imagegen", workKey, []byte("6")), wins[winner].Epoch, again.Epoch)
	require.Equal(t, "5", loadState(t, c))
}

// A node stops renewing (it died or paused): once its claim expired another node claims the
// work, and the old holder's late cursor writes and renewals are refused.
func testWorkExpiry(t *testing.T, c Claimed) {
	ctx := context.Background()
	a := claim(t, c, "node-a", expired)
	require.NoError(t, c.SaveStateFenced(ctx, a, "imagegen", workKey, []byte("3")), "an expired claim nobody took over still writes")
	b := claim(t, c, "node-b", long)
	require.Greater(t, b.Epoch, a.Epoch)

	requireWorkFenced(t, c.SaveStateFenced(ctx, a, "imagegen", workKey, []byte("4")), a.Epoch, b.Epoch)
	_, err := c.RenewWork(ctx, a, long)
	requireWorkFenced(t, err, a.Epoch, b.Epoch)
	require.Equal(t, "3", loadState(t, c), "the fenced write stored nothing")

	r, err := c.RenewWork(ctx, b, long)
	require.NoError(t, err)
	require.Equal(t, b.Epoch, r.Epoch)
	require.NoError(t, c.SaveStateFenced(ctx, r, "imagegen", workKey, []byte("9")))
	require.Equal(t, "9", loadState(t, c))
	_, err = c.ClaimWork(ctx, "imagegen", workKey, "node-a", long)
	require.ErrorIs(t, err, catalog.ErrLeaseHeld, "a renewed claim stays held")
}

// Released work is free at once; ListWork shows the live claims only.
func testWorkRelease(t *testing.T, c Claimed) {
	ctx := context.Background()
	a := claim(t, c, "node-a", long)
	list, err := c.ListWork(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, catalog.WorkClaim{Kind: "imagegen", Key: workKey, Holder: "node-a", Epoch: a.Epoch}, withoutExpiry(list[0]))

	require.NoError(t, c.ReleaseWork(ctx, a))
	list, err = c.ListWork(ctx)
	require.NoError(t, err)
	require.Empty(t, list)
	_, err = c.RenewWork(ctx, a, long)
	requireWorkFenced(t, err, a.Epoch, a.Epoch)
	b := claim(t, c, "node-b", long)
	require.NoError(t, c.ReleaseWork(ctx, a), "releasing a lost claim is no error")
	_, err = c.RenewWork(ctx, b, long)
	require.NoError(t, err, "the old holder's release did not end the new grant")
}

func withoutExpiry(w catalog.WorkClaim) catalog.WorkClaim {
	w.Expires = time.Time{}
	return w
}

func requireWorkFenced(t *testing.T, err error, epoch, current uint64) {
	t.Helper()
	require.ErrorIs(t, err, catalog.ErrFenced)
	var fe *catalog.FencedError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, epoch, fe.Epoch)
	require.Equal(t, current, fe.Current)
}
