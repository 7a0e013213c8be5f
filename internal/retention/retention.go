// Package retention removes fragments older than their stream's DataRetentionInHours, and the
// data of streams that no longer exist. It runs as one loop owned by app.
package retention

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	kvscatalog "github.com/kvsd/kvsd/internal/catalog"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/stream"
)

type store interface {
	Streams(ctx context.Context) ([]fragstore.Key, error)
	Expire(ctx context.Context, k fragstore.Key, cutoff time.Time) (int, error)
	DeleteStream(ctx context.Context, k fragstore.Key) error
}

type catalog interface {
	GetStream(ctx context.Context, name string) (*stream.Stream, error)
}

// Leases are the catalog's leases (catalog.Leases), which nodes sharing a catalog use to
// agree on one sweeper.
type Leases interface {
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (kvscatalog.Lease, error)
	RenewLease(ctx context.Context, l kvscatalog.Lease, ttl time.Duration) (kvscatalog.Lease, error)
	ReleaseLease(ctx context.Context, l kvscatalog.Lease) error
}

// LeaseName is the lease row of the cluster's sweeper: stream names cannot hold a colon, so
// it never meets a stream's lease.
const LeaseName = "cluster:retention"

// Sweeper expires fragments; Interval bounds how late a fragment disappears after its expiry.
type Sweeper struct {
	Store    store
	Catalog  catalog
	Interval time.Duration // default 10 s
	Now      func() time.Time
	Logger   *slog.Logger
	// Leases, when set, make the sweeper one of a cluster's: it sweeps only while it holds
	// the LeaseName lease (as Holder), renewed at every sweep, so that one node sweeps;
	// when that node dies its lease expires (3 intervals) and another takes it.
	Leases Leases
	Holder string

	sweeps atomic.Int64
}

// Sweeps counts the sweeps this sweeper made.
func (s *Sweeper) Sweeps() int64 { return s.sweeps.Load() }

// Run sweeps every Interval until ctx ends.
func (s *Sweeper) Run(ctx context.Context) error {
	interval := s.Interval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var held *kvscatalog.Lease
	defer func() {
		if held != nil { // hand over at once rather than at expiry
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = s.Leases.ReleaseLease(rctx, *held)
		}
	}()
	for {
		var mine bool
		if s.Leases == nil {
			mine = true
		} else {
			held, mine = s.lease(ctx, held, 3*interval)
		}
		if mine {
			if err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
				s.log().Error("retention sweep failed", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// lease renews the held lease or acquires it, and says whether this node may sweep now: it
// holds a grant whose ttl, counted from before the request, has not run out.
func (s *Sweeper) lease(ctx context.Context, held *kvscatalog.Lease, ttl time.Duration) (*kvscatalog.Lease, bool) {
	var l kvscatalog.Lease
	var err error
	if held != nil {
		if l, err = s.Leases.RenewLease(ctx, *held, ttl); err == nil {
			return &l, true
		}
		if !errors.Is(err, kvscatalog.ErrFenced) {
			s.log().Warn("retention: renewing the sweeper's lease", "err", err)
			return held, false // renewed next time, if still ours; no sweep on an unconfirmed grant
		}
		s.log().Info("retention: another node took over the sweeps")
	}
	l, err = s.Leases.AcquireLease(ctx, LeaseName, s.Holder, ttl)
	switch {
	case err == nil:
		s.log().Info("retention: this node sweeps for the cluster", "epoch", l.Epoch)
		return &l, true
	case errors.Is(err, kvscatalog.ErrLeaseHeld):
		return nil, false // another node sweeps
	default:
		if ctx.Err() == nil {
			s.log().Warn("retention: taking the sweeper's lease", "err", err)
		}
		return nil, false
	}
}

// Sweep makes one pass over every stream that has stored fragments.
func (s *Sweeper) Sweep(ctx context.Context) error {
	keys, err := s.Store.Streams(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	s.sweeps.Add(1)
	var errs []error
	for _, k := range keys {
		st, err := s.Catalog.GetStream(ctx, k.Name)
		switch {
		case errors.Is(err, stream.ErrNotFound) || (err == nil && fragstore.KeyOf(st) != k):
			// Deleted (or deleted and re-created) while its data stayed behind.
			if err := s.Store.DeleteStream(ctx, k); err != nil {
				errs = append(errs, err)
				continue
			}
			s.log().Info("removed data of deleted stream", "stream", k.Name, "created_ms", k.CreatedMs)
		case err != nil:
			errs = append(errs, err)
		default:
			cutoff := now.Add(-time.Duration(st.RetentionHours) * time.Hour)
			n, err := s.Store.Expire(ctx, k, cutoff)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if n > 0 {
				s.log().Info("expired fragments", "stream", k.Name, "count", n, "retention_hours", st.RetentionHours)
			}
		}
	}
	return errors.Join(errs...)
}

func (s *Sweeper) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}
