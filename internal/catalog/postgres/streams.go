package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kvsd/kvsd/internal/catalog/streamrec"
	"github.com/kvsd/kvsd/internal/stream"
)

func notFound(name string) error {
	return fmt.Errorf("%w: stream %s does not exist", stream.ErrNotFound, name)
}

func inUse(name string) error {
	return fmt.Errorf("%w: stream %s already exists", stream.ErrInUse, name)
}

// errRollback carries an error of a caller's function out of a transaction unwrapped.
type errRollback struct{ err error }

func (e errRollback) Error() string { return e.err.Error() }

// inTx runs fn in a transaction; an error fn returns through errRollback comes back as is.
func (d *DB) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	err := pgx.BeginFunc(ctx, d.pool, fn)
	if rb, ok := errors.AsType[errRollback](err); ok {
		return rb.err
	}
	return err
}

// CreateStream stores s; ErrInUse if the name is taken. It moves s's creation time past the
// latest one stored under the name (stream.Store.CreateStream): stream_names keeps it, and
// its row lock serialises creations of one name.
func (d *DB) CreateStream(ctx context.Context, s *stream.Stream) error {
	return d.inTx(ctx, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM streams WHERE name = $1)`, s.Name).Scan(&exists); err != nil {
			return fmt.Errorf("create stream %s: %w", s.Name, err)
		}
		if exists {
			return errRollback{inUse(s.Name)}
		}
		ms := s.CreationTime.UnixMilli()
		var created int64
		if err := tx.QueryRow(ctx, `INSERT INTO stream_names AS n (name, last_created_ms) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET last_created_ms = greatest(n.last_created_ms + 1, EXCLUDED.last_created_ms)
			RETURNING last_created_ms`, s.Name, ms).Scan(&created); err != nil {
			return fmt.Errorf("create stream %s: %w", s.Name, err)
		}
		if created != ms {
			s.SetCreationTime(time.UnixMilli(created).UTC())
		}
		rec, err := streamrec.Encode(s)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO streams (name, record) VALUES ($1, $2)`, s.Name, string(rec)); err != nil {
			if isUniqueViolation(err) { // created by another node meanwhile
				return errRollback{inUse(s.Name)}
			}
			return fmt.Errorf("create stream %s: %w", s.Name, err)
		}
		return notifyStream(ctx, tx, s.Name)
	})
}

// GetStream returns a fresh copy of the named stream.
func (d *DB) GetStream(ctx context.Context, name string) (*stream.Stream, error) {
	var rec []byte
	err := d.pool.QueryRow(ctx, `SELECT record::text FROM streams WHERE name = $1`, name).Scan(&rec)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound(name)
	}
	if err != nil {
		return nil, fmt.Errorf("get stream %s: %w", name, err)
	}
	return streamrec.Decode(rec)
}

// ListStreams returns up to limit streams named with prefix and sorting after startAfter. The
// name >= prefix bound lets the primary key's range scan start at the prefix.
func (d *DB) ListStreams(ctx context.Context, prefix, startAfter string, limit int) ([]*stream.Stream, error) {
	if limit < 1 {
		return nil, ctx.Err()
	}
	rows, err := d.pool.Query(ctx, `SELECT record::text FROM streams
		WHERE name >= $1 AND starts_with(name, $1) AND name > $2 ORDER BY name LIMIT $3`, prefix, startAfter, limit)
	if err != nil {
		return nil, fmt.Errorf("list streams: %w", err)
	}
	recs, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, fmt.Errorf("list streams: %w", err)
	}
	var out []*stream.Stream
	for _, rec := range recs {
		s, err := streamrec.Decode(rec)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// lockStream reads the named stream FOR UPDATE.
func lockStream(ctx context.Context, tx pgx.Tx, name string) (*stream.Stream, error) {
	var rec []byte
	err := tx.QueryRow(ctx, `SELECT record::text FROM streams WHERE name = $1 FOR UPDATE`, name).Scan(&rec)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errRollback{notFound(name)}
	}
	if err != nil {
		return nil, err
	}
	return streamrec.Decode(rec)
}

// UpdateStream applies fn to the stream read FOR UPDATE and stores it in the same
// transaction, so concurrent updates (from any node) serialise. fn's error is returned as is.
func (d *DB) UpdateStream(ctx context.Context, name string, fn func(*stream.Stream) error) (*stream.Stream, error) {
	var s *stream.Stream
	err := d.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		if s, err = lockStream(ctx, tx, name); err != nil {
			return err
		}
		if err := fn(s); err != nil {
			return errRollback{err}
		}
		if s.Name != name {
			return fmt.Errorf("update stream %s: fn renamed it to %s; streams cannot be renamed", name, s.Name)
		}
		rec, err := streamrec.Encode(s)
		if err != nil {
			return err
		}
		if _, err = tx.Exec(ctx, `UPDATE streams SET record = $2 WHERE name = $1`, name, string(rec)); err != nil {
			return err
		}
		return notifyStream(ctx, tx, name)
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// DeleteStream removes the stream if check, run inside the transaction, returns nil; check's
// error is returned as is. stream_names keeps its creation time.
func (d *DB) DeleteStream(ctx context.Context, name string, check func(*stream.Stream) error) error {
	return d.inTx(ctx, func(tx pgx.Tx) error {
		s, err := lockStream(ctx, tx, name)
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(s); err != nil {
				return errRollback{err}
			}
		}
		if _, err = tx.Exec(ctx, `DELETE FROM streams WHERE name = $1`, name); err != nil {
			return err
		}
		return notifyStream(ctx, tx, name)
	})
}
