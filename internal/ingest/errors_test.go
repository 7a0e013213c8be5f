package ingest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/stream"
)

// failingReader fails like a dropped connection.
type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset by peer") }

// requireError checks that the session ended with exactly one ERROR ack, last, carrying id and
// (tc ≥ 0) the failing fragment's timecode and the number its BUFFERING had, if it had one.
// It returns how many fragments were PERSISTED before it.
func requireError(t *testing.T, acks []Ack, err error, id int, tc int64) (persisted int) {
	t.Helper()
	ae, ok := errors.AsType[*ackError](err)
	require.True(t, ok, "Run returned %v", err)
	require.Equal(t, id, ae.id, "%v", err)
	require.NotEmpty(t, acks)
	last := acks[len(acks)-1]
	require.Equal(t, EventError, last.EventType, "acks %v", acks)
	require.Equal(t, id, last.ErrorID)
	require.Equal(t, errorCodes[id], last.ErrorCode)
	if tc < 0 {
		require.Empty(t, last.FragmentNumber)
	} else {
		require.Equal(t, uint64(tc), last.FragmentTimecode)
		require.Len(t, last.FragmentNumber, fragment.NumberDigits)
	}
	requireFragmentAcksBefore(t, acks[:len(acks)-1], last)
	for _, a := range acks[:len(acks)-1] {
		require.NotEqual(t, EventError, a.EventType)
		if a.EventType == EventPersisted {
			persisted++
		}
	}
	return persisted
}

// requireFragmentAcksBefore checks that an ERROR about a fragment that had BUFFERING repeats
// its number, and that fragments completed before it were PERSISTED first.
func requireFragmentAcksBefore(t *testing.T, acks []Ack, errAck Ack) {
	t.Helper()
	events := map[string][]string{}
	var order []string
	for _, a := range acks {
		if a.EventType == EventIdle {
			continue
		}
		if _, ok := events[a.FragmentNumber]; !ok {
			order = append(order, a.FragmentNumber)
		}
		events[a.FragmentNumber] = append(events[a.FragmentNumber], a.EventType)
	}
	for _, n := range order {
		switch ev := events[n]; {
		case n == errAck.FragmentNumber:
			// Refused while arriving, or (store failures) after RECEIVED.
			require.LessOrEqual(t, len(ev), 2, "the failing fragment: %v", ev)
			require.Equal(t, []string{EventBuffering, EventReceived}[:len(ev)], ev, "the failing fragment")
		case len(ev) == 3:
			require.Equal(t, []string{EventBuffering, EventReceived, EventPersisted}, ev)
		case len(ev) == 1:
			// Still arriving when the session ended (shutdown, stream deleted): the producer
			// resends it.
			require.Equal(t, order[len(order)-1], n, "only the last fragment can be incomplete")
		default:
			// A fragment received in full is persisted before the ERROR goes out, unless the
			// store failed (5001) or the stream is gone (4008).
			require.Contains(t, []int{errArchival, errStreamNotActive}, errAck.ErrorID, "fragment %s got only %v", n, ev)
		}
	}
}

func TestErrorAcks(t *testing.T) {
	h1 := header(1, 1)
	long := strings.Repeat("n", maxTagNameBytes+1)
	var manyTags []string
	for i := range maxUserTags + 1 {
		manyTags = append(manyTags, "k"+string(rune('a'+i)), "v")
	}
	for _, tc := range []struct {
		name      string
		cfg       Config
		body      io.Reader
		id        int
		tc        int64 // -1: no fragment
		persisted int
	}{
		{"4000 read fails mid-fragment", Config{},
			io.MultiReader(bytes.NewReader(cat(h1, gop(1000, 2), gop(3000, 3)[:60])), failingReader{}),
			errStreamRead, 3000, 1},
		{"4000 read fails in the header", Config{},
			io.MultiReader(bytes.NewReader(h1[:20]), failingReader{}), errStreamRead, -1, 0},
		{"4001 cluster over the limit", Config{MaxFragmentSize: 2000},
			bytes.NewReader(cat(h1, gop(1000, 2), cluster(3000, block(1, 0, 3000)))), errFragmentSize, 3000, 1},
		{"4001 cluster and tags over the limit", Config{MaxFragmentSize: 2000},
			bytes.NewReader(cat(h1, cluster(1000, block(1, 0, 1500)), tags("big", strings.Repeat("x", 200)), tags("big2", strings.Repeat("x", 200)))),
			errFragmentSize, 1000, 0},
		{"4002 fragment too long", Config{MaxFragmentDuration: time.Second},
			bytes.NewReader(cat(h1, cluster(1000, block(1, 0, 10), block(1, 1001, 10)))), errFragmentDuration, 1000, 0},
		{"4004 timecode goes back", Config{},
			bytes.NewReader(cat(h1, gop(5000, 2), gop(3000, 2))), errTimecodeLesser, 3000, 1},
		{"4006 garbage", Config{}, bytes.NewReader([]byte("this is not matroska")), errInvalidMKV, -1, 0},
		{"4006 truncated block", Config{},
			bytes.NewReader(cat(h1, gop(1000, 2), gop(3000, 3)[:60])), errInvalidMKV, 3000, 1},
		{"4006 Tracks after a Cluster", Config{},
			bytes.NewReader(cat(h1, gop(1000, 2), el(mkv.IDTracks))), errInvalidMKV, 1000, 0},
		{"4007 timecode overflows", Config{},
			bytes.NewReader(cat(h1, gop(1<<62, 2))), errProducerTimestamp, 1 << 62, 0},
		{"4009 too many tags", Config{},
			bytes.NewReader(cat(h1, gop(1000, 2), tags(manyTags[:10]...), tags(manyTags[10:]...), gop(3000, 1))),
			errMetadataLimit, 1000, 0},
		{"4009 name too long", Config{},
			bytes.NewReader(cat(h1, gop(1000, 2), tags(long, ""))), errMetadataLimit, 1000, 0},
		{"4009 value too long", Config{},
			bytes.NewReader(cat(h1, gop(1000, 2), tags("k", strings.Repeat("v", maxTagValueBytes+1)))), errMetadataLimit, 1000, 0},
		{"4010 undeclared track", Config{},
			bytes.NewReader(cat(h1, gop(1000, 2), cluster(3000, block(1, 0, 10), block(2, 0, 10)))), errTrackMismatch, 3000, 1},
		{"4011 track without frames", Config{},
			bytes.NewReader(cat(header(1, 1, 2), cluster(1000, block(1, 0, 10), block(2, 0, 10)), gop(3000, 2), gop(5000, 1))),
			errFramesMissing, 3000, 1},
		{"4012 four tracks", Config{},
			bytes.NewReader(cat(header(1, 1, 2, 3, 4), cluster(1000, block(1, 0, 10)))), errTooManyTracks, -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireNoLeak(t)
			e := newEnv(t, tc.cfg)
			e.createStream(testStreamName, 24)
			acks, err := e.runBody(Request{}, tc.body)
			require.Equal(t, tc.persisted, requireError(t, acks, err, tc.id, tc.tc))
		})
	}
}

// The only error injected through a fake store: it cannot be provoked on a healthy disk.
type failingStore struct{ Store }

func (failingStore) WritePrepared(_ context.Context, p *fragstore.Prepared, _ uint64) (*fragstore.Commit, error) {
	p.Release()
	return nil, errors.New("disk full")
}

func TestArchivalError(t *testing.T) {
	requireNoLeak(t)
	e := newEnv(t, Config{})
	e.m.cfg.Store = failingStore{e.store}
	e.createStream(testStreamName, 24)
	acks, err := e.runBody(Request{}, bytes.NewReader(cat(header(1, 1), gop(1000, 2), gop(3000, 2), gop(5000, 2))))
	requireError(t, acks, err, errArchival, 1000)
}

// The connection age is checked where fragments begin: the producer reconnects and resends
// from the refused fragment without losing anything.
func TestConnectionAge(t *testing.T) {
	requireNoLeak(t)
	var offset atomic.Int64
	e := newEnv(t, Config{Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }})
	e.createStream(testStreamName, 24)
	l := e.start(Request{})
	l.write(cat(header(1, 1), gop(1000, 2)))
	b := l.next()
	require.Equal(t, EventBuffering, b.EventType)
	offset.Store(int64(46 * time.Minute))
	l.send(gop(3000, 2)) // the session may stop reading before all of it
	require.Equal(t, 1, requireError(t, append([]Ack{b}, l.untilError()...), l.wait(), errConnectionDuration, 3000))
}

func TestStreamDeletedDuringSession(t *testing.T) {
	t.Run("EndStream", func(t *testing.T) {
		requireNoLeak(t)
		e := newEnv(t, Config{})
		e.createStream(testStreamName, 24)
		l := e.start(Request{})
		l.write(cat(header(1, 1), gop(1000, 2)))
		b := l.next()
		e.m.EndStream(testStreamName) // returns once the session stopped writing
		a := l.next()
		// The ERROR names the fragment in flight.
		require.Equal(t, Ack{EventType: EventError, FragmentTimecode: 1000, FragmentNumber: b.FragmentNumber,
			ErrorID: errStreamNotActive, ErrorCode: "STREAM_NOT_ACTIVE"}, a)
		requireError(t, []Ack{b, a}, l.wait(), errStreamNotActive, 1000)
		e.m.EndStream(testStreamName) // no session: a no-op
	})
	t.Run("gone from the catalog", func(t *testing.T) {
		requireNoLeak(t)
		e := newEnv(t, Config{})
		st := e.createStream(testStreamName, 24)
		l := e.start(Request{})
		l.write(cat(header(1, 1), gop(1000, 2)))
		b := l.next()
		require.NoError(t, e.svc.Delete(context.Background(), st.ARN, nil))
		l.send(gop(3000, 2)) // completes the first fragment, which must not be stored
		requireError(t, append([]Ack{b}, l.untilError()...), l.wait(), errStreamNotActive, 1000)
		frags, _ := e.stored(st)
		require.Empty(t, frags)
	})
	t.Run("created again in the same millisecond", func(t *testing.T) {
		requireNoLeak(t)
		e := newEnv(t, Config{})
		now := time.UnixMilli(1700000000123)
		e.svc.Now = func() time.Time { return now }
		old := e.createStream(testStreamName, 24)
		l := e.start(Request{})
		l.write(cat(header(1, 1), gop(1000, 2)))
		b := l.next()
		require.NoError(t, e.svc.Delete(context.Background(), old.ARN, nil))
		st := e.createStream(testStreamName, 24) // the clock has not moved
		require.NotEqual(t, old.ARN, st.ARN)
		require.NotEqual(t, fragstore.KeyOf(old), fragstore.KeyOf(st))
		l.send(gop(3000, 2)) // completes the old session's first fragment
		requireError(t, append([]Ack{b}, l.untilError()...), l.wait(), errStreamNotActive, 1000)
		frags, _ := e.stored(st)
		require.Empty(t, frags, "the old session's fragment landed in the new stream")
	})
}

// On shutdown (SIGTERM) a session persists what it received, then sends the retriable ERROR
// 5000 naming the fragment in flight, which the producer resends.
func TestShutdown(t *testing.T) {
	requireNoLeak(t)
	e := newEnv(t, Config{})
	st := e.createStream(testStreamName, 24)
	l := e.start(Request{})
	l.write(cat(header(1, 1), gop(1000, 2), gop(3000, 2)))
	acks := []Ack{l.next(), l.next(), l.next()} // B1 R1 B2, in that order; P1 may follow
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, e.m.Shutdown(ctx))
	acks = append(acks, l.untilError()...)
	require.Equal(t, 1, requireError(t, acks, l.wait(), errInternal, 3000))
	frags, _ := e.stored(st)
	require.Len(t, frags, 1)
}

func eventTypes(acks []Ack) []string {
	var out []string
	for _, a := range acks {
		out = append(out, a.EventType)
	}
	return out
}

func TestOpen(t *testing.T) {
	e := newEnv(t, Config{})
	st := e.createStream(testStreamName, 24)
	ctx := context.Background()

	_, err := e.m.Open(ctx, Request{StreamName: "nope", TimecodeType: Absolute})
	require.ErrorIs(t, err, stream.ErrNotFound)
	_, err = e.m.Open(ctx, Request{StreamName: testStreamName, TimecodeType: "absolute"})
	require.ErrorIs(t, err, stream.ErrInvalidArgument)
	_, err = e.m.Open(ctx, Request{StreamName: testStreamName, StreamARN: st.ARN, TimecodeType: Absolute})
	require.ErrorIs(t, err, stream.ErrInvalidArgument)

	// By name or by ARN; every stream has its own connections.
	s, err := e.m.Open(ctx, Request{StreamARN: st.ARN, TimecodeType: Relative})
	require.NoError(t, err)
	e.createStream("cam-2", 24)
	s2, err := e.m.Open(ctx, Request{StreamName: "cam-2", TimecodeType: Absolute})
	require.NoError(t, err)
	s2.Close()
	s.Close()
	s.Close()
}

// The session has stopped by the time the producer reads the ERROR ack: kvssink reconnects at
// once, and its new connection must not wait for this one.
func TestReleasedBeforeErrorAck(t *testing.T) {
	e := newEnv(t, Config{})
	e.createStream(testStreamName, 24)
	s := e.open(Request{})
	released := false
	_ = s.Run(context.Background(), bytes.NewReader(cat(header(1, 1), []byte("garbage"))), func(a Ack) error {
		if a.EventType == EventError {
			select {
			case <-s.released:
				released = true
			default:
			}
		}
		return nil
	})
	require.True(t, released)
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, Config{Registerer: reg})
	e.createStream(testStreamName, 24)
	c1, c2 := gop(1000, 2), gop(3000, 2)
	_, err := e.runBody(Request{}, bytes.NewReader(cat(header(1, 1), c1, c2)))
	require.NoError(t, err)
	// A body without a header continues the stream's document, and this one is not Matroska.
	_, err = e.runBody(Request{}, bytes.NewReader([]byte("garbage")))
	require.ErrorContains(t, err, "ERROR 4006 INVALID_MKV_DATA: mkv: invalid input")
	require.ErrorIs(t, err, mkv.ErrInvalid)

	got := map[string]float64{}
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "/" + l.GetValue()
			}
			got[name] = m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	require.Equal(t, map[string]float64{
		"kvsd_ingest_fragments_total":               2,
		"kvsd_ingest_fragment_bytes_total":          float64(len(c1) + len(c2)),
		"kvsd_ingest_errors_total/INVALID_MKV_DATA": 1,
		"kvsd_ingest_sessions_active":               0,
		"kvsd_ingest_persist_duration_seconds":      2,
		"kvsd_ingest_continuations_total/none":      1,
		"kvsd_ingest_superseded_total":              0,
	}, got)
}
