package fragstore_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/fragstore"
)

// gatedIndex holds every PutFragments until the test lets it go, and records the batches.
type gatedIndex struct {
	fragstore.Index
	gate    chan struct{}
	once    sync.Once
	mu      sync.Mutex
	batches [][]uint64
}

func (g *gatedIndex) open() { g.once.Do(func() { close(g.gate) }) }

func (g *gatedIndex) PutFragments(ctx context.Context, puts []fragstore.Put) error {
	<-g.gate
	var seqs []uint64
	for _, p := range puts {
		seqs = append(seqs, p.Fragment.Seq)
	}
	g.mu.Lock()
	g.batches = append(g.batches, seqs)
	g.mu.Unlock()
	return g.Index.PutFragments(ctx, puts)
}

// openGated is a Store whose index commits wait for gi.gate.
func openGated(t *testing.T) (*env, *gatedIndex) {
	e := openEnv(t, t.TempDir())
	e.close()
	e.openBackends()
	gi := &gatedIndex{Index: e.db, gate: make(chan struct{})}
	s, err := fragstore.Open(fragstore.Config{Media: e.media, Index: gi})
	require.NoError(t, err)
	e.s = s
	t.Cleanup(gi.open) // runs before e.close, which waits for the commits
	return e, gi
}

func notDone(t *testing.T, c *fragstore.Commit) {
	t.Helper()
	select {
	case <-c.Done():
		t.Fatal("commit finished while the index was held")
	default:
	}
}

// Writes return once the media is synced; the entries queued meanwhile, of every stream,
// commit together in the next index transaction, in order, and then read back.
func TestWriteGroupCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, gi := openGated(t)
		other := fragstore.Key{Name: "cam-2", CreatedMs: key.CreatedMs}
		var commits []*fragstore.Commit
		for seq := uint64(1); seq <= 3; seq++ {
			for _, k := range []fragstore.Key{key, other} {
				c, err := e.s.Write(ctx, k, header, frag(k, seq), media(seq))
				require.NoError(t, err)
				commits = append(commits, c)
			}
		}
		synctest.Wait() // all that can happen without the index has happened
		for _, c := range commits {
			notDone(t, c)
		}
		gi.open()
		for _, c := range commits {
			require.NoError(t, c.Wait(ctx))
		}
		// The first Write's entry may have started a commit of its own before the others queued.
		gi.mu.Lock()
		require.LessOrEqual(t, len(gi.batches), 2, "batches: %v", gi.batches)
		gi.mu.Unlock()
		for _, k := range []fragstore.Key{key, other} {
			fs, err := e.s.After(ctx, k, 0, 10)
			require.NoError(t, err)
			require.Len(t, fs, 3)
			for i, f := range fs {
				b, err := e.s.Media(ctx, k, f)
				require.NoError(t, err)
				require.Equal(t, media(uint64(i+1)), b)
			}
		}
	})
}

// Expire and DeleteStream wait for the stream's queued entries: freeing a segment between a
// fragment's media and its index commit would leave the entry pointing at nothing.
func TestExpireWaitsForQueuedCommits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, gi := openGated(t)
		c1, err := e.s.Write(ctx, key, header, frag(key, 1), media(1))
		require.NoError(t, err)
		expired := make(chan int, 1)
		go func() {
			n, err := e.s.Expire(ctx, key, frag(key, 5).ServerTime)
			if err != nil {
				t.Error(err)
			}
			expired <- n
		}()
		synctest.Wait() // Expire has returned or waits for good
		select {
		case n := <-expired:
			t.Fatalf("Expire ran (%d removed) while fragment 1 awaited its commit", n)
		default:
		}
		notDone(t, c1)
		gi.open()
		require.NoError(t, c1.Wait(ctx))
		require.Equal(t, 1, <-expired, "the committed fragment expires afterwards")
		segs, err := e.media.Segments(ctx, key)
		require.NoError(t, err)
		require.Empty(t, segs)
	})
}

// Close commits what is queued before it returns, so that nothing written is lost on a clean
// shutdown.
func TestCloseCommitsQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, gi := openGated(t)
		c, err := e.s.Write(ctx, key, header, frag(key, 1), media(1))
		require.NoError(t, err)
		s := e.s
		closed := make(chan error, 1)
		go func() { closed <- s.Close() }()
		synctest.Wait() // Close has returned or waits for good
		select {
		case <-closed:
			t.Fatal("Close returned with a commit queued")
		default:
		}
		gi.open()
		require.NoError(t, <-closed)
		require.NoError(t, c.Err())
		e.s = nil
		e.media = nil // closed by the Store
		seq, _, err := e.db.LastFragment(ctx, key)
		require.NoError(t, err)
		require.Equal(t, uint64(1), seq)
		_, err = s.Write(ctx, key, header, frag(key, 2), media(2))
		require.Error(t, err, "no Write after Close")
	})
}
