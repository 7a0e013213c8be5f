// Package retention removes fragments older than their stream's DataRetentionInHours, and the
// data of streams that no longer exist. It runs as one loop owned by app.
package retention

import (
	"context"
	"errors"
	"log/slog"
	"time"

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

// Sweeper expires fragments; Interval bounds how late a fragment disappears after its expiry.
type Sweeper struct {
	Store    store
	Catalog  catalog
	Interval time.Duration // default 10 s
	Now      func() time.Time
	Logger   *slog.Logger
}

// Run sweeps every Interval until ctx ends.
func (s *Sweeper) Run(ctx context.Context) error {
	interval := s.Interval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log().Error("retention sweep failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
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
