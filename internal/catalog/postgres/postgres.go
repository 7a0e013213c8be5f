// Package postgres is the catalog shared by several kvsd nodes: stream records, the fragment
// index, component state and stream leases in one PostgreSQL database (catalog.Catalog), with
// the semantics of the embedded catalog (catalog/bolt) and the same conformance suite.
//
// The schema is embedded (migrations/NNNN_*.sql) and brought up to date by Open, in one
// transaction under an advisory lock, so nodes starting together migrate once.
// docs/format/catalog-postgres.md describes the tables.
//
// Durability is PostgreSQL's: a commit returns once its WAL is flushed when
// synchronous_commit is on (the default). Open warns when it is off, since a fragment could
// then be acknowledged PERSISTED and lost with the database server. Lease renewals alone
// commit with synchronous_commit off (RenewLeases says why that is safe).
//
// Writes of fragment entries are one pipelined batch per PutFragments (an implicit
// transaction: one round trip, all or nothing), so fragstore's group commit becomes one
// database commit for every stream it gathered.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kvsd/kvsd/internal/catalog"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock is the pg_advisory_xact_lock key that serialises schema migrations of every
// kvsd node sharing a database ("kvsdmigr" in ASCII).
const migrationLock = 0x6b7673646d696772

var _ catalog.Catalog = (*DB)(nil)

// DB is the PostgreSQL catalog.Catalog. It is safe for concurrent use.
type DB struct {
	pool *pgxpool.Pool
	log  *slog.Logger
}

// Config says which database to use.
type Config struct {
	// URL is a PostgreSQL connection string (postgres://user@host:port/db?…, or key=value
	// pairs), as libpq and pgx take it; pool_max_conns and the like may be set in it.
	URL    string
	Logger *slog.Logger // nil: discard
}

// Open connects, migrates the schema and checks the server's durability settings.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("postgres catalog: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres catalog: %w", err)
	}
	d := &DB{pool: pool, log: log}
	where := pc.ConnConfig.Host + "/" + pc.ConnConfig.Database
	if err := d.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres catalog %s: %w", where, err)
	}
	if err := d.checkDurability(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres catalog %s: %w", where, err)
	}
	return d, nil
}

// Close closes the pool's connections.
func (d *DB) Close() error {
	d.pool.Close()
	return nil
}

// Pool is the connection pool, for components that keep their own tables next to the catalog.
func (d *DB) Pool() *pgxpool.Pool { return d.pool }

// migration is one embedded schema step.
type migration struct {
	version int
	name    string
}

// embedded lists the migrations in version order; names are NNNN_description.sql.
func embedded() ([]migration, error) {
	entries, err := fs.ReadDir(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("embedded migration %q is not named NNNN_name.sql", e.Name())
		}
		out = append(out, migration{version: v, name: e.Name()})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("embedded migrations skip from %d to %d", i, m.version)
		}
	}
	return out, nil
}

// migrate applies the embedded migrations the database lacks, all in one transaction under
// an advisory transaction lock: a node that dies mid-way leaves nothing half done, and the
// lock goes with its session.
func (d *DB) migrate(ctx context.Context) error {
	all, err := embedded()
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS kvsd_schema (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		var have int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM kvsd_schema`).Scan(&have); err != nil {
			return err
		}
		if have > len(all) {
			return fmt.Errorf("schema version %d is newer than this kvsd supports (%d); run a newer kvsd", have, len(all))
		}
		for _, m := range all[have:] {
			sql, err := migrations.ReadFile("migrations/" + m.name)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, string(sql)); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO kvsd_schema (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
				return err
			}
			d.log.Info("catalog schema migrated", "version", m.version, "migration", m.name)
		}
		return nil
	})
}

// checkDurability warns when commits return before their WAL is flushed.
func (d *DB) checkDurability(ctx context.Context) error {
	sc, err := d.SynchronousCommit(ctx)
	if err != nil {
		return err
	}
	if sc == "off" {
		d.log.Warn("PostgreSQL synchronous_commit is off: a fragment acknowledged PERSISTED can be lost if the database server crashes; set synchronous_commit = on",
			"synchronous_commit", sc)
	}
	return nil
}

// SynchronousCommit reports the session's synchronous_commit setting (for doctor and tests).
func (d *DB) SynchronousCommit(ctx context.Context) (string, error) {
	var sc string
	err := d.pool.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&sc)
	return sc, err
}

// isUniqueViolation reports a duplicate key (SQLSTATE 23505).
func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}
