package postgres

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kvsd/kvsd/internal/catalog"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/mkv"
)

// The fragment index (catalog.Index) in tables fragment_streams, fragments, fragment_headers
// and fragment_segments (migrations/0001_init.sql). Header and segment rows count the entries
// naming them, as the bbolt buckets do, so expiry frees them without scanning what remains.

// streamID is the subquery naming a Key's fragment_streams row; $1 and $2 are its name and
// creation ms in every statement that uses it.
const streamID = `(SELECT id FROM fragment_streams WHERE name = $1 AND created_ms = $2)`

// fragCols are the columns scanFrag reads, in its order.
const fragCols = `seq, producer_ms, server_ms, duration_ms, timecode, segment, "offset", length, header_id, tags`

func fragNotFound(k catalog.Key, what string) error {
	return fmt.Errorf("%w: %s of stream %s", catalog.ErrFragmentNotFound, what, k.Name)
}

func checkEntry(k catalog.Key, f *fragment.Fragment) error {
	switch {
	case f.Seq == 0:
		return fmt.Errorf("index %s: fragment sequence 0", k.Name)
	case f.Seq > math.MaxInt64:
		return fmt.Errorf("index %s: fragment sequence %d is out of range", k.Name, f.Seq)
	case f.Number != fragment.FormatNumber(k.CreatedMs, f.Seq):
		return fmt.Errorf("index %s: fragment number %q is not FormatNumber(%d, %d)", k.Name, f.Number, k.CreatedMs, f.Seq)
	case f.HeaderID == "":
		return fmt.Errorf("index %s: fragment %d has no header id", k.Name, f.Seq)
	}
	return nil
}

// encodeTags packs tags as uvarint-length-prefixed name, value pairs (bytea: tag values may
// hold bytes text columns refuse, such as NUL); nil when there are none.
func encodeTags(tags []mkv.SimpleTag) []byte {
	if len(tags) == 0 {
		return nil
	}
	var b []byte
	for _, t := range tags {
		b = append(binary.AppendUvarint(b, uint64(len(t.Name))), t.Name...)
		b = append(binary.AppendUvarint(b, uint64(len(t.Value))), t.Value...)
	}
	return b
}

var errTags = errors.New("fragment tags are damaged")

func decodeTags(b []byte) ([]mkv.SimpleTag, error) {
	if b == nil {
		return nil, nil
	}
	str := func() (string, bool) {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return "", false
		}
		s := string(b[w : w+int(n)])
		b = b[w+int(n):]
		return s, true
	}
	tags := []mkv.SimpleTag{}
	for len(b) > 0 {
		name, ok1 := str()
		value, ok2 := str()
		if !ok1 || !ok2 {
			return nil, errTags
		}
		tags = append(tags, mkv.SimpleTag{Name: name, Value: value})
	}
	return tags, nil
}

// scanFrag reads one row of fragCols into a fresh Fragment of k, its Location set.
func scanFrag(k catalog.Key, row pgx.CollectableRow) (*fragment.Fragment, error) {
	var (
		seq, pms, sms, dms, tc, seg, off, length int64
		hdr                                      string
		tags                                     []byte
	)
	if err := row.Scan(&seq, &pms, &sms, &dms, &tc, &seg, &off, &length, &hdr, &tags); err != nil {
		return nil, err
	}
	loc := catalog.Location{Segment: uint64(seg), Offset: off, Length: length}
	f := &fragment.Fragment{
		Seq: uint64(seq), Number: fragment.FormatNumber(k.CreatedMs, uint64(seq)), Timecode: uint64(tc),
		ProducerTime: time.UnixMilli(pms).UTC(), ServerTime: time.UnixMilli(sms).UTC(),
		Duration: time.Duration(dms) * time.Millisecond, Size: length, HeaderID: hdr, Location: loc,
	}
	var err error
	if f.Tags, err = decodeTags(tags); err != nil {
		return nil, fmt.Errorf("fragment %d of %s: %w", seq, k.Name, err)
	}
	return f, nil
}

func (d *DB) queryFrags(ctx context.Context, k catalog.Key, sql string, args ...any) ([]*fragment.Fragment, error) {
	rows, err := d.pool.Query(ctx, sql, append([]any{k.Name, k.CreatedMs}, args...)...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (*fragment.Fragment, error) { return scanFrag(k, row) })
}

// PutFragment stores one fragment entry: a PutFragments of one.
func (d *DB) PutFragment(ctx context.Context, k catalog.Key, f *fragment.Fragment, loc catalog.Location, header []byte) error {
	return d.PutFragments(ctx, []catalog.Put{{Key: k, Fragment: f, Location: loc, Header: header}})
}

// keyPuts are one Key's entries of a PutFragments, in the order given (increasing Seq).
type keyPuts struct {
	key  catalog.Key
	puts []catalog.Put
}

// PutFragments stores entries of any streams as one pipelined batch: an implicit transaction
// that commits all of it or nothing, in one round trip. Per stream it checks the lease epoch
// (FOR SHARE: an AcquireLease waits for this commit), upserts the stream row with its new
// last seq, inserts the entries (a stored seq violates the primary key) and counts headers
// and segments. Streams go in Key order, so concurrent batches lock rows in the same order.
func (d *DB) PutFragments(ctx context.Context, puts []catalog.Put) error {
	if err := ctx.Err(); err != nil || len(puts) == 0 {
		return err
	}
	groups := map[catalog.Key]*keyPuts{}
	var keys []*keyPuts
	for _, p := range puts {
		if err := checkEntry(p.Key, p.Fragment); err != nil {
			return err
		}
		g := groups[p.Key]
		if g == nil {
			g = &keyPuts{key: p.Key}
			groups[p.Key] = g
			keys = append(keys, g)
		}
		g.puts = append(g.puts, p)
	}
	slices.SortFunc(keys, func(a, b *keyPuts) int {
		return cmp.Or(cmp.Compare(a.key.Name, b.key.Name), cmp.Compare(a.key.CreatedMs, b.key.CreatedMs))
	})

	b := &pgx.Batch{}
	var checks []func(pgx.BatchResults) error // one per queued statement, in order
	payloads := make([]string, 0, len(keys))
	for _, g := range keys {
		k := g.key
		fences := map[uint64]bool{}
		for _, p := range g.puts {
			if p.Epoch != 0 && !fences[p.Epoch] {
				fences[p.Epoch] = true
				b.Queue(`SELECT kvsd_fence($1, $2)`, k.Name, int64(p.Epoch))
				checks = append(checks, fenceCheck(k.Name, p.Epoch))
			}
		}
		last := g.puts[len(g.puts)-1]
		for _, p := range g.puts {
			if p.Fragment.Seq > last.Fragment.Seq {
				last = p
			}
		}
		b.Queue(`INSERT INTO fragment_streams AS s (name, created_ms, last_seq, last_segment, last_offset, last_length)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (name, created_ms) DO UPDATE SET
				last_seq = EXCLUDED.last_seq, last_segment = EXCLUDED.last_segment,
				last_offset = EXCLUDED.last_offset, last_length = EXCLUDED.last_length
			WHERE s.last_seq < EXCLUDED.last_seq`,
			k.Name, k.CreatedMs, int64(last.Fragment.Seq), int64(last.Location.Segment), last.Location.Offset, last.Location.Length)
		checks = append(checks, execOK)
		payloads = append(payloads, fragmentPayload(k, last.Fragment.Seq))

		headers := map[string]*headerRefs{}
		var hids []string
		segments := map[uint64]int64{}
		var segs []uint64
		for _, p := range g.puts {
			f := p.Fragment
			b.Queue(`INSERT INTO fragments (stream_id, `+fragCols+`)
				VALUES (`+streamID+`, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
				k.Name, k.CreatedMs, int64(f.Seq), f.ProducerTime.UnixMilli(), f.ServerTime.UnixMilli(), f.Duration.Milliseconds(),
				int64(f.Timecode), int64(p.Location.Segment), p.Location.Offset, p.Location.Length, f.HeaderID, encodeTags(f.Tags))
			checks = append(checks, dupCheck(k, f.Seq))
			h := headers[f.HeaderID]
			if h == nil {
				h = &headerRefs{}
				headers[f.HeaderID] = h
				hids = append(hids, f.HeaderID)
			}
			h.n++
			if h.bytes == nil && len(p.Header) > 0 {
				h.bytes = p.Header
			}
			if segments[p.Location.Segment] == 0 {
				segs = append(segs, p.Location.Segment)
			}
			segments[p.Location.Segment]++
		}
		// Header and segment rows in sorted order, as ExpireFragments takes them, so that the
		// two never wait on each other's row locks in opposite orders.
		slices.Sort(hids)
		slices.Sort(segs)
		for _, id := range hids {
			// Stored bytes are never replaced. A header neither stored nor brought makes the
			// proposed row's header NULL: a not-null violation that fails the batch.
			h := headers[id]
			b.Queue(`INSERT INTO fragment_headers AS h (stream_id, id, header, refs)
				VALUES (`+streamID+`, $3, coalesce($4, (SELECT header FROM fragment_headers WHERE stream_id = `+streamID+` AND id = $3)), $5)
				ON CONFLICT (stream_id, id) DO UPDATE SET refs = h.refs + EXCLUDED.refs`, k.Name, k.CreatedMs, id, h.bytes, h.n)
			checks = append(checks, headerCheck(k, id))
		}
		for _, seg := range segs {
			b.Queue(`INSERT INTO fragment_segments AS g (stream_id, segment, refs) VALUES (`+streamID+`, $3, $4)
				ON CONFLICT (stream_id, segment) DO UPDATE SET refs = g.refs + EXCLUDED.refs`, k.Name, k.CreatedMs, int64(seg), segments[seg])
			checks = append(checks, execOK)
		}
	}
	if err := d.runBatch(ctx, b, checks); err != nil {
		return err
	}
	d.notifyFragments(ctx, payloads)
	return nil
}

// notifyFragments tells the listeners of every node (live readers elsewhere) that fragments
// were committed, after the commit and in a transaction of its own whose commit is not
// flushed. PostgreSQL serialises the commits of all transactions that NOTIFY (a database-wide
// lock held through the commit record's flush), so a NOTIFY in the index commit made every
// node's commits wait on each other's WAL flushes, disk stalls included. A notification lost
// in a crash costs a wake-up that polling makes up for.
func (d *DB) notifyFragments(ctx context.Context, payloads []string) {
	_, err := d.pool.Exec(ctx, `SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, p) FROM unnest($2::text[]) AS p`,
		FragmentsChannel, payloads)
	if err != nil {
		d.log.Debug("notifying committed fragments; listeners poll", "err", err)
	}
}

// SQLSTATEs the batch's statements fail with.
const (
	sqlstateFenced  = "KV001" // kvsd_fence
	sqlstateNotNull = "23502"
)

type headerRefs struct {
	bytes []byte
	n     int64
}

// runBatch sends b as one implicit transaction and runs each statement's check on its result.
// Every refusal is an error of the server's (a constraint, kvsd_fence), so the server skips
// the rest and rolls the whole batch back: the index is left as it was.
func (d *DB) runBatch(ctx context.Context, b *pgx.Batch, checks []func(pgx.BatchResults) error) error {
	br := d.pool.SendBatch(ctx, b)
	var first error
	for _, check := range checks {
		if err := check(br); err != nil {
			first = err
			break
		}
	}
	if err := br.Close(); first == nil && err != nil {
		first = err
	}
	return first
}

func execOK(br pgx.BatchResults) error {
	_, err := br.Exec()
	return err
}

// fenceCheck turns kvsd_fence's error into a *catalog.FencedError.
func fenceCheck(stream string, epoch uint64) func(pgx.BatchResults) error {
	return func(br pgx.BatchResults) error {
		_, err := br.Exec()
		if pe, ok := errors.AsType[*pgconn.PgError](err); ok && pe.Code == sqlstateFenced {
			cur, _ := strconv.ParseUint(pe.Detail, 10, 64)
			return &catalog.FencedError{Stream: stream, Epoch: epoch, Current: cur}
		}
		return err
	}
}

func dupCheck(k catalog.Key, seq uint64) func(pgx.BatchResults) error {
	return func(br pgx.BatchResults) error {
		_, err := br.Exec()
		if isUniqueViolation(err) {
			return fmt.Errorf("index %s: fragment %d is stored already", k.Name, seq)
		}
		return err
	}
}

func headerCheck(k catalog.Key, id string) func(pgx.BatchResults) error {
	return func(br pgx.BatchResults) error {
		_, err := br.Exec()
		if pe, ok := errors.AsType[*pgconn.PgError](err); ok && pe.Code == sqlstateNotNull {
			return fmt.Errorf("index %s: fragments name header %q, which is not stored, and bring none", k.Name, id)
		}
		return err
	}
}

// GetFragment returns one entry.
func (d *DB) GetFragment(ctx context.Context, k catalog.Key, seq uint64) (*fragment.Fragment, error) {
	if seq == 0 || seq > math.MaxInt64 {
		return nil, fragNotFound(k, fmt.Sprintf("fragment %d", seq))
	}
	fs, err := d.queryFrags(ctx, k, `SELECT `+fragCols+` FROM fragments WHERE stream_id = `+streamID+` AND seq = $3`, int64(seq))
	if err != nil {
		return nil, fmt.Errorf("get fragment %d of %s: %w", seq, k.Name, err)
	}
	if len(fs) == 0 {
		return nil, fragNotFound(k, fmt.Sprintf("fragment %d", seq))
	}
	return fs[0], nil
}

// GetHeader returns the header stored under id.
func (d *DB) GetHeader(ctx context.Context, k catalog.Key, id string) ([]byte, error) {
	var h []byte
	err := d.pool.QueryRow(ctx, `SELECT header FROM fragment_headers WHERE stream_id = `+streamID+` AND id = $3`, k.Name, k.CreatedMs, id).Scan(&h)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fragNotFound(k, fmt.Sprintf("header %q", id))
	}
	if err != nil {
		return nil, fmt.Errorf("get header %q of %s: %w", id, k.Name, err)
	}
	return h, nil
}

// LastFragment returns the highest seq ever put for k and its Location.
func (d *DB) LastFragment(ctx context.Context, k catalog.Key) (uint64, catalog.Location, error) {
	var seq, seg, off, length int64
	err := d.pool.QueryRow(ctx, `SELECT last_seq, last_segment, last_offset, last_length FROM fragment_streams
		WHERE name = $1 AND created_ms = $2`, k.Name, k.CreatedMs).Scan(&seq, &seg, &off, &length)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, catalog.Location{}, nil
	}
	if err != nil {
		return 0, catalog.Location{}, fmt.Errorf("last fragment of %s: %w", k.Name, err)
	}
	return uint64(seq), catalog.Location{Segment: uint64(seg), Offset: off, Length: length}, nil
}

// timeCol is the column of the kind timeline; fixed strings only, never input.
func timeCol(kind catalog.TimeKind) string {
	if kind == catalog.ServerTime {
		return "server_ms"
	}
	return "producer_ms"
}

// clampSeq maps a uint64 seq onto the bigint column's range.
func clampSeq(seq uint64) int64 { return int64(min(seq, math.MaxInt64)) }

// ListFragments reads one page of the kind timeline: a range scan of its (stream, start, seq)
// index from the later of (fromMs, 0) and after, one row past limit to learn whether more follow.
func (d *DB) ListFragments(ctx context.Context, k catalog.Key, kind catalog.TimeKind, fromMs, toMs int64, after *catalog.Position, limit int) ([]*fragment.Fragment, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if limit < 1 || fromMs > toMs {
		return nil, false, nil
	}
	startMs, startSeq := fromMs, int64(0) // (ms, seq) > (fromMs, 0) is ms >= fromMs: seqs start at 1
	if after != nil && (after.Ms > fromMs || after.Ms == fromMs && after.Seq > 0) {
		startMs, startSeq = after.Ms, clampSeq(after.Seq)
	}
	col := timeCol(kind)
	fs, err := d.queryFrags(ctx, k, `SELECT `+fragCols+` FROM fragments
		WHERE stream_id = `+streamID+` AND (`+col+`, seq) > ($3, $4) AND `+col+` <= $5
		ORDER BY `+col+`, seq LIMIT $6`, startMs, startSeq, toMs, int64(limit)+1)
	if err != nil {
		return nil, false, fmt.Errorf("list fragments of %s: %w", k.Name, err)
	}
	if len(fs) > limit {
		return fs[:limit], true, nil
	}
	return fs, false, nil
}

// FragmentsAfter reads the primary key in seq order.
func (d *DB) FragmentsAfter(ctx context.Context, k catalog.Key, afterSeq uint64, limit int) ([]*fragment.Fragment, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit < 1 || afterSeq >= math.MaxInt64 {
		return nil, nil
	}
	fs, err := d.queryFrags(ctx, k, `SELECT `+fragCols+` FROM fragments WHERE stream_id = `+streamID+` AND seq > $3
		ORDER BY seq LIMIT $4`, int64(afterSeq), int64(limit))
	if err != nil {
		return nil, fmt.Errorf("fragments of %s after %d: %w", k.Name, afterSeq, err)
	}
	return fs, nil
}

// SeqAt is one query over the kind timeline's index: among the entries with the latest start
// ≤ ms, the first (by seq) whose duration reaches past ms; else the first entry starting after
// ms. The end is compared in numeric, so that starts near the int64 limits cannot overflow.
func (d *DB) SeqAt(ctx context.Context, k catalog.Key, kind catalog.TimeKind, ms int64) (uint64, error) {
	col := timeCol(kind)
	var seq int64
	err := d.pool.QueryRow(ctx, `WITH s AS MATERIALIZED (SELECT id FROM fragment_streams WHERE name = $1 AND created_ms = $2),
		latest AS (SELECT f.`+col+` AS start FROM fragments f, s WHERE f.stream_id = s.id AND f.`+col+` <= $3
			ORDER BY f.`+col+` DESC LIMIT 1)
		(SELECT f.seq, 0 AS pri FROM fragments f, s, latest
			WHERE f.stream_id = s.id AND f.`+col+` = latest.start AND f.`+col+`::numeric + f.duration_ms > $3
			ORDER BY f.seq LIMIT 1)
		UNION ALL
		(SELECT f.seq, 1 FROM fragments f, s WHERE f.stream_id = s.id AND f.`+col+` > $3
			ORDER BY f.`+col+`, f.seq LIMIT 1)
		ORDER BY pri LIMIT 1`, k.Name, k.CreatedMs, ms).Scan(&seq, nil)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fragNotFound(k, "fragment at or after that time")
	}
	if err != nil {
		return 0, fmt.Errorf("fragment of %s at %d: %w", k.Name, ms, err)
	}
	return uint64(seq), nil
}

// ExpireFragments removes the oldest entries by server time in one transaction, then takes
// their counts off their headers and segments; rows whose count reaches zero go, and the
// segments among them are returned as freed.
func (d *DB) ExpireFragments(ctx context.Context, k catalog.Key, cutoffMs int64, limit int) (int, []uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	if limit < 1 {
		return 0, nil, nil
	}
	removed := 0
	var freed []uint64
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		removed, freed = 0, nil
		var id int64
		err := tx.QueryRow(ctx, `SELECT id FROM fragment_streams WHERE name = $1 AND created_ms = $2`, k.Name, k.CreatedMs).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `WITH gone AS (
				DELETE FROM fragments WHERE stream_id = $1 AND seq IN (
					SELECT seq FROM fragments WHERE stream_id = $1 AND server_ms < $2 ORDER BY server_ms, seq LIMIT $3)
				RETURNING segment, header_id)
			SELECT segment, header_id, count(*) FROM gone GROUP BY segment, header_id`, id, cutoffMs, int64(limit))
		if err != nil {
			return err
		}
		segs, hdrs := map[int64]int64{}, map[string]int64{}
		var segment, n int64
		var hid string
		_, err = pgx.ForEachRow(rows, []any{&segment, &hid, &n}, func() error {
			segs[segment] += n
			hdrs[hid] += n
			removed += int(n)
			return nil
		})
		if err != nil || removed == 0 {
			return err
		}
		// Sorted, as PutFragments takes them (see there).
		for _, h := range slices.Sorted(maps.Keys(hdrs)) {
			if _, err := tx.Exec(ctx, `UPDATE fragment_headers SET refs = refs - $3 WHERE stream_id = $1 AND id = $2`, id, h, hdrs[h]); err != nil {
				return err
			}
		}
		for _, s := range slices.Sorted(maps.Keys(segs)) {
			if _, err := tx.Exec(ctx, `UPDATE fragment_segments SET refs = refs - $3 WHERE stream_id = $1 AND segment = $2`, id, s, segs[s]); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM fragment_headers WHERE stream_id = $1 AND refs <= 0 AND id = ANY($2)`, id, slices.Collect(maps.Keys(hdrs))); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `DELETE FROM fragment_segments WHERE stream_id = $1 AND refs <= 0 AND segment = ANY($2)
			RETURNING segment`, id, slices.Collect(maps.Keys(segs)))
		if err != nil {
			return err
		}
		gone, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		slices.Sort(gone)
		for _, s := range gone {
			freed = append(freed, uint64(s))
		}
		return nil
	})
	if err != nil {
		return 0, nil, fmt.Errorf("expire fragments of %s: %w", k.Name, err)
	}
	return removed, freed, nil
}

// LiveSegments lists k's segments with a count above zero.
func (d *DB) LiveSegments(ctx context.Context, k catalog.Key) ([]uint64, error) {
	rows, err := d.pool.Query(ctx, `SELECT segment FROM fragment_segments WHERE stream_id = `+streamID+` ORDER BY segment`, k.Name, k.CreatedMs)
	if err != nil {
		return nil, fmt.Errorf("live segments of %s: %w", k.Name, err)
	}
	segs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("live segments of %s: %w", k.Name, err)
	}
	var out []uint64
	for _, s := range segs {
		out = append(out, uint64(s))
	}
	return out, nil
}

// DeleteFragments removes k's stream row; its entries, headers and segments go with it
// (ON DELETE CASCADE).
func (d *DB) DeleteFragments(ctx context.Context, k catalog.Key) error {
	if _, err := d.pool.Exec(ctx, `DELETE FROM fragment_streams WHERE name = $1 AND created_ms = $2`, k.Name, k.CreatedMs); err != nil {
		return fmt.Errorf("delete fragments of %s: %w", k.Name, err)
	}
	return nil
}

// FragmentStreams lists the Keys with a stream row.
func (d *DB) FragmentStreams(ctx context.Context) ([]catalog.Key, error) {
	rows, err := d.pool.Query(ctx, `SELECT name, created_ms FROM fragment_streams ORDER BY name, created_ms`)
	if err != nil {
		return nil, fmt.Errorf("fragment streams: %w", err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowToStructByPos[catalog.Key])
	if err != nil {
		return nil, fmt.Errorf("fragment streams: %w", err)
	}
	return keys, nil
}
