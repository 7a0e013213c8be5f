package streamwork

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/kvsd/kvsd/internal/catalog"
)

// WorkClaims is the catalog's store of work claims (catalog.WorkClaims): which node may work
// on which stream, with epochs that fence the work's cursor writes.
type WorkClaims interface {
	ClaimWork(ctx context.Context, kind, key, holder string, ttl time.Duration) (catalog.WorkClaim, error)
	RenewWork(ctx context.Context, c catalog.WorkClaim, ttl time.Duration) (catalog.WorkClaim, error)
	ReleaseWork(ctx context.Context, c catalog.WorkClaim) error
	SaveStateFenced(ctx context.Context, c catalog.WorkClaim, component, key string, value []byte) error
}

// Cluster says how the nodes sharing a catalog share its streams' work.
type Cluster struct {
	Claims WorkClaims
	Holder string // this node's id in the claims
	// TTL is how long a claim lasts without renewal: a node that dies hands its streams' work
	// to the others within it. Claims are renewed every TTL/3. Default 5 s.
	TTL time.Duration
	// Recheck is how soon a stream whose work another node holds is tried again, which is
	// how work left by a dead node (or a wake lost to the holder's turn) is picked up: at the
	// latest when the holder's claim ends if it is not renewed (the catalog says when), else
	// after Recheck. Default TTL.
	Recheck time.Duration
}

// recheckSlack is how long after a holder's claim ends it is tried again: the expiry is on the
// catalog's clock, read a round trip ago.
const recheckSlack = 100 * time.Millisecond

// Shared is the Claimer of a node in a cluster: a stream is claimed from this process's due
// streams (a Local) and then from the catalog, per (kind, stream), so that one node at a time
// works on a stream's work of that kind, and its cursor writes (Cursors.Save) are fenced by
// the claim's epoch. A claim is kept while the stream has more work right away (More) and
// renewed in the background; it is released when a turn ends otherwise, so that whichever
// node is woken next (usually the one ingesting the stream) takes it.
type Shared struct {
	cfg   Cluster
	kind  string
	now   func() time.Time
	log   *slog.Logger
	local *Local

	mu    sync.Mutex
	held  map[Key]catalog.WorkClaim
	fresh map[Key]bool // claimed anew for the current turn
}

// NewShared returns the Claimer of kind's work ("imagegen", "notify") on this node.
func NewShared(c Cluster, kind string, now func() time.Time, log *slog.Logger) *Shared {
	if c.TTL <= 0 {
		c.TTL = 5 * time.Second
	}
	if c.Recheck <= 0 {
		c.Recheck = c.TTL
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Shared{cfg: c, kind: kind, now: now, log: log, local: NewLocal(now),
		held: map[Key]catalog.WorkClaim{}, fresh: map[Key]bool{}}
}

func (s *Shared) Wake(k Key)         { s.local.Wake(k) }
func (s *Shared) Busy(k Key) bool    { return s.local.Busy(k) }
func (s *Shared) Kind() string       { return s.kind }
func (s *Shared) Holder() string     { return s.cfg.Holder }
func (s *Shared) TTL() time.Duration { return s.cfg.TTL }

// Claim takes a due stream of this process and claims its work in the catalog. A stream whose
// work another node holds waits Recheck and is tried again.
func (s *Shared) Claim(ctx context.Context) (Key, error) {
	for {
		k, err := s.local.Claim(ctx)
		if err != nil {
			return Key{}, err
		}
		s.mu.Lock()
		_, had := s.held[k]
		s.mu.Unlock()
		c, err := s.cfg.Claims.ClaimWork(ctx, s.kind, StateKey(k), s.cfg.Holder, s.cfg.TTL)
		if err == nil {
			s.mu.Lock()
			s.held[k], s.fresh[k] = c, !had
			s.mu.Unlock()
			return k, nil
		}
		if ctx.Err() != nil {
			s.local.Release(k, time.Time{})
			return Key{}, ctx.Err()
		}
		wait := s.cfg.Recheck
		if held, ok := errors.AsType[*catalog.HeldError](err); ok {
			// Right after the grant ends: a dead holder's work moves on within the TTL.
			wait = min(wait, held.Left+recheckSlack)
		} else if !errors.Is(err, catalog.ErrLeaseHeld) {
			s.log.Warn("claiming stream work; trying again later", "kind", s.kind, "stream", k.Name, "err", err)
		}
		s.forget(context.WithoutCancel(ctx), k)
		s.local.Release(k, s.now().Add(wait))
	}
}

// Fresh reports whether this turn's claim on k is new: another node may have moved k's work
// since this node's last turn, so what it keeps in memory must be read again.
func (s *Shared) Fresh(k Key) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fresh[k]
}

// Release keeps the claim when k is due again at once (More) and releases it otherwise.
func (s *Shared) Release(k Key, next time.Time) {
	if next.IsZero() || next.After(s.now()) {
		s.forget(context.Background(), k)
	}
	s.local.Release(k, next)
}

func (s *Shared) Drop(k Key) {
	s.forget(context.Background(), k)
	s.local.Drop(k)
}

// forget releases k's claim, if this node holds one.
func (s *Shared) forget(ctx context.Context, k Key) {
	s.mu.Lock()
	c, ok := s.held[k]
	delete(s.held, k)
	delete(s.fresh, k)
	s.mu.Unlock()
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.TTL)
	defer cancel()
	if err := s.cfg.Claims.ReleaseWork(ctx, c); err != nil {
		// It expires by itself within TTL.
		s.log.Warn("releasing stream work", "kind", s.kind, "stream", k.Name, "err", err)
	}
}

// saveFenced writes component/key under k's claim; without one it is refused as fenced.
func (s *Shared) saveFenced(ctx context.Context, k Key, component, key string, value []byte) error {
	s.mu.Lock()
	c, ok := s.held[k]
	s.mu.Unlock()
	if !ok {
		return &catalog.FencedError{Stream: s.kind + " work of " + StateKey(k)}
	}
	return s.cfg.Claims.SaveStateFenced(ctx, c, component, key, value)
}

// Run renews the held claims every TTL/3 until ctx ends, then releases them so that other
// nodes take the work over at once. The engine's Run runs it.
func (s *Shared) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.TTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.mu.Lock()
			keys := make([]Key, 0, len(s.held))
			for k := range s.held {
				keys = append(keys, k)
			}
			s.mu.Unlock()
			for _, k := range keys {
				s.forget(context.WithoutCancel(ctx), k)
			}
			return
		case <-t.C:
			s.renew(ctx)
		}
	}
}

func (s *Shared) renew(ctx context.Context) {
	s.mu.Lock()
	held := make([]catalog.WorkClaim, 0, len(s.held))
	keys := make([]Key, 0, len(s.held))
	for k, c := range s.held {
		held, keys = append(held, c), append(keys, k)
	}
	s.mu.Unlock()
	for i, c := range held {
		r, err := s.cfg.Claims.RenewWork(ctx, c, s.cfg.TTL)
		s.mu.Lock()
		cur, ok := s.held[keys[i]]
		switch {
		case !ok || cur.Epoch != c.Epoch:
			// Released or claimed anew meanwhile.
		case errors.Is(err, catalog.ErrFenced):
			// Lost (this node was too slow): its cursor writes are refused from now on.
			delete(s.held, keys[i])
			s.log.Warn("lost a stream's work claim", "kind", s.kind, "stream", keys[i].Name, "err", err)
		case err == nil:
			s.held[keys[i]] = r
		}
		s.mu.Unlock()
	}
}

// Held lists the streams whose work this node holds now.
func (s *Shared) Held() []Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Key, 0, len(s.held))
	for k := range s.held {
		out = append(out, k)
	}
	return out
}
