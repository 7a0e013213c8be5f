package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kvsd/kvsd/internal/catalog"
)

// Stream leases (catalog.Leases) in table stream_leases: one row per stream name, the epoch
// bumped by every grant, the expiry computed and compared with the database's now(), so the
// nodes' clocks never matter. The fencing check is in PutFragments.

// AcquireLease grants stream's lease to holder for ttl when it is free, expired, released or
// holder's already; each grant has the next epoch.
func (d *DB) AcquireLease(ctx context.Context, stream, holder string, ttl time.Duration) (catalog.Lease, error) {
	if ttl <= 0 {
		return catalog.Lease{}, fmt.Errorf("acquire lease of %s: ttl %v is not positive", stream, ttl)
	}
	l := catalog.Lease{Stream: stream, Holder: holder}
	var epoch int64
	err := d.pool.QueryRow(ctx, `INSERT INTO stream_leases AS l (stream, holder, epoch, expires_at)
		VALUES ($1, $2, 1, now() + $3::interval)
		ON CONFLICT (stream) DO UPDATE SET holder = EXCLUDED.holder, epoch = l.epoch + 1, expires_at = EXCLUDED.expires_at
		WHERE l.expires_at <= now() OR l.holder = EXCLUDED.holder
		RETURNING epoch, expires_at`, stream, holder, ttl).Scan(&epoch, &l.Expires)
	if errors.Is(err, pgx.ErrNoRows) {
		// Held by someone else. Read who, for the error; the row may have changed meanwhile,
		// which only makes the message a little stale.
		var cur string
		var until time.Time
		if err := d.pool.QueryRow(ctx, `SELECT holder, expires_at FROM stream_leases WHERE stream = $1`, stream).Scan(&cur, &until); err != nil {
			return catalog.Lease{}, fmt.Errorf("%w: stream %s", catalog.ErrLeaseHeld, stream)
		}
		return catalog.Lease{}, fmt.Errorf("%w: stream %s is held by %s until %s", catalog.ErrLeaseHeld, stream, cur, until.UTC().Format(time.RFC3339Nano))
	}
	if err != nil {
		return catalog.Lease{}, fmt.Errorf("acquire lease of %s: %w", stream, err)
	}
	l.Epoch = uint64(epoch)
	return l, nil
}

// RenewLease extends l while its epoch is current and it was not released.
func (d *DB) RenewLease(ctx context.Context, l catalog.Lease, ttl time.Duration) (catalog.Lease, error) {
	if ttl <= 0 {
		return catalog.Lease{}, fmt.Errorf("renew lease of %s: ttl %v is not positive", l.Stream, ttl)
	}
	err := d.pool.QueryRow(ctx, `UPDATE stream_leases SET expires_at = now() + $3::interval
		WHERE stream = $1 AND epoch = $2 AND holder <> '' RETURNING expires_at`, l.Stream, int64(l.Epoch), ttl).Scan(&l.Expires)
	if errors.Is(err, pgx.ErrNoRows) {
		var cur int64
		if err := d.pool.QueryRow(ctx, `SELECT epoch FROM stream_leases WHERE stream = $1`, l.Stream).Scan(&cur); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return catalog.Lease{}, fmt.Errorf("renew lease of %s: %w", l.Stream, err)
		}
		return catalog.Lease{}, &catalog.FencedError{Stream: l.Stream, Epoch: l.Epoch, Current: uint64(cur)}
	}
	if err != nil {
		return catalog.Lease{}, fmt.Errorf("renew lease of %s: %w", l.Stream, err)
	}
	return l, nil
}

// ReleaseLease ends l at once if its epoch is current. The epoch stays, so the next grant's
// is higher and l's commits stay fenced once anyone acquired.
func (d *DB) ReleaseLease(ctx context.Context, l catalog.Lease) error {
	_, err := d.pool.Exec(ctx, `UPDATE stream_leases SET holder = '', expires_at = now()
		WHERE stream = $1 AND epoch = $2`, l.Stream, int64(l.Epoch))
	if err != nil {
		return fmt.Errorf("release lease of %s: %w", l.Stream, err)
	}
	return nil
}

// LeaseHolder returns the holder of name's live lease, "" when nobody holds it (never taken,
// released or expired).
func (d *DB) LeaseHolder(ctx context.Context, name string) (string, error) {
	var holder string
	err := d.pool.QueryRow(ctx, `SELECT holder FROM stream_leases WHERE stream = $1 AND expires_at > now()`, name).Scan(&holder)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("lease holder of %s: %w", name, err)
	}
	return holder, nil
}
