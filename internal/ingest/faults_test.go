package ingest

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/diag"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/logtest"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/stream"
)

// What real producers do under faults (issue #12): kvssink continues a broken connection
// without a header, hands over between overlapping connections at credential rotations, and
// keeps streaming while the retention changes.

// blockGroup is a BlockGroup (A0) holding a Block (A1) on track 1.
func blockGroup(rel int16, size int) []byte {
	w := mkv.Writer{Size: 8}
	w.BlockGroup(1, rel, bytes.Repeat([]byte{0x6B}, size))
	return w.Buf
}

// breakAfter feeds b, then fails like a connection reset.
func breakAfter(b []byte) io.Reader {
	return io.MultiReader(bytes.NewReader(b), failingReader{})
}

// A body without an EBML header continues the stream's document. The fragment a broken
// connection left unfinished gets the rest of its frames from the next connection, and is
// stored as if nothing had happened: its bytes are the whole Cluster.
func TestContinuationCompletesTheFragmentInFlight(t *testing.T) {
	b := [][]byte{block(1, 0, 100), block(1, 40, 100), block(1, 80, 100), block(1, 120, 100)}
	for _, tc := range []struct {
		name   string
		cut    int    // blocks of cluster 1000 on the first connection
		rest   []byte // what the second connection starts with, before cluster 3000
		stored []byte // fragment 1000 as stored
	}{
		{"SimpleBlock", 2, cat(b[2], b[3]), cluster(1000, b...)},
		{"BlockGroup", 2, cat(blockGroup(80, 50), b[3]), cluster(1000, b[0], b[1], blockGroup(80, 50), b[3])},
		{"Tags", 4, tags("note", "x"), cat(cluster(1000, b...), tags("note", "x"))},
		{"Cluster", 4, nil, cluster(1000, b...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireNoLeak(t)
			e := newEnv(t, Config{})
			st := e.createStream(testStreamName, 24)
			acks, err := e.runBody(Request{}, breakAfter(cat(header(1, 1), gop(0, 2), cluster(1000, b[:tc.cut]...))))
			require.Equal(t, 1, requireError(t, acks, err, errStreamRead, 1000))

			acks, err = e.runBody(Request{}, bytes.NewReader(cat(tc.rest, gop(3000, 2))))
			require.NoError(t, err)
			// RECEIVED and PERSISTED of 1000 come on the new connection, then 3000's acks.
			frags, media := e.stored(st)
			byNumber := map[string][]string{}
			for _, a := range acks {
				byNumber[a.FragmentNumber] = append(byNumber[a.FragmentNumber], a.EventType)
			}
			require.Len(t, frags, 3)
			require.Equal(t, map[string][]string{
				frags[1].Number: {EventReceived, EventPersisted},
				frags[2].Number: {EventBuffering, EventReceived, EventPersisted},
			}, byNumber)
			require.Len(t, frags, 3)
			require.Equal(t, []uint64{0, 1000, 3000}, []uint64{frags[0].Timecode, frags[1].Timecode, frags[2].Timecode})
			require.Equal(t, tc.stored, media[1])
			require.Equal(t, frags[0].HeaderID, frags[2].HeaderID, "the continuation plays with the first header")
		})
	}
}

// After a restart kvsd holds nothing of the fragment in flight: a continuation body's frames up
// to the next Cluster are skipped, counted and reported; the rest is stored with the header of
// the last stored fragment. Nothing is refused.
func TestContinuationAfterRestart(t *testing.T) {
	requireNoLeak(t)
	log := &logtest.Buffer{}
	e := newEnv(t, Config{Logger: slog.New(slog.NewTextHandler(log, nil))})
	st := e.createStream(testStreamName, 24)
	_, err := e.runBody(Request{TimecodeType: Relative, ProducerStart: time.UnixMilli(1_700_000_000_000)},
		bytes.NewReader(cat(header(1, 1), gop(0, 2), gop(1000, 2))))
	require.NoError(t, err)
	e.m = NewManager(Config{Streams: e.svc, Store: e.store, Publish: e.m.cfg.Publish, Logger: slog.New(slog.NewTextHandler(log, nil))}) // a new process

	// The producer's clock says something else; RELATIVE timecodes still count from the first start.
	acks, err := e.runBody(Request{TimecodeType: Relative, ProducerStart: time.UnixMilli(1_800_000_000_000)},
		bytes.NewReader(cat(block(1, 40, 100), block(1, 80, 100), tags("a", "b"), gop(2000, 2))))
	require.NoError(t, err)
	requireFragmentAcks(t, acks, true)
	frags, _ := e.stored(st)
	require.Len(t, frags, 3)
	require.Equal(t, frags[0].HeaderID, frags[2].HeaderID)
	requireTime(t, time.UnixMilli(1_700_000_002_000), frags[2].ProducerTime)

	require.Contains(t, log.String(), "level=WARN")
	require.Contains(t, log.String(), "began with 2 frames and 1 tags")
	rep := e.m.Diagnose(context.Background(), st)
	require.True(t, hasFinding(rep, diag.Warn, "INGEST_CONTINUATION_SKIPPED"), "%+v", rep)
}

// A stream kvsd has never seen a header for has nothing to continue: 4006, explained.
func TestContinuationWithoutAnyHeader(t *testing.T) {
	e := newEnv(t, Config{})
	st := e.createStream(testStreamName, 24)
	acks, err := e.runBody(Request{}, bytes.NewReader(cat(block(1, 0, 10), gop(1000, 2))))
	requireError(t, acks, err, errInvalidMKV, -1)
	require.ErrorContains(t, err, "no earlier connection of this stream gave kvsd one")
	rep := e.m.Diagnose(context.Background(), st)
	require.True(t, hasFinding(rep, diag.Warn, "INGEST_ERROR_INVALID_MKV_DATA"), "%+v", rep)
}

// A producer that starts over with a header after a break resends what was not acknowledged:
// the fragment kvsd held is dropped, not stored twice.
func TestNewHeaderDropsTheHeldFragment(t *testing.T) {
	e := newEnv(t, Config{})
	st := e.createStream(testStreamName, 24)
	_, err := e.runBody(Request{}, breakAfter(cat(header(1, 1), gop(0, 2), cluster(1000, block(1, 0, 100)))))
	require.Error(t, err)
	_, err = e.runBody(Request{}, bytes.NewReader(cat(header(1, 1), gop(1000, 3), gop(3000, 2))))
	require.NoError(t, err)
	frags, media := e.stored(st)
	require.Len(t, frags, 3)
	require.Equal(t, gop(1000, 3), media[1])
}

// UpdateDataRetention across 0 applies from the next fragment without ending the connection:
// a session that started archiving keeps sending PERSISTED (fragments kept for 0 hours are not
// stored); one that starts archiving mid-way starts sending PERSISTED.
func TestRetentionChangeMidSession(t *testing.T) {
	requireNoLeak(t)
	e := newEnv(t, Config{})
	st := e.createStream(testStreamName, 0)
	change := func(op string, hours int) {
		t.Helper()
		ref := stream.Ref{Name: testStreamName}
		cur, err := e.svc.Describe(context.Background(), ref)
		require.NoError(t, err)
		require.NoError(t, e.svc.UpdateRetention(context.Background(), ref, cur.Version, op, &hours))
	}
	// each sends one fragment, completed by END_OF_FRAGMENT, and returns its acks up to the
	// last one it gets (RECEIVED without retention, else PERSISTED).
	l := e.start(Request{})
	l.write(header(1, 1))
	tc := uint64(0)
	each := func(persisted bool) []string {
		t.Helper()
		l.write(cat(gop(tc, 2), endOfFragment))
		tc += 1000
		var got []string
		want := EventReceived
		if persisted {
			want = EventPersisted
		}
		for len(got) == 0 || got[len(got)-1] != want {
			a := l.next()
			require.NotEqual(t, EventError, a.EventType)
			got = append(got, a.EventType)
		}
		return got
	}
	require.Equal(t, []string{EventBuffering, EventReceived}, each(false)) // 0 when it opened
	waitPublished(t, e, 1)
	change(stream.IncreaseRetention, 2) // 0 → 2 h: from the next fragment on, stored and PERSISTED
	require.Equal(t, []string{EventBuffering, EventReceived, EventPersisted}, each(true))
	each(true)
	change(stream.DecreaseRetention, 2) // 2 → 0: still PERSISTED, nothing more stored
	each(true)
	require.NoError(t, l.pw.Close())
	require.NoError(t, l.wait())

	frags, _ := e.stored(st)
	var tcs []uint64
	for _, f := range frags {
		tcs = append(tcs, f.Timecode)
	}
	require.Equal(t, []uint64{1000, 2000}, tcs, "what was received while retention was 2 h")
	require.Len(t, e.events(), 4, "every fragment reaches live readers")
}

// waitPublished waits until n fragments were published.
func waitPublished(t *testing.T, e *testEnv, n int) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for len(e.events()) < n {
		select {
		case <-e.onPublish:
		case <-timeout:
			t.Fatalf("%d fragments published, want %d", len(e.events()), n)
		}
	}
}

// Overlapping connections: the last one wins, as on AWS. The way real producers hand over,
// both connections complete, and every fragment is stored once, in order.
func TestOverlappingConnections(t *testing.T) {
	t.Run("kvssink rotation", func(t *testing.T) {
		// The new connection opens (header only) about 3 s before the old one sends its last
		// fragment, END_OF_FRAGMENT and the end of its body.
		requireNoLeak(t)
		e := newEnv(t, Config{})
		st := e.createStream(testStreamName, 24)
		old := e.start(Request{})
		old.write(cat(header(1, 1), gop(0, 2), gop(1000, 2)))
		require.Equal(t, EventBuffering, old.next().EventType)
		nw := e.start(Request{})
		nw.write(header(1, 1))
		old.write(cat(gop(2000, 2), gop(3000, 2), endOfFragment))
		require.NoError(t, old.pw.Close())
		require.NoError(t, old.wait())
		nw.write(cat(gop(4000, 2), gop(5000, 2)))
		require.NoError(t, nw.pw.Close())
		require.NoError(t, nw.wait())
		requireStoredInOrder(t, e, st, 0, 1000, 2000, 3000, 4000, 5000)
	})
	t.Run("kinesisvideomanager switch", func(t *testing.T) {
		// One cluster per connection; the next opens about 1 s early, and its cluster starts as
		// the old body ends.
		requireNoLeak(t)
		e := newEnv(t, Config{})
		st := e.createStream(testStreamName, 24)
		a := e.start(Request{})
		a.write(cat(header(1, 1), cluster(0, block(1, 0, 100), block(1, 40, 100))))
		require.Equal(t, EventBuffering, a.next().EventType)
		b := e.start(Request{})
		b.write(header(2, 1))
		b.write(cluster(9000, block(1, 0, 100)))
		a.write(cluster(0, block(1, 80, 100))[len(cluster(0)):]) // the old cluster's last frame
		require.NoError(t, a.pw.Close())
		b.write(block(1, 40, 100))
		require.NoError(t, b.pw.Close())
		require.NoError(t, a.wait())
		require.NoError(t, b.wait())
		frags := requireStoredInOrder(t, e, st, 0, 9000)
		require.NotEqual(t, frags[0].HeaderID, frags[1].HeaderID)
	})
	t.Run("older connection starts a fragment after the newer one", func(t *testing.T) {
		// Not a hand-over: the older connection ends without an ERROR (which would make the
		// producer SDK rewind the newer one), and its late fragment is not stored.
		requireNoLeak(t)
		log := &logtest.Buffer{}
		e := newEnv(t, Config{Logger: slog.New(slog.NewTextHandler(log, nil))})
		st := e.createStream(testStreamName, 24)
		old := e.start(Request{})
		old.write(cat(header(1, 1), gop(0, 2)))
		require.Equal(t, EventBuffering, old.next().EventType)
		nw := e.start(Request{})
		nw.write(cat(header(1, 1), gop(1000, 2)))
		require.Equal(t, EventBuffering, nw.next().EventType)
		old.send(cat(gop(1000, 2), gop(2000, 2)))
		require.ErrorIs(t, old.wait(), errSuperseded)
		var types []string
		for len(old.acks) > 0 {
			types = append(types, (<-old.acks).EventType)
		}
		require.NotContains(t, types, EventError)
		require.NoError(t, nw.pw.Close())
		require.NoError(t, nw.wait())
		requireStoredInOrder(t, e, st, 0, 1000)
	})
	t.Run("silent older connection", func(t *testing.T) {
		// A camera that rebooted leaves a half-open connection: it ends after the grace.
		requireNoLeak(t)
		e := newEnv(t, Config{SupersededGrace: 50 * time.Millisecond})
		st := e.createStream(testStreamName, 24)
		old := e.start(Request{})
		old.write(cat(header(1, 1), gop(0, 2), gop(1000, 2)))
		require.Equal(t, EventBuffering, old.next().EventType)
		nw := e.start(Request{})
		nw.write(cat(header(1, 1), gop(1000, 2), gop(2000, 2)))
		require.ErrorIs(t, old.wait(), errSuperseded)
		require.NoError(t, nw.pw.Close())
		require.NoError(t, nw.wait())
		requireStoredInOrder(t, e, st, 0, 1000, 2000)
	})
}

// requireStoredInOrder checks the stored fragments' timecodes, with numbers increasing.
func requireStoredInOrder(t *testing.T, e *testEnv, st *stream.Stream, tcs ...uint64) []*fragment.Fragment {
	t.Helper()
	frags, _ := e.stored(st)
	var got []uint64
	for i, f := range frags {
		got = append(got, f.Timecode)
		if i > 0 {
			require.Greater(t, f.Number, frags[i-1].Number)
		}
	}
	require.Equal(t, tcs, got)
	return frags
}

func hasFinding(r diag.Report, level diag.Level, code string) bool {
	for _, f := range r.Findings {
		if f.Level == level && f.Code == code {
			return true
		}
	}
	return false
}

// countingStreams counts Describe calls of the writer's stream checks.
type countingStreams struct {
	*stream.Service
	describes atomic.Int64
}

func (c *countingStreams) Describe(ctx context.Context, ref stream.Ref) (*stream.Stream, error) {
	c.describes.Add(1)
	return c.Service.Describe(ctx, ref)
}

// The writer reads the stream from the catalog again only when a stream changed: not for every
// fragment (the deletion and retention tests above check that changes are still seen).
func TestWriterReadsTheCatalogOnChange(t *testing.T) {
	requireNoLeak(t)
	cs := &countingStreams{}
	e := newEnv(t, Config{Streams: cs})
	cs.Service = e.svc
	st := e.createStream(testStreamName, 24)
	body := [][]byte{header(1, 1)}
	for i := range 6 {
		body = append(body, gop(uint64(1000*i), 2))
	}
	_, err := e.runBody(Request{}, bytes.NewReader(cat(append(body, endOfFragment)...)))
	require.NoError(t, err)
	frags, _ := e.stored(st)
	require.Len(t, frags, 6)
	// One for Open, one for the writer's first fragment.
	require.Equal(t, int64(2), cs.describes.Load())
}
