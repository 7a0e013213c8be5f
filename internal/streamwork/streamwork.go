// Package streamwork runs background work per stream: image generation and notifications each
// hand it a Process function and call Wake when a stream may have work.
//
// It promises (docs/workengine.md):
//   - order: one worker at a time holds a stream, so a stream's work happens in order;
//   - fairness: a fixed set of workers takes due streams round-robin; a stream with more work
//     (Outcome More) goes behind the streams already waiting;
//   - retries: a failed turn (Retry) comes back after a backoff that doubles from MinBackoff to
//     MaxBackoff, and wakes meanwhile do not cut it short; a failing stream holds no worker;
//   - durability: per stream, a cursor in the catalog's state store (Cursors) says how far the
//     work is done; Run wakes every stream that has one, so work resumes after a restart.
//
// Which worker may hold a stream is a Claimer's decision: Local is the single-node one, in
// memory; Shared adds a per-stream claim in the catalog, shared by the nodes of a cluster.
package streamwork

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/kvsd/kvsd/internal/fragstore"
)

// Key names one incarnation of a stream (name and creation time).
type Key = fragstore.Key

// Stream is what Process is given: the stream, and how many turns in a row failed before this
// one (0 when the last turn did not fail).
type Stream struct {
	Key      Key
	Failures int
	// Fresh is true when this node did not hold the stream's work for its previous turn here
	// (Shared claims): another node may have moved the work and its cursor since, so what
	// Process keeps in memory about the stream must be read again. Always false with Local.
	Fresh bool
}

// Outcome is how a turn of Process ended; make one with Done, More, Retry, RetryIn or Drop.
type Outcome struct {
	kind outcomeKind
	wait time.Duration // RetryIn only
	err  error
}

type outcomeKind int

const (
	done outcomeKind = iota
	more
	retry
	drop
)

// Done: the stream has no work left until it is woken again.
func Done() Outcome { return Outcome{kind: done} }

// More: the stream has work left; it queues behind the streams already waiting.
func More() Outcome { return Outcome{kind: more} }

// Retry: the turn failed with err; the stream comes back after the backoff for its number of
// consecutive failures.
func Retry(err error) Outcome { return Outcome{kind: retry, err: err} }

// RetryIn: the turn failed with err and the stream comes back after d (for failures that the
// backoff schedule does not fit, such as a missing bucket that only a person can create).
// It counts as a failure like Retry.
func RetryIn(d time.Duration, err error) Outcome { return Outcome{kind: retry, wait: d, err: err} }

// Drop: the stream is gone; its cursor is deleted and the engine forgets it.
func Drop() Outcome { return Outcome{kind: drop} }

// Config wires an Engine. Zero values take the defaults named.
type Config struct {
	// Process does one turn of work on a stream. It runs on a worker, never on two workers
	// for the same stream at once, and should return within a bounded time (a turn) so that
	// other streams get workers.
	Process func(ctx context.Context, s Stream) Outcome

	Workers    int           // streams worked on at once; default 1
	MinBackoff time.Duration // wait after the first failure in a row; default 1 s
	MaxBackoff time.Duration // longest wait; default 1 min
	// Jitter shortens each backoff by up to this fraction (0 to 1) of it, drawn from Rand, so
	// that streams failing together do not retry together; default 0 (none).
	Jitter float64
	Rand   func() float64 // uniform in [0, 1); nil: math/rand/v2

	// Cursors, when set, is where the streams' durable cursors are: Run wakes every stream
	// that has one (at start and every Resync), and Drop deletes a stream's cursor.
	Cursors *Cursors
	Resync  time.Duration // 0: wake the streams with cursors only at start

	Claims Claimer          // who may work on which stream; nil: Local (this process only)
	Now    func() time.Time // nil: time.Now
	Logger *slog.Logger     // nil: discard
}

// Engine schedules per-stream work; see the package documentation.
type Engine struct {
	cfg    Config
	claims Claimer

	mu     sync.Mutex
	status map[Key]*Status // streams whose last turn failed
}

// Status is what the engine remembers of a stream's failures, for status pages.
type Status struct {
	Failures int       // turns in a row that failed; 0 when the last one did not
	Err      error     // the last failure
	FailedAt time.Time // when it happened
	RetryAt  time.Time // when the stream is (or was, while the retry runs) tried again
}

// New returns an Engine; it starts nothing until Run.
func New(cfg Config) (*Engine, error) {
	if cfg.Process == nil {
		return nil, errors.New("streamwork: Config needs Process")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Minute
	}
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.MinBackoff)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{cfg: cfg, claims: cfg.Claims, status: map[Key]*Status{}}
	if e.claims == nil {
		e.claims = NewLocal(cfg.Now)
	}
	if sh, ok := e.claims.(*Shared); ok {
		// The cursors move only under the stream's claim, and a stream left by a dead node
		// is found by the resync of the others.
		if cfg.Cursors != nil {
			cfg.Cursors.shared = sh
		}
		if e.cfg.Resync <= 0 || e.cfg.Resync > sh.cfg.TTL {
			e.cfg.Resync = sh.cfg.TTL
		}
	}
	return e, nil
}

// Wake tells the engine that stream k may have work. It never blocks. A stream being worked
// on gets another turn after this one; a stream waiting for a retry keeps waiting.
func (e *Engine) Wake(k Key) { e.claims.Wake(k) }

// Busy reports whether k has work queued, running, or waiting for a retry.
func (e *Engine) Busy(k Key) bool { return e.claims.Busy(k) }

// Status returns k's failure record; the zero Status when its last turn did not fail.
func (e *Engine) Status(k Key) Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	if s := e.status[k]; s != nil {
		return *s
	}
	return Status{}
}

// Run works until ctx ends and returns nil once every goroutine it started has stopped.
func (e *Engine) Run(ctx context.Context) error {
	// Shared claims are renewed until the workers have stopped (their last cursor saves are
	// under the claims), then released.
	claimsCtx, stopClaims := context.WithCancel(context.WithoutCancel(ctx))
	var claims sync.WaitGroup
	if r, ok := e.claims.(interface{ Run(context.Context) }); ok {
		claims.Go(func() { r.Run(claimsCtx) })
	}
	defer func() {
		stopClaims()
		claims.Wait()
	}()
	var wg sync.WaitGroup
	for range e.cfg.Workers {
		wg.Go(func() { e.work(ctx) })
	}
	if e.cfg.Cursors != nil {
		wg.Go(func() { e.resync(ctx) })
	}
	wg.Wait()
	return nil
}

func (e *Engine) work(ctx context.Context) {
	for {
		k, err := e.claims.Claim(ctx)
		if err != nil {
			return
		}
		fresh := false
		if f, ok := e.claims.(interface{ Fresh(Key) bool }); ok {
			fresh = f.Fresh(k)
		}
		out := e.cfg.Process(ctx, Stream{Key: k, Failures: e.Status(k).Failures, Fresh: fresh})
		e.finish(ctx, k, out)
	}
}

// finish records the outcome of a turn and releases the stream.
func (e *Engine) finish(ctx context.Context, k Key, out Outcome) {
	if ctx.Err() != nil {
		// Stopping: the turn was cut short, which is not the stream's failure.
		e.claims.Release(k, time.Time{})
		return
	}
	now := e.cfg.Now()
	if out.kind == drop && e.cfg.Cursors != nil {
		if err := e.cfg.Cursors.Delete(ctx, k); err != nil {
			out = Retry(err) // the turn after the wait finds the stream gone again
		}
	}
	e.mu.Lock()
	s := e.status[k]
	switch out.kind {
	case retry:
		if s == nil {
			s = &Status{}
			e.status[k] = s
		}
		s.Failures++
		wait := out.wait
		if wait <= 0 {
			wait = e.backoff(s.Failures)
		}
		s.Err, s.FailedAt, s.RetryAt = out.err, now, now.Add(wait)
	default:
		delete(e.status, k)
	}
	e.mu.Unlock()
	switch out.kind {
	case retry:
		e.claims.Release(k, s.RetryAt)
	case more:
		e.claims.Release(k, now)
	case drop:
		e.claims.Drop(k)
	default:
		e.claims.Release(k, time.Time{})
	}
}

// resync wakes every stream with a cursor: after a restart, and to make up for a lost wake.
func (e *Engine) resync(ctx context.Context) {
	var tick <-chan time.Time
	if e.cfg.Resync > 0 {
		t := time.NewTicker(e.cfg.Resync)
		defer t.Stop()
		tick = t.C
	}
	for {
		keys, err := e.cfg.Cursors.Keys(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			e.cfg.Logger.Error("listing cursors; retrying at the next resync", "component", e.cfg.Cursors.Component, "err", err)
		case err == nil:
			for _, k := range keys {
				e.Wake(k)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
	}
}
