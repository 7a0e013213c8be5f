package streamwork_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/catalog"
	"github.com/kvsd/kvsd/internal/catalog/bolt"
	"github.com/kvsd/kvsd/internal/streamwork"
)

const sharedTTL = 3 * time.Second

func openShared(t *testing.T) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "catalog.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// node is one kvsd's engine over the shared catalog: its Process walks items 1..total of each
// stream, one per turn, and keeps its cursor in memory between turns unless the claim is fresh.
type node struct {
	name   string
	e      *streamwork.Engine
	cursor map[streamwork.Key]uint64 // per stream, in memory between turns
	mu     sync.Mutex
}

// TestSharedWorkIsDoneOnceAcrossNodes: two nodes, woken for the same streams, share their
// work through the catalog's claims: a stream is worked on by one node at a time, every item
// is done exactly once and in order, and the cursors end at the last item.
func TestSharedWorkIsDoneOnceAcrossNodes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := openShared(t)
		const streams, total = 6, 12
		var mu sync.Mutex
		running := map[streamwork.Key]string{}
		done := map[streamwork.Key][]uint64{}
		byNode := map[string]int{}
		newNode := func(name string) *node {
			n := &node{name: name, cursor: map[streamwork.Key]uint64{}}
			cursors := &streamwork.Cursors{State: db, Component: "work"}
			claims := streamwork.NewShared(streamwork.Cluster{Claims: db, Holder: name, TTL: sharedTTL}, "work", nil, nil)
			n.e = start(t, streamwork.Config{Workers: 3, Cursors: cursors, Claims: claims,
				Process: func(ctx context.Context, s streamwork.Stream) streamwork.Outcome {
					mu.Lock()
					if other := running[s.Key]; other != "" {
						t.Errorf("%s and %s work on %s at once", other, name, s.Key.Name)
					}
					running[s.Key] = name
					mu.Unlock()
					defer func() { mu.Lock(); delete(running, s.Key); mu.Unlock() }()
					if s.Fresh {
						seq, _, err := cursors.Load(ctx, s.Key)
						if err != nil {
							return streamwork.Retry(err)
						}
						n.mu.Lock()
						n.cursor[s.Key] = seq
						n.mu.Unlock()
					}
					n.mu.Lock()
					next := n.cursor[s.Key] + 1
					n.mu.Unlock()
					if next > total {
						return streamwork.Done()
					}
					time.Sleep(100 * time.Millisecond) // the work takes (fake) time
					if err := cursors.Save(ctx, s.Key, next); err != nil {
						return streamwork.Retry(err)
					}
					n.mu.Lock()
					n.cursor[s.Key] = next
					n.mu.Unlock()
					mu.Lock()
					done[s.Key] = append(done[s.Key], next)
					byNode[name]++
					mu.Unlock()
					if next%3 == 0 {
						return streamwork.Done() // released: either node may take the rest
					}
					return streamwork.More()
				}})
			return n
		}
		a, b := newNode("node-a"), newNode("node-b")
		var keys []streamwork.Key
		for i := range streams {
			keys = append(keys, key(fmt.Sprintf("cam-%d", i)))
		}
		// Wakes come and go as fragments arrive on either node.
		for range total {
			for _, k := range keys {
				a.e.Wake(k)
				b.e.Wake(k)
			}
			time.Sleep(time.Second)
			synctest.Wait()
		}
		for range 10 {
			time.Sleep(sharedTTL)
			synctest.Wait()
		}
		mu.Lock()
		defer mu.Unlock()
		want := make([]uint64, total)
		for i := range want {
			want[i] = uint64(i + 1)
		}
		for _, k := range keys {
			require.Equal(t, want, done[k], "%s: every item once, in order", k.Name)
			seq, ok, err := (&streamwork.Cursors{State: db, Component: "work"}).Load(context.Background(), k)
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, uint64(total), seq)
		}
		require.NotZero(t, byNode["node-a"], "both nodes took work: %v", byNode)
		require.NotZero(t, byNode["node-b"], "both nodes took work: %v", byNode)
	})
}

// partitioned is the catalog as one node sees it: while cut, that node's renewals fail.
type partitioned struct {
	streamwork.WorkClaims
	cut atomic.Bool
}

func (p *partitioned) RenewWork(ctx context.Context, c catalog.WorkClaim, ttl time.Duration) (catalog.WorkClaim, error) {
	if p.cut.Load() {
		return catalog.WorkClaim{}, errors.New("connection refused")
	}
	return p.WorkClaims.RenewWork(ctx, c, ttl)
}

// TestSharedWorkMovesOnWhenAHolderGoesSilent: node A is mid-turn on a stream when it loses the
// catalog; its claim expires, node B (woken for the stream once, long before) takes the
// stream over with a fresh claim and moves the cursor; A's late cursor write is refused.
func TestSharedWorkMovesOnWhenAHolderGoesSilent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := openShared(t)
		k := key("cam")
		cursors := func() *streamwork.Cursors { return &streamwork.Cursors{State: db, Component: "work"} }
		viewA := &partitioned{WorkClaims: db}
		curA := cursors()
		aStarted, aResume := make(chan struct{}), make(chan struct{})
		aErr := make(chan error, 1)
		first := true // A's worker's only
		a := start(t, streamwork.Config{Cursors: curA,
			Claims: streamwork.NewShared(streamwork.Cluster{Claims: viewA, Holder: "node-a", TTL: sharedTTL}, "work", nil, nil),
			Process: func(ctx context.Context, s streamwork.Stream) streamwork.Outcome {
				if !first {
					return streamwork.Done() // later turns (A's resync) are not this test's
				}
				first = false
				close(aStarted)
				<-aResume
				aErr <- curA.Save(ctx, s.Key, 99)
				return streamwork.Done()
			}})
		a.Wake(k)
		<-aStarted
		viewA.cut.Store(true)

		var mu sync.Mutex
		var fresh []bool
		curB := cursors()
		b := start(t, streamwork.Config{Cursors: curB,
			Claims: streamwork.NewShared(streamwork.Cluster{Claims: db, Holder: "node-b", TTL: sharedTTL}, "work", nil, nil),
			Process: func(ctx context.Context, s streamwork.Stream) streamwork.Outcome {
				mu.Lock()
				fresh = append(fresh, s.Fresh)
				mu.Unlock()
				if err := curB.Save(ctx, s.Key, 7); err != nil {
					return streamwork.Retry(err)
				}
				return streamwork.Done()
			}})
		b.Wake(k)
		synctest.Wait()
		mu.Lock()
		require.Empty(t, fresh, "B waits while A's claim is live")
		mu.Unlock()

		time.Sleep(3 * sharedTTL) // A stays silent past its claim's expiry
		synctest.Wait()
		mu.Lock()
		require.NotEmpty(t, fresh, "B took the stream over")
		require.True(t, fresh[0], "with a fresh claim: B reads the cursor again")
		mu.Unlock()

		viewA.cut.Store(false)
		close(aResume)
		require.ErrorIs(t, <-aErr, catalog.ErrFenced, "A's late cursor write is refused")
		seq, _, err := cursors().Load(context.Background(), k)
		require.NoError(t, err)
		require.Equal(t, uint64(7), seq)
	})
}
