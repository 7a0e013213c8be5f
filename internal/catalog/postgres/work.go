package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kvsd/kvsd/internal/catalog"
)

// Work claims (catalog.WorkClaims) in table work_claims, one row per (kind, stream key): the
// same grant, renew and release rules as stream leases (lease.go), with the cursor writes
// fenced by SaveStateFenced.

// ClaimWork grants (kind, key) to holder for ttl when it is free, expired, released or
// holder's already; each grant has the next epoch.
func (d *DB) ClaimWork(ctx context.Context, kind, key, holder string, ttl time.Duration) (catalog.WorkClaim, error) {
	if ttl <= 0 {
		return catalog.WorkClaim{}, fmt.Errorf("claim %s work of %s: ttl %v is not positive", kind, key, ttl)
	}
	c := catalog.WorkClaim{Kind: kind, Key: key, Holder: holder}
	var epoch int64
	err := d.pool.QueryRow(ctx, `INSERT INTO work_claims AS w (kind, key, holder, epoch, expires_at)
		VALUES ($1, $2, $3, 1, now() + $4::interval)
		ON CONFLICT (kind, key) DO UPDATE SET holder = EXCLUDED.holder, epoch = w.epoch + 1, expires_at = EXCLUDED.expires_at
		WHERE w.expires_at <= now() OR w.holder = EXCLUDED.holder
		RETURNING epoch, expires_at`, kind, key, holder, ttl).Scan(&epoch, &c.Expires)
	if errors.Is(err, pgx.ErrNoRows) {
		held := &catalog.HeldError{What: kind + " work of " + key}
		var left float64
		if err := d.pool.QueryRow(ctx, `SELECT holder, GREATEST(EXTRACT(EPOCH FROM expires_at - now()), 0)::float8
			FROM work_claims WHERE kind = $1 AND key = $2`, kind, key).Scan(&held.Holder, &left); err != nil {
			return catalog.WorkClaim{}, fmt.Errorf("%w: %s work of %s", catalog.ErrLeaseHeld, kind, key)
		}
		held.Left = time.Duration(left * float64(time.Second))
		return catalog.WorkClaim{}, held
	}
	if err != nil {
		return catalog.WorkClaim{}, fmt.Errorf("claim %s work of %s: %w", kind, key, err)
	}
	c.Epoch = uint64(epoch)
	return c, nil
}

// RenewWork extends c while its epoch is current and it was not released.
func (d *DB) RenewWork(ctx context.Context, c catalog.WorkClaim, ttl time.Duration) (catalog.WorkClaim, error) {
	if ttl <= 0 {
		return catalog.WorkClaim{}, fmt.Errorf("renew %s work of %s: ttl %v is not positive", c.Kind, c.Key, ttl)
	}
	err := d.pool.QueryRow(ctx, `UPDATE work_claims SET expires_at = now() + $4::interval
		WHERE kind = $1 AND key = $2 AND epoch = $3 AND holder <> '' RETURNING expires_at`,
		c.Kind, c.Key, int64(c.Epoch), ttl).Scan(&c.Expires)
	if errors.Is(err, pgx.ErrNoRows) {
		cur, err := d.workEpoch(ctx, d.pool, c)
		if err != nil {
			return catalog.WorkClaim{}, fmt.Errorf("renew %s work of %s: %w", c.Kind, c.Key, err)
		}
		return catalog.WorkClaim{}, workFenced(c, cur)
	}
	if err != nil {
		return catalog.WorkClaim{}, fmt.Errorf("renew %s work of %s: %w", c.Kind, c.Key, err)
	}
	return c, nil
}

// ReleaseWork ends c at once if its epoch is current; the epoch stays, so later grants' are higher.
func (d *DB) ReleaseWork(ctx context.Context, c catalog.WorkClaim) error {
	if _, err := d.pool.Exec(ctx, `UPDATE work_claims SET holder = '', expires_at = now()
		WHERE kind = $1 AND key = $2 AND epoch = $3`, c.Kind, c.Key, int64(c.Epoch)); err != nil {
		return fmt.Errorf("release %s work of %s: %w", c.Kind, c.Key, err)
	}
	return nil
}

// SaveStateFenced stores component/key under c: the claim row is read FOR SHARE in the same
// transaction as the write, so a new grant (an UPDATE of that row) waits for this commit or
// comes before the check, never between.
func (d *DB) SaveStateFenced(ctx context.Context, c catalog.WorkClaim, component, key string, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		var cur int64
		err := tx.QueryRow(ctx, `SELECT epoch FROM work_claims WHERE kind = $1 AND key = $2 FOR SHARE`, c.Kind, c.Key).Scan(&cur)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if uint64(cur) != c.Epoch {
			return workFenced(c, uint64(cur))
		}
		_, err = tx.Exec(ctx, `INSERT INTO state (component, key, value) VALUES ($1, $2, $3)
			ON CONFLICT (component, key) DO UPDATE SET value = EXCLUDED.value`, component, key, value)
		return err
	})
	var fe *catalog.FencedError
	if err != nil && !errors.As(err, &fe) {
		return fmt.Errorf("save state %s/%s under %s claim epoch %d: %w", component, key, c.Kind, c.Epoch, err)
	}
	return err
}

// ListWork lists the live work claims and stream leases (kind "ingest").
func (d *DB) ListWork(ctx context.Context) ([]catalog.WorkClaim, error) {
	rows, err := d.pool.Query(ctx, `SELECT kind, key, holder, epoch, expires_at FROM work_claims
			WHERE holder <> '' AND expires_at > now()
		UNION ALL SELECT 'ingest', stream, holder, epoch, expires_at FROM stream_leases
			WHERE holder <> '' AND expires_at > now()
		ORDER BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("list work claims: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (catalog.WorkClaim, error) {
		var c catalog.WorkClaim
		var epoch int64
		err := r.Scan(&c.Kind, &c.Key, &c.Holder, &epoch, &c.Expires)
		c.Epoch = uint64(epoch)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("list work claims: %w", err)
	}
	return out, nil
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (d *DB) workEpoch(ctx context.Context, q querier, c catalog.WorkClaim) (uint64, error) {
	var cur int64
	err := q.QueryRow(ctx, `SELECT epoch FROM work_claims WHERE kind = $1 AND key = $2`, c.Kind, c.Key).Scan(&cur)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, err
	}
	return uint64(cur), nil
}

func workFenced(c catalog.WorkClaim, cur uint64) *catalog.FencedError {
	return &catalog.FencedError{Stream: c.Kind + " work of " + c.Key, Epoch: c.Epoch, Current: cur}
}
