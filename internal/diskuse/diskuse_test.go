package diskuse_test

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/catalog/bolt"
	"github.com/kvsd/kvsd/internal/diag"
	"github.com/kvsd/kvsd/internal/diskuse"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/fragstore/disk"
	"github.com/kvsd/kvsd/internal/stream"
)

var (
	ctx  = context.Background()
	base = time.UnixMilli(1800000000000).UTC()
)

// env is a store over a data dir as kvsd lays it out, with streams in its catalog.
type env struct {
	t     *testing.T
	dir   string
	db    *bolt.DB
	media *disk.Media
	store *fragstore.Store
	now   time.Time
}

func newEnv(t *testing.T, segSize int64) *env {
	e := &env{t: t, dir: t.TempDir()}
	var err error
	e.db, err = bolt.Open(filepath.Join(e.dir, "catalog.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.db.Close() })
	e.media, err = disk.Open(disk.Config{Dir: filepath.Join(e.dir, "media"), SegmentSize: segSize, Buffered: true})
	require.NoError(t, err)
	e.store, err = fragstore.Open(fragstore.Config{Media: e.media, Index: e.db})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.store.Close() })
	return e
}

func (e *env) stream(name string, retention int, tags map[string]string) *stream.Stream {
	st := &stream.Stream{Name: name, ARN: "arn:aws:kinesisvideo:us-east-1:111122223333:stream/" + name + "/1",
		Status: stream.StatusActive, CreationTime: base.Add(-48 * time.Hour), RetentionHours: retention, Tags: tags, Version: "1"}
	require.NoError(e.t, e.db.CreateStream(ctx, st))
	got, err := e.db.GetStream(ctx, name)
	require.NoError(e.t, err)
	return got
}

// fill stores one fragment of size bytes per minute of server time from base, for minutes.
func (e *env) fill(st *stream.Stream, minutes, size int) {
	k := fragstore.KeyOf(st)
	for i := range minutes {
		at := base.Add(time.Duration(i) * time.Minute)
		seq := uint64(i + 1)
		f := &fragment.Fragment{Seq: seq, Number: fragment.FormatNumber(k.CreatedMs, seq), Timecode: uint64(at.UnixMilli()),
			ProducerTime: at, ServerTime: at, Duration: time.Minute, HeaderID: "h"}
		require.NoError(e.t, e.store.Append(ctx, k, []byte("header"), f, make([]byte, size)))
	}
}

func (e *env) guard(limit string) *diskuse.Guard {
	size, err := diskuse.ParseSize(limit)
	require.NoError(e.t, err)
	g, err := diskuse.New(diskuse.Config{Store: e.store, Catalog: e.db, Usage: e.media.Usage, Dir: e.dir, Limit: size,
		Now: func() time.Time { return e.now }})
	require.NoError(e.t, err)
	return g
}

func findings(r diag.Report) map[string]diag.Finding {
	out := map[string]diag.Finding{}
	for _, f := range r.Findings {
		out[f.Code] = f
	}
	return out
}

// TestEvictsOldestOfAllStreams: past the budget the oldest segment of all streams goes first,
// whichever stream holds it; a stream tagged kvsd:KeepOverBudget is never evicted.
func TestEvictsOldestOfAllStreams(t *testing.T) {
	e := newEnv(t, 64<<10) // 64 KiB segments: 5 fragments of 12 KiB each
	a := e.stream("a", 24, nil)
	b := e.stream("b", 24, nil)
	keep := e.stream("keep", 24, map[string]string{diskuse.KeepTag: "true"})
	e.fill(a, 60, 12000)
	e.fill(keep, 60, 12000)
	// b started 30 minutes later: its oldest fragments are younger than a's.
	kb := fragstore.KeyOf(b)
	for i := range 30 {
		at := base.Add(time.Duration(30+i) * time.Minute)
		seq := uint64(i + 1)
		f := &fragment.Fragment{Seq: seq, Number: fragment.FormatNumber(kb.CreatedMs, seq), ServerTime: at, ProducerTime: at, Duration: time.Minute, HeaderID: "h"}
		require.NoError(t, e.store.Append(ctx, kb, []byte("header"), f, make([]byte, 12000)))
	}
	e.now = base.Add(time.Hour)
	used := e.media.Usage()
	limit := used - 40*used/150 // room for 40 of the 150 fragments fewer
	g := e.guard(itoa(limit))
	require.NoError(t, g.Check(ctx))
	require.LessOrEqual(t, e.media.Usage(), limit)

	oldest := func(st *stream.Stream) time.Time {
		f, err := e.store.Oldest(ctx, fragstore.KeyOf(st))
		require.NoError(t, err)
		return f.ServerTime
	}
	// 40 fragments went: a's first 30 minutes alone (b had nothing older), then a and b in turn,
	// a segment (3 fragments) at a time.
	require.Equal(t, base, oldest(keep), "kept")
	require.WithinDuration(t, base.Add(35*time.Minute), oldest(a), 3*time.Minute)
	require.WithinDuration(t, base.Add(35*time.Minute), oldest(b), 3*time.Minute)

	r := findings(g.Diagnose(ctx, a))
	require.Contains(t, r, "BUDGET_EVICTED")
	require.Contains(t, r, "DISK_SPACE")
	require.Contains(t, findings(g.Diagnose(ctx, keep)), "BUDGET_KEPT")
	require.NotContains(t, findings(g.Diagnose(ctx, keep)), "BUDGET_EVICTED")
}

// TestRetentionArithmetic: the doctor names a retention the budget cannot hold with its
// numbers, first as a forecast, then as hours kept against hours asked once video was evicted.
func TestRetentionArithmetic(t *testing.T) {
	e := newEnv(t, 64<<10)
	cam := e.stream("cam", 24, nil)
	e.fill(cam, 120, 12000) // 2 h at 12 KiB (with its record header) a minute: ~1.4 MiB per hour
	e.now = base.Add(2 * time.Hour)
	perHour := float64(e.media.Usage()) / 2

	g := e.guard(itoa(int64(perHour * 12))) // the budget holds 12 of the 24 hours asked
	require.NoError(t, g.Check(ctx))
	f := findings(g.Diagnose(ctx, cam))["RETENTION_EXCEEDS_DISK"]
	require.Equal(t, diag.Warn, f.Level, "%+v", g.Diagnose(ctx, cam))
	require.Contains(t, f.Message, "× 24 h")
	require.Contains(t, f.Message, "about 12.0 h of this stream's 24 h fit")
	require.Contains(t, f.Fix, "Raise --max-disk-usage to at least")

	g = e.guard(itoa(int64(perHour / 2))) // half an hour's worth: the oldest 1.5 h go
	require.NoError(t, g.Check(ctx))
	f = findings(g.Diagnose(ctx, cam))["RETENTION_OVER_BUDGET"]
	require.Equal(t, diag.Warn, f.Level, "%+v", g.Diagnose(ctx, cam))
	require.Regexp(t, `keeps (2[5-9]|30) min of this stream, its retention asks for 24 h`, f.Message)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
