package imagegen

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/catalog/bolt"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/fragstore/disk"
	"github.com/kvsd/kvsd/internal/imaging"
	"github.com/kvsd/kvsd/internal/logtest"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/mkv/mkvtest"
	"github.com/kvsd/kvsd/internal/objstore"
	"github.com/kvsd/kvsd/internal/stream"
	"github.com/kvsd/kvsd/internal/streamwork"
)

const account = "111122223333"

// env is a catalog and fragment store on disk with a generator over them; objects go to memory
// and a fake decoder renders "images" that say which frame they show.
type env struct {
	t     *testing.T
	dir   string
	db    *bolt.DB
	store *fragstore.Store
	svc   *stream.Service
	objs  *memObjects
	decs  *fakeDecoders
	logs  *logtest.Buffer

	gen    *Generator
	cancel context.CancelFunc
	done   chan error
	seqs   map[fragstore.Key]uint64
}

func newEnv(t *testing.T) *env {
	e := &env{t: t, dir: t.TempDir(), objs: newMemObjects(), decs: &fakeDecoders{}, seqs: map[fragstore.Key]uint64{}, logs: &logtest.Buffer{}}
	e.open()
	t.Cleanup(e.close)
	return e
}

func (e *env) open() {
	db, err := bolt.Open(filepath.Join(e.dir, "catalog.db"))
	require.NoError(e.t, err)
	m, err := disk.Open(disk.Config{Dir: filepath.Join(e.dir, "media")})
	require.NoError(e.t, err)
	store, err := fragstore.Open(fragstore.Config{Media: m, Index: db})
	require.NoError(e.t, err)
	e.db, e.store = db, store
	e.svc = &stream.Service{Store: db, Region: "us-east-1", AccountID: account, PublicURL: "http://127.0.0.1:1"}
}

func (e *env) close() {
	e.stop()
	if e.store != nil {
		require.NoError(e.t, e.store.Close())
		require.NoError(e.t, e.db.Close())
		e.store = nil
	}
}

// start runs a generator; tweak adjusts its Config.
func (e *env) start(tweak ...func(*Config)) {
	cfg := Config{Catalog: e.db, Store: e.store, Objects: e.objs, NewDecoder: e.decs.new, AccountID: account,
		Destination: "memory", RetryMin: 10 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	for _, f := range tweak {
		f(&cfg)
	}
	g, err := New(cfg)
	require.NoError(e.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	e.gen, e.cancel, e.done = g, cancel, make(chan error, 1)
	go func() { e.done <- g.Run(ctx) }()
}

func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	require.NoError(e.t, <-e.done)
	e.cancel = nil
}

// restart stops the generator and reopens catalog and store, as a new process would.
func (e *env) restart(tweak ...func(*Config)) {
	e.close()
	e.open()
	e.start(tweak...)
}

func (e *env) createStream(name string, retention int) *stream.Stream {
	st, err := e.svc.Create(context.Background(), stream.CreateInput{Name: name, RetentionHours: &retention})
	require.NoError(e.t, err)
	return st
}

func (e *env) stream(name string) *stream.Stream {
	st, err := e.svc.Describe(context.Background(), stream.Ref{Name: name})
	require.NoError(e.t, err)
	return st
}

func imageConfig(uri string, intervalMs int, mutate ...func(*stream.ImageGenerationConfiguration)) *stream.ImageGenerationConfiguration {
	c := &stream.ImageGenerationConfiguration{Status: "ENABLED", ImageSelectorType: "PRODUCER_TIMESTAMP",
		DestinationConfig: &stream.ImageGenerationDestinationConfig{Uri: uri, DestinationRegion: "us-east-1"},
		SamplingInterval:  &intervalMs, Format: "JPEG"}
	for _, m := range mutate {
		m(c)
	}
	return c
}

func (e *env) configure(name string, c *stream.ImageGenerationConfiguration) {
	require.NoError(e.t, e.svc.SetImageGeneration(context.Background(), stream.Ref{Name: name}, c))
	if e.gen != nil {
		e.gen.Wake(fragstore.KeyOf(e.stream(name)))
	}
}

// frag describes a fragment to store: 25 frames, 40 ms apart, a keyframe first, starting at
// producer time start; data "bad" makes the fake decoder fail on its frames.
type frag struct {
	start  time.Time
	server time.Time // zero: start
	tags   []mkv.SimpleTag
	codec  string // default H.264
	data   string
	keyAt  int // index of the keyframe (the frames before it need the previous fragment's)
}

// put stores fragments of a stream and wakes the generator, as ingest does.
func (e *env) put(name string, frags ...frag) []*fragment.Fragment {
	out := e.putQuietly(name, frags...)
	if e.gen != nil {
		for range out {
			e.gen.Wake(fragstore.KeyOf(e.stream(name)))
		}
	}
	return out
}

// putQuietly is put without waking the generator, for a test that wakes the streams itself.
func (e *env) putQuietly(name string, frags ...frag) []*fragment.Fragment {
	st := e.stream(name)
	k := fragstore.KeyOf(st)
	if _, ok := e.seqs[k]; !ok {
		last, err := e.store.LastSeq(context.Background(), k)
		require.NoError(e.t, err)
		e.seqs[k] = last
	}
	var out []*fragment.Fragment
	for _, fr := range frags {
		e.seqs[k]++
		codec := fr.codec
		if codec == "" {
			codec = imaging.CodecH264
		}
		hdr := mkvHeader(codec)
		sum := sha256.Sum256(hdr)
		tc := uint64(fr.start.UnixMilli())
		body := mkvCluster(tc, 25, 40, fr.keyAt, fr.data)
		if len(fr.tags) > 0 {
			body = mkv.AppendTags8(body, fr.tags)
		}
		server := fr.server
		if server.IsZero() {
			server = fr.start
		}
		f := &fragment.Fragment{Seq: e.seqs[k], Number: fragment.FormatNumber(k.CreatedMs, e.seqs[k]), Timecode: tc,
			ProducerTime: fr.start.Truncate(time.Millisecond), ServerTime: server.Truncate(time.Millisecond),
			Duration: time.Second, HeaderID: hex.EncodeToString(sum[:16]), Tags: fr.tags}
		require.NoError(e.t, e.store.Append(context.Background(), k, hdr, f, body))
		out = append(out, f)
	}
	return out
}

// seconds returns n consecutive 1-s fragments from start, each with the given tags.
func seconds(start time.Time, n int, tags ...mkv.SimpleTag) []frag {
	out := make([]frag, n)
	for i := range out {
		out[i] = frag{start: start.Add(time.Duration(i) * time.Second), tags: tags}
	}
	return out
}

var imageTag = mkv.SimpleTag{Name: fragment.TagImageGeneration}

// --- test media ----------------------------------------------------------------------------------

// testLayout is how the test media are written: 8-byte sizes and integers, Clusters with their
// size.
var testLayout = mkvtest.Layout{Size: 8, UintSize: 8, SizedClusters: true}

func mkvHeader(codec string) []byte {
	return testLayout.Header(1_000_000, mkv.TrackEntry{Track: mkv.Track{Number: 1, UID: 1, Type: 1, CodecID: codec, CodecPrivate: []byte{1, 2, 3}}})
}

// mkvCluster is a cluster of n frames, stepMs apart, frame keyAt a keyframe; each frame's data
// names its relative time ("f<ms>"), after prefix.
func mkvCluster(tc uint64, n, stepMs, keyAt int, prefix string) []byte {
	blocks := make([]mkvtest.Block, n)
	for i := range blocks {
		rel := i * stepMs
		blocks[i] = mkvtest.Block{Track: 1, Rel: int16(rel), Key: i == keyAt, Data: fmt.Appendf(nil, "%sf%d", prefix, rel)}
	}
	return testLayout.Cluster(tc, blocks...)
}

// --- fakes ---------------------------------------------------------------------------------------

// fakeDecoders makes decoders whose "images" name the frame shown and the encoding.
type fakeDecoders struct {
	mu      sync.Mutex
	made    int
	closed  int
	refuse  map[string]error // codec → NewDecoder error
	renders int
	// gate, when set, holds every Render until it receives (or the gate is closed): a machine
	// that renders only as fast as the test lets it.
	gate chan struct{}
}

func (f *fakeDecoders) new(codecID string, _ []byte) (Decoder, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.refuse[codecID]; err != nil {
		return nil, err
	}
	if codecID != imaging.CodecH264 && codecID != imaging.CodecH265 {
		return nil, fmt.Errorf("%w %q", imaging.ErrUnsupportedCodec, codecID)
	}
	f.made++
	return &fakeDecoder{f: f}, nil
}

func (f *fakeDecoders) counts() (made, closed, renders int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.made, f.closed, f.renders
}

type fakeDecoder struct{ f *fakeDecoders }

func (d *fakeDecoder) Render(packets []imaging.Packet, at []time.Duration, spec imaging.Spec) []imaging.Result {
	if d.f.gate != nil {
		<-d.f.gate
	}
	d.f.mu.Lock()
	d.f.renders++
	d.f.mu.Unlock()
	out := make([]imaging.Result, len(at))
	for i, t := range at {
		out[i].At = t
		// Like the real decoder: the frame shown is the last at or before t, and it needs a
		// keyframe before it among the packets.
		var shown *imaging.Packet
		key := false
		for j := range packets {
			if packets[j].PTS <= t {
				shown = &packets[j]
				key = key || packets[j].Key
			}
		}
		switch {
		case shown == nil || !key:
			out[i].Err = imaging.ErrNoFrame
		case bytes.HasPrefix(shown.Data, []byte("bad")):
			out[i].Err = fmt.Errorf("decode error in %q", shown.Data)
		default:
			out[i].FramePTS = shown.PTS
			out[i].Image = fmt.Appendf(nil, "%s fmt=%d q=%d %dx%d", shown.Data, spec.Format, spec.Quality, spec.Width, spec.Height)
		}
	}
	return out
}

func (d *fakeDecoder) Stats() imaging.Stats { return imaging.Stats{} }

func (d *fakeDecoder) Close() {
	d.f.mu.Lock()
	d.f.closed++
	d.f.mu.Unlock()
}

type object struct {
	body        []byte
	contentType string
	meta        map[string]string
}

// memObjects stores objects in memory; fail, when set, decides per put whether it fails.
type memObjects struct {
	mu      sync.Mutex
	objects map[string]object // bucket/key
	puts    map[string]int
	fail    func(bucket, key string) error
	syncs   int
	syncErr error
	stored  chan struct{} // closed and replaced at every stored object
}

// Sync makes memObjects a destination that needs syncing, like objstore.Dir.
func (m *memObjects) Sync(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.syncs++
	return m.syncErr
}

func newMemObjects() *memObjects {
	return &memObjects{objects: map[string]object{}, puts: map[string]int{}, stored: make(chan struct{})}
}

func (m *memObjects) Put(ctx context.Context, bucket, key string, body []byte, contentType string, meta map[string]string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		if err := m.fail(bucket, key); err != nil {
			return err
		}
	}
	m.objects[bucket+"/"+key] = object{body: bytes.Clone(body), contentType: contentType, meta: meta}
	m.puts[bucket+"/"+key]++
	close(m.stored)
	m.stored = make(chan struct{})
	return nil
}

func (m *memObjects) setFail(f func(bucket, key string) error) {
	m.mu.Lock()
	m.fail = f
	m.mu.Unlock()
}

func (m *memObjects) keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for k := range m.objects {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (m *memObjects) get(k string) object {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.objects[k]
}

// wait waits until there are n objects and returns their keys.
func (m *memObjects) wait(t *testing.T, n int) []string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		m.mu.Lock()
		stored := m.stored
		m.mu.Unlock()
		keys := m.keys()
		if len(keys) >= n {
			return keys
		}
		select {
		case <-stored:
		case <-timeout:
			t.Fatalf("want %d objects, have %d: %v", n, len(keys), keys)
		}
	}
}

// settle waits until the generator is idle for the stream: nothing queued, running or waiting.
// cursor is the sequence of the last fragment the generator recorded as done for st.
func (e *env) cursor(st *stream.Stream) uint64 {
	e.t.Helper()
	b, err := e.db.LoadState(context.Background(), component, streamwork.StateKey(fragstore.KeyOf(st)))
	require.NoError(e.t, err)
	var c savedCursor
	require.NoError(e.t, json.Unmarshal(b, &c))
	return c.Seq
}

func (e *env) settle(name string) {
	e.t.Helper()
	k := fragstore.KeyOf(e.stream(name))
	require.Eventually(e.t, func() bool { return !e.gen.work.Busy(k) }, 10*time.Second, time.Millisecond,
		"generator still busy with %s", name)
}

var s3Error = func(code string, permanent bool) error {
	return &objstore.Error{Code: code, Permanent: permanent, Err: fmt.Errorf("%s (test)", code)}
}
