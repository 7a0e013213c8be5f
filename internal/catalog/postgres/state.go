package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/kvsd/kvsd/internal/catalog"
)

// LoadState returns the value saved under component/key, or catalog.ErrNoState.
func (d *DB) LoadState(ctx context.Context, component, key string) ([]byte, error) {
	var v []byte
	err := d.pool.QueryRow(ctx, `SELECT value FROM state WHERE component = $1 AND key = $2`, component, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, catalog.ErrNoState
	}
	if err != nil {
		return nil, fmt.Errorf("load state %s/%s: %w", component, key, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// SaveState durably stores value under component/key, overwriting.
func (d *DB) SaveState(ctx context.Context, component, key string, value []byte) error {
	if value == nil {
		value = []byte{} // the column is NOT NULL; an empty value is still a saved one
	}
	_, err := d.pool.Exec(ctx, `INSERT INTO state (component, key, value) VALUES ($1, $2, $3)
		ON CONFLICT (component, key) DO UPDATE SET value = EXCLUDED.value`, component, key, value)
	if err != nil {
		return fmt.Errorf("save state %s/%s: %w", component, key, err)
	}
	return nil
}

// DeleteState removes component/key; a missing key is not an error.
func (d *DB) DeleteState(ctx context.Context, component, key string) error {
	if _, err := d.pool.Exec(ctx, `DELETE FROM state WHERE component = $1 AND key = $2`, component, key); err != nil {
		return fmt.Errorf("delete state %s/%s: %w", component, key, err)
	}
	return nil
}

// StateKeys lists the keys saved for component, in byte order (COLLATE "C").
func (d *DB) StateKeys(ctx context.Context, component string) ([]string, error) {
	rows, err := d.pool.Query(ctx, `SELECT key FROM state WHERE component = $1 ORDER BY key`, component)
	if err != nil {
		return nil, fmt.Errorf("state keys of %s: %w", component, err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("state keys of %s: %w", component, err)
	}
	return keys, nil
}
