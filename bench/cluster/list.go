package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kvsd/kvsd/bench/internal/kvsdproc"
	"github.com/kvsd/kvsd/bench/internal/report"
	"github.com/kvsd/kvsd/internal/catalog"
	"github.com/kvsd/kvsd/internal/catalog/postgres"
	"github.com/kvsd/kvsd/internal/fragment"
)

const (
	listStream   = "list-index"
	listInterval = 2 * time.Second
	listWindow   = time.Hour
	perSegment   = 30 // fragments per media segment, as in bench/ingest's fill
)

// fillIndex gives stream listStream count index rows 2 s apart in PostgreSQL (no media: none
// is needed to list). The first goes through the catalog's own PutFragments, which makes the
// stream's index rows (fragment_streams, its header); the rest are one COPY, then the
// reference counts and the stream's last fragment are set as PutFragments would have. It
// returns the first fragment's producer time in Unix ms.
func (b *bench) fillIndex(ctx context.Context, front *kvsd, count int) (int64, error) {
	// Created through the API, so that the stream record is kvsd's; a year's retention keeps
	// the sweeper off it.
	if err := front.createStreams(ctx, []string{listStream}, 24*365); err != nil {
		return 0, err
	}
	db, err := postgres.Open(ctx, postgres.Config{URL: b.in.pgURL})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	st, err := db.GetStream(ctx, listStream)
	if err != nil {
		return 0, err
	}
	key := catalog.Key{Name: st.Name, CreatedMs: st.CreationTime.UnixMilli()}
	header := b.media.Raw[:b.media.HeaderEnd]
	sum := sha256.Sum256(header)
	headerID := hex.EncodeToString(sum[:16])
	first := time.Now().Add(-time.Duration(count)*listInterval - time.Hour).Truncate(time.Second)
	entry := func(i int) (*fragment.Fragment, catalog.Location) {
		pt := first.Add(time.Duration(i) * listInterval).UTC()
		stime := pt.Add(300*time.Millisecond + time.Duration(i%97)*time.Millisecond)
		seq := uint64(stime.UnixMicro())
		size := int64(480_000 + (i%101)*400)
		return &fragment.Fragment{Seq: seq, Number: fragment.FormatNumber(key.CreatedMs, seq), Timecode: uint64(pt.UnixMilli()),
				ProducerTime: pt, ServerTime: stime, Duration: listInterval, Size: size, HeaderID: headerID},
			catalog.Location{Segment: uint64(i/perSegment) + 1, Offset: int64(i%perSegment) * 500_000, Length: size}
	}
	f0, l0 := entry(0)
	if err := db.PutFragments(ctx, []catalog.Put{{Key: key, Fragment: f0, Location: l0, Header: header}}); err != nil {
		return 0, fmt.Errorf("first index row: %w", err)
	}
	pool := db.Pool()
	var sid int64
	if err := pool.QueryRow(ctx, `SELECT id FROM fragment_streams WHERE name = $1 AND created_ms = $2`, key.Name, key.CreatedMs).Scan(&sid); err != nil {
		return 0, fmt.Errorf("stream id: %w", err)
	}
	i := 1
	copied, err := pool.CopyFrom(ctx, pgx.Identifier{"fragments"},
		[]string{"stream_id", "seq", "producer_ms", "server_ms", "duration_ms", "timecode", "segment", "offset", "length", "header_id"},
		pgx.CopyFromFunc(func() ([]any, error) {
			if i >= count {
				return nil, nil
			}
			f, l := entry(i)
			i++
			if i%200_000 == 0 {
				b.logf("cameras: index: %d of %d rows", i, count)
			}
			return []any{sid, int64(f.Seq), f.ProducerTime.UnixMilli(), f.ServerTime.UnixMilli(), f.Duration.Milliseconds(),
				int64(f.Timecode), int64(l.Segment), l.Offset, l.Length, f.HeaderID}, nil
		}))
	if err != nil {
		return 0, fmt.Errorf("copy index rows: %w", err)
	}
	if copied != int64(count-1) {
		return 0, fmt.Errorf("copied %d index rows, want %d", copied, count-1)
	}
	fl, ll := entry(count - 1)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`UPDATE fragment_headers SET refs = $2 WHERE stream_id = $1`, []any{sid, count}},
		{`INSERT INTO fragment_segments (stream_id, segment, refs) SELECT stream_id, segment, count(*) FROM fragments
			WHERE stream_id = $1 GROUP BY stream_id, segment
			ON CONFLICT (stream_id, segment) DO UPDATE SET refs = EXCLUDED.refs`, []any{sid}},
		{`UPDATE fragment_streams SET last_seq = $2, last_segment = $3, last_offset = $4, last_length = $5 WHERE id = $1`,
			[]any{sid, int64(fl.Seq), int64(ll.Segment), ll.Offset, ll.Length}},
		{`ANALYZE fragments`, nil},
	} {
		if _, err := pool.Exec(ctx, q.sql, q.args...); err != nil {
			return 0, fmt.Errorf("after the copy: %s: %w", strings.Fields(q.sql)[0], err)
		}
	}
	return first.UnixMilli(), nil
}

// call sends a signed JSON request and returns the answer's body and how long the exchange
// took (kvsdproc.Call).
func (k *kvsd) call(ctx context.Context, op string, in any) ([]byte, time.Duration, error) {
	return kvsdproc.Call(ctx, k.http, k.url, op, in)
}

// listRange lists [fromMs, toMs] of a stream by producer time, following NextToken: the
// fragments, and the time of each call.
func (k *kvsd) listRange(ctx context.Context, stream string, fromMs, toMs int64) ([]kvsdproc.Listed, []time.Duration, error) {
	return kvsdproc.ListFragments(ctx, k.http, k.url, stream, fromMs, toMs, 10_000)
}

// list measures ListFragments over the filled index, through the front door, with the
// cluster still up (the cameras have stopped).
func (b *bench) list(ctx context.Context, c *cluster) error {
	count := b.cfg.indexRows
	fmt.Fprintf(b.out, "### ListFragments over a %d-row index in PostgreSQL\n\n", count)
	b.logf("cameras: index: filling %d rows", count)
	began := time.Now()
	firstMs, err := b.fillIndex(ctx, c.front, count)
	if err != nil {
		return err
	}
	fill := time.Since(began)
	b.logf("cameras: index filled in %s", fill.Round(time.Second))
	rng := rand.New(rand.NewPCG(3, 4))
	span := int64(count)*listInterval.Milliseconds() - listWindow.Milliseconds()
	if span <= 0 {
		return fmt.Errorf("-index-rows %d: want more than an hour of fragments (%d)", count, listWindow/listInterval)
	}
	want := int(listWindow / listInterval)
	var calls, windows []time.Duration
	w := b.clusterWatch(c)
	cpu0 := snapCPU(w)
	for i := range b.cfg.listWarmup + b.cfg.listWindows {
		from := firstMs + rng.Int64N(span)
		got, cs, err := c.front.listRange(ctx, listStream, from, from+listWindow.Milliseconds())
		if err != nil {
			return err
		}
		if len(got) != want && len(got) != want+1 { // +1: both ends inclusive, and a window can start on a fragment
			return fmt.Errorf("window at %d ms listed %d fragments, want %d", from, len(got), want)
		}
		if i < b.cfg.listWarmup {
			cpu0 = snapCPU(w)
			continue
		}
		var sum time.Duration
		for _, d := range cs {
			sum += d
		}
		calls = append(calls, cs...)
		windows = append(windows, sum)
	}
	cpu := cpu0.to(snapCPU(w))
	dc, dw := report.NewDist(calls), report.NewDist(windows)
	ok := len(dc) > 0 && dc.Pct(99) <= 20*time.Millisecond
	t := &report.Table{Head: []string{"ListFragments, through the front door", "samples", "p50", "p90", "p99", "max", "target"}}
	t.AddDist("per call (MaxResults 1000)", dc, "p99 ≤ 20 ms: "+report.Verdict(ok))
	t.AddDist(fmt.Sprintf("per 1-hour window (%d fragments, %d calls)", want, len(dc)/max(1, len(dw))), dw, "")
	t.Write(b.out)
	fmt.Fprintf(b.out, "One stream whose index holds %d fragments in the cluster's PostgreSQL database (%.1f days at one per %s; "+
		"index rows only, no media: the first through the catalog's PutFragments, the rest with one COPY, %s). Windows start "+
		"at random (fixed seed) and are listed with PRODUCER_TIMESTAMP, MaxResults 1000, following NextToken, through the "+
		"front door (so on any node); each is checked to return all %d fragments. Times are signed HTTP POSTs over a kept-alive "+
		"loopback connection, from sending the request to the last byte of the answer; the first %s are not counted. One "+
		"client, one call at a time. CPU while measuring: kvsd %.2f cores, PostgreSQL %.2f, this program %.2f, other %.2f.\n\n",
		count, float64(count)*listInterval.Hours()/24, listInterval, fill.Round(time.Second), want, report.Plural(b.cfg.listWarmup, "window"),
		cpu.groups[grpKvsd], cpu.groups[grpPostgres], cpu.groups[grpSelf], cpu.other)
	b.results = append(b.results, report.Result{What: fmt.Sprintf("ListFragments over %d rows: p99 per call ≤ 20 ms", count),
		Value: report.MS(dc.Pct(99)), OK: ok, Other: cpu.other})
	b.logf("cameras: list per call p50 %s p99 %s; per window p50 %s p99 %s", report.MS(dc.Pct(50)), report.MS(dc.Pct(99)),
		report.MS(dw.Pct(50)), report.MS(dw.Pct(99)))
	return nil
}
