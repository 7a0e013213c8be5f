package postgres

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/catalog"
	"github.com/kvsd/kvsd/internal/catalog/catalogtest"
	"github.com/kvsd/kvsd/internal/catalog/postgres/pgtest"
	"github.com/kvsd/kvsd/internal/logtest"
)

func open(t *testing.T, url string) *DB {
	t.Helper()
	db, err := Open(context.Background(), Config{URL: url})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestCatalog(t *testing.T) {
	catalogtest.Run(t, func(t *testing.T) catalog.Catalog { return open(t, pgtest.NewDatabase(t)) })
}

func TestLeases(t *testing.T) {
	catalogtest.TestLeases(t, func(t *testing.T) catalogtest.Fenced { return open(t, pgtest.NewDatabase(t)) })
}

// Nodes starting together against a new database migrate it once: the others wait on the
// advisory lock and find the schema current.
func TestConcurrentOpensMigrateOnce(t *testing.T) {
	url := pgtest.NewDatabase(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			db, err := Open(context.Background(), Config{URL: url})
			if err == nil {
				err = db.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	db := open(t, url)
	var n, max int
	require.NoError(t, db.pool.QueryRow(context.Background(), `SELECT count(*), max(version) FROM kvsd_schema`).Scan(&n, &max))
	all, err := embedded()
	require.NoError(t, err)
	require.Equal(t, len(all), n, "each migration applied once")
	require.Equal(t, len(all), max)
}

func TestNewerSchemaRefused(t *testing.T) {
	url := pgtest.NewDatabase(t)
	db := open(t, url)
	_, err := db.pool.Exec(context.Background(), `INSERT INTO kvsd_schema (version, name) VALUES (99, '0099_future.sql')`)
	require.NoError(t, err)
	_, err = Open(context.Background(), Config{URL: url})
	require.ErrorContains(t, err, "schema version 99 is newer than this kvsd supports")
}

func TestWarnsWhenSynchronousCommitIsOff(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	for _, tc := range []struct {
		options string
		warn    bool
	}{{"", false}, {"-c%20synchronous_commit%3Doff", true}} {
		var logs logtest.Buffer
		u := dbURL
		if tc.options != "" {
			u += "&options=" + tc.options
		}
		db, err := Open(context.Background(), Config{URL: u, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		require.NoError(t, err)
		sc, err := db.SynchronousCommit(context.Background())
		require.NoError(t, err)
		require.NoError(t, db.Close())
		require.Equal(t, tc.warn, strings.Contains(logs.String(), "synchronous_commit is off"), "synchronous_commit=%s: %s", sc, logs.String())
	}
}

// The ListFragments and SeqAt queries must be range scans of a timeline index, whatever the
// table's size: that is what keeps a page of a 1.3-million-row index within milliseconds.
func TestTimelineQueriesUseTheirIndex(t *testing.T) {
	ctx := context.Background()
	db := open(t, pgtest.NewDatabase(t))
	k := catalog.Key{Name: "cam", CreatedMs: 1700000000123}
	// 50 streams × 400 entries, so a sequential scan is no longer the planner's cheap choice.
	_, err := db.pool.Exec(ctx, `
		INSERT INTO fragment_streams (name, created_ms, last_seq, last_segment, last_offset, last_length)
			SELECT CASE WHEN s = 0 THEN 'cam' ELSE 'cam' || s END, 1700000000123, 400, 1, 0, 1 FROM generate_series(0, 49) s;
		INSERT INTO fragments (stream_id, seq, producer_ms, server_ms, duration_ms, timecode, segment, "offset", length, header_id)
			SELECT id, q, 1700000000000 + q * 2000, 1700000000500 + q * 2000, 2000, q, 1, 0, 1, 'h'
			FROM fragment_streams, generate_series(1, 400) q;
		ANALYZE`)
	require.NoError(t, err)
	for _, kind := range []catalog.TimeKind{catalog.ProducerTime, catalog.ServerTime} {
		col := timeCol(kind)
		rows, err := db.pool.Query(ctx, `EXPLAIN SELECT `+fragCols+` FROM fragments
			WHERE stream_id = `+streamID+` AND (`+col+`, seq) > ($3, $4) AND `+col+` <= $5 ORDER BY `+col+`, seq LIMIT $6`,
			k.Name, k.CreatedMs, int64(1700000100000), int64(0), int64(1700000200000), 1001)
		require.NoError(t, err)
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		plan := strings.Join(lines, "\n")
		index := map[catalog.TimeKind]string{catalog.ProducerTime: "fragments_producer", catalog.ServerTime: "fragments_server"}[kind]
		require.Regexp(t, `Index Scan (using|on) `+index, plan)
		require.NotContains(t, plan, "Seq Scan on fragments ", plan)
		fs, more, err := db.ListFragments(ctx, k, kind, 1700000100000, 1700000200000, nil, 10)
		require.NoError(t, err)
		require.True(t, more)
		require.Len(t, fs, 10)
	}
}
