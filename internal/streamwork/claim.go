package streamwork

import (
	"context"
	"sync"
	"time"
)

// Claimer decides which worker works on which stream. A stream is held by at most one claim
// at a time, which is what keeps its work in order. Local keeps this in memory for one
// process; a cluster can keep it in a table, a row per stream with its due time and a lease
// claimed with SELECT … FOR UPDATE SKIP LOCKED, so that every node's workers share it.
type Claimer interface {
	// Wake makes k due now, unless it waits for a retry. A claimed k is due again when it is
	// released.
	Wake(k Key)
	// Claim waits until a stream is due and unclaimed, claims it and returns it; it returns
	// ctx's error when ctx ends first. Due streams are claimed in the order they became due.
	Claim(ctx context.Context) (Key, error)
	// Release ends the claim on k. next is when k is due again: the zero time when only a
	// wake during the claim makes it due, otherwise at next (now: behind the streams already
	// due), and wakes before next do not make it due earlier.
	Release(k Key, next time.Time)
	// Drop ends the claim on k and forgets it.
	Drop(k Key)
	// Busy reports whether k is due, claimed or waiting for its next time.
	Busy(k Key) bool
}

// Local is the Claimer of a single process.
type Local struct {
	now func() time.Time

	mu      sync.Mutex
	streams map[Key]*localStream // streams that are not idle
	due     []Key                // in the order they became due
	changed chan struct{}        // closed and replaced when due grows or a wait is set
}

type localStream struct {
	due, claimed bool
	woken        bool      // woken while claimed
	next         time.Time // waiting until then; zero when not
}

// NewLocal returns an in-memory Claimer that reads the time from now (nil: time.Now).
func NewLocal(now func() time.Time) *Local {
	if now == nil {
		now = time.Now
	}
	return &Local{now: now, streams: map[Key]*localStream{}, changed: make(chan struct{})}
}

func (l *Local) Wake(k Key) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.streams[k]
	switch {
	case s == nil:
		l.streams[k] = &localStream{}
		l.dueLocked(k, l.streams[k])
	case s.claimed:
		s.woken = true
	}
	// Otherwise it is due already, or waits for its retry, which sees this wake's work too.
}

func (l *Local) dueLocked(k Key, s *localStream) {
	s.due, s.next = true, time.Time{}
	l.due = append(l.due, k)
	l.signalLocked()
}

func (l *Local) signalLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *Local) Claim(ctx context.Context) (Key, error) {
	for {
		l.mu.Lock()
		wait := l.promoteLocked()
		if len(l.due) > 0 {
			k := l.due[0]
			l.due[0] = Key{}
			l.due = l.due[1:]
			s := l.streams[k]
			s.due, s.claimed = false, true
			l.mu.Unlock()
			return k, nil
		}
		changed := l.changed
		l.mu.Unlock()
		if err := waitFor(ctx, changed, wait); err != nil {
			return Key{}, err
		}
	}
}

// waitFor waits until ctx ends (its error), changed is closed, or wait passes (0: forever).
func waitFor(ctx context.Context, changed <-chan struct{}, wait time.Duration) error {
	var timer <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-changed:
	case <-timer:
	}
	return nil
}

// promoteLocked makes the streams whose time has come due and returns how long until the next
// one's (0: none waiting).
func (l *Local) promoteLocked() time.Duration {
	now := l.now()
	var wait time.Duration
	for k, s := range l.streams {
		if s.next.IsZero() {
			continue
		}
		if d := s.next.Sub(now); d > 0 {
			if wait == 0 || d < wait {
				wait = d
			}
			continue
		}
		l.dueLocked(k, s)
	}
	return wait
}

func (l *Local) Release(k Key, next time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.streams[k]
	if s == nil || !s.claimed {
		return
	}
	s.claimed = false
	woken := s.woken
	s.woken = false
	switch {
	case !next.IsZero() && next.After(l.now()):
		s.next = next
		l.signalLocked() // a waiting worker's timer may now be too late
	case !next.IsZero() || woken:
		l.dueLocked(k, s)
	default:
		delete(l.streams, k)
	}
}

func (l *Local) Drop(k Key) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.streams, k)
}

func (l *Local) Busy(k Key) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.streams[k] != nil
}
