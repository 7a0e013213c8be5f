package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/mkv"
)

func TestFragmentsAbsolute(t *testing.T) {
	requireNoLeak(t)
	e := newEnv(t, Config{})
	st := e.createStream(testStreamName, 24)
	const t0 = 1_700_000_000_000 // epoch ms, as kvssink sends
	clusters := [][]byte{gop(t0, 25), gop(t0+2000, 25), gop(t0+4000, 1)}
	hdr := header(7, 1)
	before := time.Now().Truncate(time.Millisecond)
	acks, err := e.runBody(Request{}, bytes.NewReader(cat(hdr, cat(clusters...))))
	require.NoError(t, err)

	numbers, tcs := requireFragmentAcks(t, acks, true)
	require.Equal(t, []uint64{t0, t0 + 2000, t0 + 4000}, tcs, "FragmentTimecode is the raw cluster timecode")

	frags, media := e.stored(st)
	require.Len(t, frags, 3)
	for i, f := range frags {
		require.Equal(t, numbers[i], f.Number)
		require.Equal(t, fragment.FormatNumber(st.CreationTime.UnixMilli(), f.Seq), f.Number)
		require.Equal(t, tcs[i], f.Timecode)
		requireTime(t, time.UnixMilli(int64(tcs[i])), f.ProducerTime)
		require.False(t, f.ServerTime.Before(before))
		require.Equal(t, clusters[i], media[i], "media is the cluster, verbatim")
		require.Equal(t, int64(len(clusters[i])), f.Size)
		h, err := e.store.Header(context.Background(), fragstore.KeyOf(st), f.HeaderID)
		require.NoError(t, err)
		require.Equal(t, hdr, h)
	}
	// 25 frames 40 ms apart last 1 s; a lone frame lasts until the body ended: unknown, 0.
	require.Equal(t, time.Second, frags[0].Duration)
	require.Equal(t, time.Duration(0), frags[2].Duration)

	evs := e.events()
	require.Len(t, evs, 3)
	for i, ev := range evs {
		require.True(t, ev.Persisted)
		require.Equal(t, numbers[i], ev.Fragment.Number)
		require.Equal(t, clusters[i], ev.Media)
		require.Equal(t, hdr, ev.Header)
		require.Equal(t, st.Name, ev.Stream.Name)
	}
}

func TestFragmentsRelative(t *testing.T) {
	e := newEnv(t, Config{})
	st := e.createStream(testStreamName, 24)
	start := time.UnixMilli(1_795_263_160_070)
	acks, err := e.runBody(Request{TimecodeType: Relative, ProducerStart: start},
		bytes.NewReader(cat(header(1, 1), gop(0, 2), gop(2000, 1), gop(3000, 1))))
	require.NoError(t, err)
	_, tcs := requireFragmentAcks(t, acks, true)
	require.Equal(t, []uint64{0, 2000, 3000}, tcs, "RELATIVE acks carry the raw timecode, not start+timecode")
	frags, _ := e.stored(st)
	requireTime(t, start, frags[0].ProducerTime)
	requireTime(t, start.Add(2*time.Second), frags[1].ProducerTime)
	// A single-frame fragment ended by the next cluster lasts until it.
	require.Equal(t, time.Second, frags[1].Duration)
}

func TestTagsBelongToTheClusterBefore(t *testing.T) {
	e := newEnv(t, Config{})
	st := e.createStream(testStreamName, 24)
	img := tags(fragment.TagImageGeneration, "", fragment.TagImagePrefix, "pfx", "site", "lab")
	note := tags(fragment.TagNotification, "")
	c1, c2 := gop(1000, 3), gop(3000, 3)
	acks, err := e.runBody(Request{}, bytes.NewReader(cat(header(1, 1), c1, note, img, c2)))
	require.NoError(t, err)
	requireFragmentAcks(t, acks, true)

	frags, media := e.stored(st)
	require.Len(t, frags, 2)
	require.Equal(t, cat(c1, note, img), media[0], "tags are stored after their cluster, verbatim")
	require.Equal(t, c2, media[1])
	require.Equal(t, []mkv.SimpleTag{{Name: fragment.TagNotification}, {Name: fragment.TagImageGeneration},
		{Name: fragment.TagImagePrefix, Value: "pfx"}, {Name: "site", Value: "lab"}}, frags[0].Tags)
	require.True(t, frags[0].HasTag(fragment.TagImageGeneration))
	require.Empty(t, frags[1].Tags)
}

// kvssink waits for PERSISTED of its last fragment before it ends the body, so
// END_OF_FRAGMENT must complete the fragment at once.
func TestEndOfFragmentCompletesAtOnce(t *testing.T) {
	requireNoLeak(t)
	e := newEnv(t, Config{})
	st := e.createStream(testStreamName, 24)
	l := e.start(Request{})
	c := gop(1000, 5)
	l.write(cat(header(1, 1), c, endOfFragment))
	b := l.next()
	require.Equal(t, EventBuffering, b.EventType)
	require.Equal(t, Ack{EventType: EventReceived, FragmentTimecode: 1000, FragmentNumber: b.FragmentNumber}, l.next())
	require.Equal(t, Ack{EventType: EventPersisted, FragmentTimecode: 1000, FragmentNumber: b.FragmentNumber}, l.next())

	// Tags after END_OF_FRAGMENT were written for the next fragment (a producer's metadata put
	// after it ended one): they go with it, after its Cluster, where readers look for them.
	late := tags(fragment.TagImageGeneration, "", "late", "x")
	c2, own := gop(3000, 2), tags("own", "y")
	l.write(cat(late, c2, own))
	require.Equal(t, EventBuffering, l.next().EventType)
	require.NoError(t, l.pw.Close())
	require.Equal(t, EventReceived, l.next().EventType)
	require.Equal(t, EventPersisted, l.next().EventType)
	require.NoError(t, l.wait())

	frags, media := e.stored(st)
	require.Equal(t, cat(c, endOfFragment), media[0])
	require.True(t, frags[0].HasTag(fragment.TagEndOfFragment))
	require.False(t, frags[0].HasTag(fragment.TagImageGeneration))
	require.Equal(t, cat(c2, late, own), media[1])
	require.Equal(t, []mkv.SimpleTag{{Name: fragment.TagImageGeneration}, {Name: "late", Value: "x"}, {Name: "own", Value: "y"}}, frags[1].Tags)
}

// Held tags count against the metadata limit of the fragment they go with.
func TestTagsAfterEndOfFragmentCountForTheNext(t *testing.T) {
	e := newEnv(t, Config{})
	e.createStream(testStreamName, 24)
	var six, five []string
	for i := range 6 {
		six = append(six, fmt.Sprint("held", i), "v")
	}
	for i := range 5 {
		five = append(five, fmt.Sprint("own", i), "v")
	}
	acks, err := e.runBody(Request{}, bytes.NewReader(cat(header(1, 1), gop(1000, 2), endOfFragment,
		tags(six...), gop(3000, 2), tags(five...))))
	requireError(t, acks, err, errMetadataLimit, 3000)
}

// A producer that restarts its MKV stream sends a new EBML header; timecodes may then start over.
func TestSeveralDocumentsInOneBody(t *testing.T) {
	e := newEnv(t, Config{})
	st := e.createStream(testStreamName, 24)
	h1, h2 := header(1, 1), header(2, 1, 2)
	c1, c2 := gop(5000, 2), gop(7000, 1)
	c3 := cluster(1000, block(1, 0, 10), block(2, 0, 10))
	acks, err := e.runBody(Request{}, bytes.NewReader(cat(h1, c1, c2, h2, c3)))
	require.NoError(t, err)
	_, tcs := requireFragmentAcks(t, acks, true)
	require.Equal(t, []uint64{5000, 7000, 1000}, tcs)

	frags, media := e.stored(st)
	require.Equal(t, [][]byte{c1, c2, c3}, media)
	require.Equal(t, frags[0].HeaderID, frags[1].HeaderID)
	require.NotEqual(t, frags[1].HeaderID, frags[2].HeaderID)
	h, err := e.store.Header(context.Background(), fragstore.KeyOf(st), frags[2].HeaderID)
	require.NoError(t, err)
	require.Equal(t, h2, h)
	// The last fragment of the first document ended with it: the next cluster (of another
	// timeline) says nothing about how long its single frame lasts.
	require.Equal(t, 80*time.Millisecond, frags[0].Duration)
	require.Equal(t, time.Duration(0), frags[1].Duration)
}

func TestRetentionZeroPublishesAfterReceived(t *testing.T) {
	e := newEnv(t, Config{})
	st := e.createStream(testStreamName, 0)
	acks, err := e.runBody(Request{}, bytes.NewReader(cat(header(1, 1), gop(1000, 2), gop(3000, 2))))
	require.NoError(t, err)
	numbers, _ := requireFragmentAcks(t, acks, false)
	evs := e.events()
	require.Len(t, evs, 2)
	for i, ev := range evs {
		require.False(t, ev.Persisted)
		require.Equal(t, numbers[i], ev.Fragment.Number)
	}
	frags, _ := e.stored(st)
	require.Empty(t, frags, "nothing is stored without retention")
}

// Fragment numbers keep increasing across sessions even when the clock stands still.
func TestNumbersIncreaseAcrossSessions(t *testing.T) {
	fixed := time.UnixMilli(1_700_000_000_000)
	e := newEnv(t, Config{Now: func() time.Time { return fixed }})
	st := e.createStream(testStreamName, 24)
	var all []string
	for range 2 {
		acks, err := e.runBody(Request{}, bytes.NewReader(cat(header(1, 1), gop(1000, 1), gop(2000, 1))))
		require.NoError(t, err)
		numbers, _ := requireFragmentAcks(t, acks, true)
		all = append(all, numbers...)
	}
	frags, _ := e.stored(st)
	require.Len(t, frags, 4)
	base := uint64(fixed.UnixMicro())
	for i, f := range frags {
		require.Equal(t, all[i], f.Number)
		require.Equal(t, base+uint64(i), f.Seq)
	}
}

func TestIdleAcksAndTimeout(t *testing.T) {
	requireNoLeak(t)
	e := newEnv(t, Config{IdleAckInterval: 20 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	e.createStream(testStreamName, 24)
	l := e.start(Request{})
	begun := time.Now()
	l.write(cat(header(1, 1), gop(1000, 2)))
	require.Equal(t, EventBuffering, l.next().EventType)
	require.ErrorIs(t, l.wait(), errIdle)
	require.GreaterOrEqual(t, time.Since(begun), 300*time.Millisecond)
	idle := 0
	for len(l.acks) > 0 {
		a := <-l.acks
		require.Equal(t, Ack{EventType: EventIdle}, a)
		idle++
	}
	require.GreaterOrEqual(t, idle, 3)
}

// gatedStore holds every WritePrepared until the test lets it go, to observe backpressure. It
// persists through the real store.
type gatedStore struct {
	Store
	gate     chan struct{}
	mu       sync.Mutex
	entered  int // WritePrepared calls
	prepared int // Prepare calls
}

// newGatedEnv is newEnv whose writes wait for the gatedStore's gate.
func newGatedEnv(t *testing.T, cfg Config) (*testEnv, *gatedStore) {
	e := newEnv(t, cfg)
	gated := &gatedStore{Store: e.store, gate: make(chan struct{})}
	e.m.cfg.Store = gated
	return e, gated
}

func (g *gatedStore) Prepare(ctx context.Context, k fragstore.Key, header []byte, f *fragment.Fragment, media []byte) (*fragstore.Prepared, error) {
	g.mu.Lock()
	g.prepared++
	g.mu.Unlock()
	return g.Store.Prepare(ctx, k, header, f, media)
}

func (g *gatedStore) WritePrepared(ctx context.Context, p *fragstore.Prepared, epoch uint64) (*fragstore.Commit, error) {
	g.mu.Lock()
	g.entered++
	g.mu.Unlock()
	select {
	case <-g.gate:
	case <-ctx.Done():
		p.Release()
		return nil, ctx.Err()
	}
	return g.Store.WritePrepared(ctx, p, epoch)
}

// While fragments wait for the disk the session keeps receiving up to maxWriting+maxBacklog of
// them, then stops reading the body; acks and persistence resume in order once the disk catches up.
func TestBackpressure(t *testing.T) {
	requireNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		e, gated := newGatedEnv(t, Config{})
		st := e.createStream(testStreamName, 24)
		l := e.start(Request{})

		// Big frames so that the Reader's read-ahead cannot swallow the body on its own.
		const n = 12
		frame := 256 << 10
		sent := l.send(header(1, 1))
		require.NoError(t, <-sent)
		var body []byte
		for i := range n {
			body = append(body, cluster(uint64(1000*i), block(1, 0, frame))...)
		}
		sent = l.send(body)
		received := 0
		deadline := time.After(5 * time.Second)
		for received < maxWriting+maxBacklog { // one being written, the rest queued
			select {
			case a := <-l.acks:
				if a.EventType == EventReceived {
					received++
				}
			case <-deadline:
				t.Fatalf("only %d fragments received", received)
			}
		}
		// Reading stops: the body stays unread and no further fragment completes.
		synctest.Wait() // everything that can happen without the disk has happened
		select {
		case err := <-sent:
			t.Fatalf("the whole body was read while the store was blocked (err %v)", err)
		default:
		}
		for len(l.acks) > 0 {
			require.Equal(t, EventBuffering, (<-l.acks).EventType)
		}
		close(gated.gate)
		require.NoError(t, <-sent)
		require.NoError(t, l.pw.Close())
		require.NoError(t, l.wait())
		frags, _ := e.stored(st)
		require.Len(t, frags, n)
	})
}

// While a fragment's media is being written the writer prepares (seals) the next one, so that
// the two overlap, and only that one: the rest wait unprepared.
func TestPreparesAheadOfTheWrite(t *testing.T) {
	requireNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		e, gated := newGatedEnv(t, Config{})
		st := e.createStream(testStreamName, 24)
		l := e.start(Request{})
		// Three fragments complete; the fourth when the body ends.
		require.NoError(t, <-l.send(cat(header(1, 1), gop(1000, 2), gop(3000, 2), gop(5000, 2), gop(7000, 2))))
		synctest.Wait()
		gated.mu.Lock()
		entered, prepared := gated.entered, gated.prepared
		gated.mu.Unlock()
		require.Equal(t, 1, entered, "writes started")
		require.Equal(t, 2, prepared, "fragments prepared")
		close(gated.gate)
		require.NoError(t, l.pw.Close())
		require.NoError(t, l.wait())
		frags, _ := e.stored(st)
		require.Len(t, frags, 4)
	})
}

func TestRunStopsOnContextAndEmitFailure(t *testing.T) {
	requireNoLeak(t)
	e := newEnv(t, Config{})
	e.createStream(testStreamName, 24)

	// emit fails: the producer is gone.
	s := e.open(Request{})
	gone := errors.New("broken pipe")
	err := s.Run(context.Background(), bytes.NewReader(cat(header(1, 1), gop(1000, 1))), func(Ack) error { return gone })
	require.ErrorIs(t, err, gone)
	s.Close()

	// ctx ends while the body is silent.
	ctx, cancel := context.WithCancel(context.Background())
	s = e.open(Request{})
	l := &live{t: t, acks: make(chan Ack, 100), done: make(chan error, 1)}
	pr, pw := newPipe(t)
	go func() { l.done <- s.Run(ctx, pr, func(a Ack) error { l.acks <- a; return nil }) }()
	_, err = pw.Write(cat(header(1, 1), gop(1000, 1)))
	require.NoError(t, err)
	require.Equal(t, EventBuffering, l.next().EventType)
	cancel()
	require.ErrorIs(t, l.wait(), context.Canceled)
}

// Past MaxQueuedBytes (all sessions together) a session with a fragment queued stops reading
// until it is persisted; the count goes back to zero when sessions end, persisted or not.
func TestQueuedBytesBound(t *testing.T) {
	requireNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		e, gated := newGatedEnv(t, Config{MaxQueuedBytes: 1})
		st := e.createStream(testStreamName, 24)
		l := e.start(Request{})
		const n = 6
		frame := 256 << 10
		body := header(1, 1)
		for i := range n {
			body = append(body, cluster(uint64(1000*i), block(1, 0, frame))...)
		}
		sent := l.send(body)
		for _, want := range []string{EventBuffering, EventReceived, EventBuffering} { // 1, 1, 2
			require.Equal(t, want, l.next().EventType)
		}
		synctest.Wait() // everything that can happen before a fragment is persisted has happened
		for len(l.acks) > 0 {
			a := <-l.acks
			require.NotEqual(t, EventReceived, a.EventType, "a second fragment was taken over the bound")
		}
		require.Equal(t, int64(len(cluster(0, block(1, 0, frame)))), e.m.queued.Load())
		close(gated.gate)
		require.NoError(t, <-sent)
		require.NoError(t, l.pw.Close())
		require.NoError(t, l.wait())
		frags, _ := e.stored(st)
		require.Len(t, frags, n)
		require.Zero(t, e.m.queued.Load())

		// A session that fails with fragments queued gives their bytes back too.
		e.m.cfg.Store = failingStore{e.store}
		_, err := e.runBody(Request{}, bytes.NewReader(cat(header(1, 1), gop(1000, 2), gop(3000, 2), gop(5000, 2))))
		require.Error(t, err)
		require.Zero(t, e.m.queued.Load())
	})
}
