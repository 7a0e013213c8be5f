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

// RenewLeases extends every one of ls whose epoch is current and that was not released, with
// one UPDATE for all of them: a node renews all of its streams together, one transaction per
// tick instead of one per stream (200 streams were 120 commits a second, each a WAL flush the
// fragment index commits, on which PERSISTED waits, queued behind).
//
// The transaction commits with synchronous_commit off: it returns before its WAL is flushed.
// That is safe because a renewal only moves an expiry: one lost in a database crash leaves the
// grant shorter than its holder believes, and the fencing is by epoch, not by expiry. An epoch
// is granted only by AcquireLease, which stays a synchronous commit, so no epoch is ever
// granted twice and no fragment acknowledged under a stale one, whatever renewal was lost.
// (A holder that counted on the lost renewal may see its grant taken early; its commits are
// then fenced, as for any holder that lost its stream.)
//
// The UPDATE skips released rows (ReleaseLease empties their holder): a renewal that lands
// after the release cannot extend the grant again (ingest relies on this).
func (d *DB) RenewLeases(ctx context.Context, ls []catalog.Lease, ttl time.Duration) (renewed []catalog.Lease, lost []*catalog.FencedError, err error) {
	if ttl <= 0 {
		return nil, nil, fmt.Errorf("renew %d leases: ttl %v is not positive", len(ls), ttl)
	}
	if len(ls) == 0 {
		return nil, nil, nil
	}
	streams := make([]string, len(ls))
	epochs := make([]int64, len(ls))
	for i, l := range ls {
		streams[i], epochs[i] = l.Stream, int64(l.Epoch)
	}
	expires := make(map[string]time.Time, len(ls))
	current := map[string]uint64{}
	err = pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `UPDATE stream_leases AS l SET expires_at = now() + $3::interval
			FROM unnest($1::text[], $2::bigint[]) AS r(stream, epoch)
			WHERE l.stream = r.stream AND l.epoch = r.epoch AND l.holder <> ''
			RETURNING l.stream, l.expires_at`, streams, epochs, ttl)
		if err != nil {
			return err
		}
		var stream string
		var until time.Time
		if _, err := pgx.ForEachRow(rows, []any{&stream, &until}, func() error {
			expires[stream] = until
			return nil
		}); err != nil {
			return err
		}
		if len(expires) == len(ls) {
			return nil
		}
		// Some are lost: their current epochs, for the FencedErrors (0: the row is gone).
		var gone []string
		for _, s := range streams {
			if _, ok := expires[s]; !ok {
				gone = append(gone, s)
			}
		}
		rows, err = tx.Query(ctx, `SELECT stream, epoch FROM stream_leases WHERE stream = ANY($1::text[])`, gone)
		if err != nil {
			return err
		}
		var epoch int64
		_, err = pgx.ForEachRow(rows, []any{&stream, &epoch}, func() error {
			current[stream] = uint64(epoch)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("renew %d leases: %w", len(ls), err)
	}
	for _, l := range ls {
		if until, ok := expires[l.Stream]; ok {
			l.Expires = until
			renewed = append(renewed, l)
		} else {
			lost = append(lost, &catalog.FencedError{Stream: l.Stream, Epoch: l.Epoch, Current: current[l.Stream]})
		}
	}
	return renewed, lost, nil
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
