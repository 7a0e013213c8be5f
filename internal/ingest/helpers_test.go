package ingest

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/catalog/bolt"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/mkv/mkvtest"
	"github.com/kvsd/kvsd/internal/stream"
)

// Matroska in the PIC's layout (§3.5): 8-byte sizes, unknown-size Segment and Clusters.
const (
	testScale      = 1_000_000 // 1 ms ticks
	testStreamName = "cam-1"
)

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// el is an element with an 8-byte size.
func el(id uint32, parts ...[]byte) []byte {
	w := mkv.Writer{Size: 8}
	w.Bytes(id, cat(parts...))
	return w.Buf
}

// header is an EBML header, an unknown-size Segment, Info and Tracks with the given track
// numbers; uid varies the bytes so that documents can be told apart.
func header(uid uint64, tracks ...uint64) []byte {
	var entries []mkv.TrackEntry
	for _, n := range tracks {
		entries = append(entries, mkv.TrackEntry{Track: mkv.Track{Number: n, UID: uid + n, Type: 1, CodecID: "V_MPEG4/ISO/AVC"}})
	}
	return mkvtest.Wide.Header(testScale, entries...)
}

// cluster is an unknown-size Cluster with an 8-byte Timecode and the given blocks.
func cluster(tc uint64, blocks ...[]byte) []byte {
	return cat(mkvtest.Wide.Cluster(tc), cat(blocks...))
}

// block is a SimpleBlock (a keyframe) on track with a relative timecode and size bytes of
// frame data.
func block(track byte, rel int16, size int) []byte {
	w := mkv.Writer{Size: 8}
	w.SimpleBlock(uint64(track), rel, 0x80, bytes.Repeat([]byte{0x5A}, size))
	return w.Buf
}

// gop is a cluster of n frames 40 ms apart on track 1.
func gop(tc uint64, n int) []byte {
	var blocks [][]byte
	for i := range n {
		blocks = append(blocks, block(1, int16(40*i), 100))
	}
	return cluster(tc, blocks...)
}

func tags(pairs ...string) []byte { return mkvtest.Wide.Tags(pairs...) }

var endOfFragment = tags(fragment.TagEndOfFragment, "")

// testEnv is a Manager over a real bolt catalog and fragment store in a temp dir.
type testEnv struct {
	t     *testing.T
	svc   *stream.Service
	store testStore
	m     *Manager

	mu        sync.Mutex
	published []Event
	onPublish chan struct{} // a token after each publish (buffer 1: tokens merge)
}

// testStore is what the tests read back; *fragstore.Store implements it.
type testStore interface {
	Store
	After(ctx context.Context, k fragstore.Key, afterSeq uint64, limit int) ([]*fragment.Fragment, error)
	Media(ctx context.Context, k fragstore.Key, f *fragment.Fragment) ([]byte, error)
	Header(ctx context.Context, k fragstore.Key, id string) ([]byte, error)
}

func newEnv(t *testing.T, cfg Config) *testEnv {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "catalog.db"))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	e := &testEnv{t: t, svc: &stream.Service{Store: db, Region: "us-east-1", AccountID: "111122223333"}, onPublish: make(chan struct{}, 1)}
	e.store = openStore(t, db)
	if cfg.Streams == nil {
		cfg.Streams = e.svc
	}
	if cfg.Store == nil {
		cfg.Store = e.store
	}
	cfg.Publish = func(ev Event) {
		ev.Media = bytes.Clone(ev.Media) // valid only during the call (Event)
		e.mu.Lock()
		e.published = append(e.published, ev)
		e.mu.Unlock()
		select {
		case e.onPublish <- struct{}{}:
		default:
		}
	}
	e.m = NewManager(cfg)
	return e
}

func (e *testEnv) createStream(name string, retentionHours int) *stream.Stream {
	e.t.Helper()
	st, err := e.svc.Create(context.Background(), stream.CreateInput{Name: name, RetentionHours: &retentionHours})
	require.NoError(e.t, err)
	return st
}

func (e *testEnv) events() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Event(nil), e.published...)
}

// stored returns every stored fragment of st with its media.
func (e *testEnv) stored(st *stream.Stream) ([]*fragment.Fragment, [][]byte) {
	e.t.Helper()
	ctx, k := context.Background(), fragstore.KeyOf(st)
	frags, err := e.store.After(ctx, k, 0, 1000)
	require.NoError(e.t, err)
	var media [][]byte
	for _, f := range frags {
		b, err := e.store.Media(ctx, k, f)
		require.NoError(e.t, err)
		media = append(media, b)
	}
	return frags, media
}

// open starts a session on the named stream.
func (e *testEnv) open(req Request) *Session {
	e.t.Helper()
	if req.StreamName == "" && req.StreamARN == "" {
		req.StreamName = testStreamName
	}
	if req.TimecodeType == "" {
		req.TimecodeType = Absolute
	}
	s, err := e.m.Open(context.Background(), req)
	require.NoError(e.t, err)
	e.t.Cleanup(s.Close)
	return s
}

// runBody runs a whole session over body and returns its acks and result.
func (e *testEnv) runBody(req Request, body io.Reader) ([]Ack, error) {
	e.t.Helper()
	s := e.open(req)
	var acks []Ack
	err := s.Run(context.Background(), body, func(a Ack) error {
		acks = append(acks, a)
		return nil
	})
	return acks, err
}

// live is a session fed through a pipe, with its acks on a channel, for tests that must act
// between acks.
type live struct {
	t    *testing.T
	pw   *io.PipeWriter
	acks chan Ack
	done chan error
}

func (e *testEnv) start(req Request) *live {
	e.t.Helper()
	s := e.open(req)
	pr, pw := io.Pipe()
	l := &live{t: e.t, pw: pw, acks: make(chan Ack, 1000), done: make(chan error, 1)}
	go func() {
		l.done <- s.Run(context.Background(), pr, func(a Ack) error {
			l.acks <- a
			return nil
		})
	}()
	e.t.Cleanup(func() { pw.Close() })
	return l
}

// send writes to the body in a goroutine, so a session that stops reading cannot block the test.
func (l *live) send(b []byte) <-chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := l.pw.Write(b)
		ch <- err
	}()
	return ch
}

func (l *live) write(b []byte) {
	l.t.Helper()
	require.NoError(l.t, <-l.send(b))
}

// next returns the next ack other than IDLE.
func (l *live) next() Ack {
	l.t.Helper()
	for {
		select {
		case a := <-l.acks:
			if a.EventType != EventIdle {
				return a
			}
		case <-time.After(5 * time.Second):
			l.t.Fatal("no ack within 5 s")
		}
	}
}

// untilError returns the acks up to and including the first ERROR, IDLE left out.
func (l *live) untilError() []Ack {
	l.t.Helper()
	var acks []Ack
	for {
		a := l.next()
		acks = append(acks, a)
		if a.EventType == EventError {
			return acks
		}
	}
}

func (l *live) wait() error {
	l.t.Helper()
	select {
	case err := <-l.done:
		return err
	case <-time.After(5 * time.Second):
		l.t.Fatal("session did not end within 5 s")
		return nil
	}
}

// requireFragmentAcks checks that every fragment got BUFFERING, RECEIVED and (when persisted)
// PERSISTED in that order with one number, that numbers increase, and returns the fragments'
// timecodes in order.
func requireFragmentAcks(t *testing.T, acks []Ack, persisted bool) (numbers []string, timecodes []uint64) {
	t.Helper()
	seen := map[string][]string{}
	for _, a := range acks {
		switch a.EventType {
		case EventIdle, EventError:
			continue
		case EventBuffering:
			require.NotContains(t, seen, a.FragmentNumber, "BUFFERING twice")
			if len(numbers) > 0 {
				require.Greater(t, a.FragmentNumber, numbers[len(numbers)-1], "numbers must increase")
			}
			numbers, timecodes = append(numbers, a.FragmentNumber), append(timecodes, a.FragmentTimecode)
		default:
			require.Contains(t, seen, a.FragmentNumber, "%s before BUFFERING", a.EventType)
		}
		require.Len(t, a.FragmentNumber, fragment.NumberDigits)
		seen[a.FragmentNumber] = append(seen[a.FragmentNumber], a.EventType)
	}
	want := []string{EventBuffering, EventReceived}
	if persisted {
		want = append(want, EventPersisted)
	}
	for _, n := range numbers {
		require.Equal(t, want, seen[n], "acks of fragment %s", n)
	}
	return numbers, timecodes
}

// requireNoLeak fails if goroutines started during the test outlive it.
func requireNoLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		// Goroutines end a little after what ended them, and nothing announces it: poll the
		// count (require.Eventually would add a goroutine of its own to it).
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			t.Errorf("%d goroutines leaked:\n%s", n-before, buf[:runtime.Stack(buf, true)])
		}
	})
}

func requireTime(t *testing.T, want, got time.Time) {
	t.Helper()
	require.True(t, want.Equal(got), "want %s, got %s", want, got)
}

func newPipe(t *testing.T) (*io.PipeReader, *io.PipeWriter) {
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	return pr, pw
}
