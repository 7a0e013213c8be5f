package streamwork_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/catalog/bolt"
	"github.com/kvsd/kvsd/internal/streamwork"
)

func key(name string) streamwork.Key { return streamwork.Key{Name: name, CreatedMs: 1700000000000} }

// start runs an engine until the test ends and checks that Run returns.
func start(t *testing.T, cfg streamwork.Config) *streamwork.Engine {
	t.Helper()
	e, err := streamwork.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return e
}

// TestOrderWithinStream: many workers, many wakes; one stream's turns never overlap, and its
// work is done in the order it was added.
func TestOrderWithinStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		todo := map[string][]int{}  // work added, per stream
		doneW := map[string][]int{} // work done, in order
		running := map[string]bool{}
		var e *streamwork.Engine
		e = start(t, streamwork.Config{Workers: 4, Process: func(ctx context.Context, s streamwork.Stream) streamwork.Outcome {
			mu.Lock()
			if running[s.Key.Name] {
				t.Errorf("two workers on %s", s.Key.Name) // not require: this is a worker's goroutine
			}
			running[s.Key.Name] = true
			var item int
			q := todo[s.Key.Name]
			if len(q) > 0 {
				item, todo[s.Key.Name] = q[0], q[1:]
			}
			mu.Unlock()
			time.Sleep(time.Millisecond) // fake time: lets other workers run meanwhile
			mu.Lock()
			defer mu.Unlock()
			running[s.Key.Name] = false
			if len(q) == 0 {
				return streamwork.Done()
			}
			doneW[s.Key.Name] = append(doneW[s.Key.Name], item)
			return streamwork.More()
		}})
		for i := range 50 {
			for _, name := range []string{"a", "b", "c"} {
				mu.Lock()
				todo[name] = append(todo[name], i)
				mu.Unlock()
				e.Wake(key(name))
			}
			time.Sleep(300 * time.Microsecond) // fake time: wakes arrive while turns run
		}
		time.Sleep(time.Hour) // fake time: the turns' sleeps pass
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, name := range []string{"a", "b", "c"} {
			require.Len(t, doneW[name], 50)
			for i, v := range doneW[name] {
				require.Equal(t, i, v, name)
			}
			require.False(t, e.Busy(key(name)))
		}
	})
}

// TestFairness: with one worker, a stream with a long backlog takes turns with streams woken
// after it, instead of keeping the worker until its backlog is done.
func TestFairness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var turns []string
		left := map[string]int{"big": 100, "x": 2, "y": 2}
		e := start(t, streamwork.Config{Workers: 1, Process: func(ctx context.Context, s streamwork.Stream) streamwork.Outcome {
			mu.Lock()
			defer mu.Unlock()
			turns = append(turns, s.Key.Name)
			if left[s.Key.Name]--; left[s.Key.Name] > 0 {
				return streamwork.More()
			}
			return streamwork.Done()
		}})
		e.Wake(key("big"))
		e.Wake(key("x"))
		e.Wake(key("y"))
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		require.Len(t, turns, 104)
		require.Equal(t, []string{"big", "x", "y", "big", "x", "y", "big", "big"}, turns[:8], "round-robin")
	})
}

// TestBackoffSchedule: consecutive failures wait MinBackoff, doubling up to MaxBackoff; a wake
// does not cut a wait short; a success resets the count; jitter is deterministic with Rand.
func TestBackoffSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var at []time.Duration
		var failures []int
		fail := 7
		begin := time.Now()
		e := start(t, streamwork.Config{MinBackoff: time.Second, MaxBackoff: 8 * time.Second,
			Process: func(ctx context.Context, s streamwork.Stream) streamwork.Outcome {
				mu.Lock()
				defer mu.Unlock()
				at = append(at, time.Since(begin))
				failures = append(failures, s.Failures)
				if fail > 0 {
					fail--
					return streamwork.Retry(errors.New("down"))
				}
				return streamwork.Done()
			}})
		k := key("cam")
		e.Wake(k)
		synctest.Wait()
		st := e.Status(k)
		require.Equal(t, 1, st.Failures)
		require.EqualError(t, st.Err, "down")
		require.Equal(t, begin.Add(time.Second), st.RetryAt)
		e.Wake(k) // waiting: no earlier turn
		time.Sleep(time.Hour)
		synctest.Wait()
		mu.Lock()
		s := time.Second
		require.Equal(t, []time.Duration{0, 1 * s, 3 * s, 7 * s, 15 * s, 23 * s, 31 * s, 39 * s}, at)
		require.Equal(t, []int{0, 1, 2, 3, 4, 5, 6, 7}, failures)
		mu.Unlock()
		require.Equal(t, streamwork.Status{}, e.Status(k), "a success clears the record")
		require.False(t, e.Busy(k))
	})
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var at []time.Duration
		begin := time.Now()
		e := start(t, streamwork.Config{MinBackoff: 4 * time.Second, MaxBackoff: time.Minute, Jitter: 0.5,
			Rand: func() float64 { return 0.5 },
			Process: func(ctx context.Context, s streamwork.Stream) streamwork.Outcome {
				mu.Lock()
				defer mu.Unlock()
				at = append(at, time.Since(begin))
				switch len(at) {
				case 1, 2:
					return streamwork.Retry(errors.New("down"))
				case 3:
					return streamwork.RetryIn(time.Minute, errors.New("no bucket"))
				}
				return streamwork.Done()
			}})
		e.Wake(key("cam"))
		time.Sleep(time.Hour)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		s := time.Second
		require.Equal(t, []time.Duration{0, 3 * s, 9 * s, 69 * s}, at, "4 s and 8 s less a quarter; RetryIn as given")
	})
}

// TestRetryHoldsNoWorker: a failing stream waits without its worker; others go on.
func TestRetryHoldsNoWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		ok := 0
		e := start(t, streamwork.Config{Workers: 1, MinBackoff: time.Hour, Process: func(ctx context.Context, s streamwork.Stream) streamwork.Outcome {
			if s.Key.Name == "down" {
				return streamwork.Retry(errors.New("down"))
			}
			mu.Lock()
			defer mu.Unlock()
			ok++
			return streamwork.Done()
		}})
		e.Wake(key("down"))
		for range 3 {
			synctest.Wait()
			e.Wake(key("up"))
		}
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		require.Equal(t, 3, ok)
		require.True(t, e.Busy(key("down")))
	})
}

// TestStop: Run returns once ctx ends, after the turns in progress end, and leaves no
// goroutine behind (synctest fails a test whose goroutines outlive it).
func TestStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, err := streamwork.New(streamwork.Config{Workers: 3, Process: func(ctx context.Context, s streamwork.Stream) streamwork.Outcome {
			<-ctx.Done()
			return streamwork.Retry(ctx.Err())
		}})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		e.Wake(key("a"))
		e.Wake(key("b"))
		synctest.Wait()
		cancel()
		require.NoError(t, <-done)
		require.Zero(t, e.Status(key("a")).Failures, "a turn cut short by the stop is not a failure")
	})
}

// TestCursorResumesAfterRestart: work committed to the cursor is not done again by the next
// engine on the same catalog, which resumes right after it without a wake; a dropped stream
// loses its cursor.
func TestCursorResumesAfterRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	db, err := bolt.Open(path)
	require.NoError(t, err)
	k := key("cam")
	events := make(chan uint64, 100)
	var mu sync.Mutex
	var last uint64 = 5 // the stream's newest "fragment"
	var crashAfter uint64 = 3
	run := func(db *bolt.DB) (*streamwork.Engine, func()) {
		cursors := &streamwork.Cursors{State: db, Component: "test"}
		e, err := streamwork.New(streamwork.Config{Cursors: cursors, Workers: 2,
			Process: func(ctx context.Context, s streamwork.Stream) streamwork.Outcome {
				seq, _, err := cursors.Load(ctx, s.Key)
				if err != nil {
					return streamwork.Retry(err)
				}
				mu.Lock()
				n, stopAt := last, crashAfter
				mu.Unlock()
				if n == 0 {
					return streamwork.Drop() // the stream is gone
				}
				if seq >= n || seq >= stopAt {
					return streamwork.Done()
				}
				events <- seq + 1 // the work of fragment seq+1, then its commit
				if err := cursors.Save(ctx, s.Key, seq+1); err != nil {
					return streamwork.Retry(err)
				}
				return streamwork.More()
			}})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		return e, func() { cancel(); require.NoError(t, <-done) }
	}
	e, stop := run(db)
	require.NoError(t, (&streamwork.Cursors{State: db, Component: "test"}).Save(context.Background(), k, 0))
	e.Wake(k)
	for want := uint64(1); want <= 3; want++ {
		require.Equal(t, want, <-events)
	}
	require.Eventually(t, func() bool { return !e.Busy(k) }, 5*time.Second, time.Millisecond)
	stop() // the "crash": the process ends after fragment 3's commit
	require.NoError(t, db.Close())

	db, err = bolt.Open(path)
	require.NoError(t, err)
	defer db.Close()
	mu.Lock()
	crashAfter = 100
	mu.Unlock()
	e, stop = run(db) // no Wake: the cursor brings the stream back
	defer stop()
	require.Equal(t, uint64(4), <-events, "resumes after the committed cursor")
	require.Equal(t, uint64(5), <-events)
	require.Eventually(t, func() bool { return !e.Busy(k) }, 5*time.Second, time.Millisecond)
	require.Empty(t, events)

	keys, err := db.StateKeys(context.Background(), "test")
	require.NoError(t, err)
	require.Len(t, keys, 1)
	mu.Lock()
	last = 0 // deleted
	mu.Unlock()
	e.Wake(k)
	require.Eventually(t, func() bool { return !e.Busy(k) }, 5*time.Second, time.Millisecond)
	keys, err = db.StateKeys(context.Background(), "test")
	require.NoError(t, err)
	require.Empty(t, keys, "Drop deletes the cursor")
}
