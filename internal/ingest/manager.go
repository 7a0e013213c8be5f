// Package ingest is PutMedia's domain: it reads a producer's Matroska stream, cuts it into
// fragments, checks them against the KVS ingest rules, persists them in order and says so
// with acknowledgements (BUFFERING, RECEIVED, PERSISTED, IDLE, ERROR; §3 of the protocol
// reference). It takes an io.Reader and emits Ack values; kvsapi does the HTTP.
//
// A Manager admits the sessions; the newest of a stream takes over from the one before (the
// last connection wins), and a body without a header continues the stream's document. With a
// catalog shared by several nodes (Config.Leases) a stream is ingested by one node at a time,
// and its commits are fenced by the node's lease (lease.go).
// Session.Run starts two goroutines and stops both before it returns: a parser that reads the
// body, and a writer that writes fragments' media to the store one at a time (or skips those
// kept for 0 hours), so fragment N is fsynced while N+1 arrives. Each fragment's index
// entry then commits in the store's group commit (shared by all streams) while the writer goes
// on with the next fragment. Run itself is the session loop, the only goroutine that sends
// acks: PERSISTED once a fragment's commit is done, in order. The writer holds at most
// maxWriting fragments, maxCommitting more may wait for their commit, and maxBacklog more
// for room with the writer; when those are all taken the loop stops taking parsed events, the parser stops reading, and TCP pushes back on the
// producer.
package ingest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/metric"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/stream"
)

// Streams resolves streams; *stream.Service implements it.
type Streams interface {
	Describe(ctx context.Context, ref stream.Ref) (*stream.Stream, error)
}

// Store is the part of the fragment store ingest writes to; *fragstore.Store implements it.
// Prepare does a fragment's CPU work (meta, encryption), WritePrepared makes its media durable
// and returns with the index entry queued: the session prepares the next fragment while this
// one's media is written, and writes the next one's media while this one's entry commits.
type Store interface {
	Prepare(ctx context.Context, k fragstore.Key, header []byte, f *fragment.Fragment, media []byte) (*fragstore.Prepared, error)
	// WritePrepared writes p (and releases it) with its commit fenced by a lease epoch
	// (Config.Leases); 0: not fenced.
	WritePrepared(ctx context.Context, p *fragstore.Prepared, epoch uint64) (*fragstore.Commit, error)
	LastSeq(ctx context.Context, k fragstore.Key) (uint64, error)
	// Fragment and Header give a continuation after a restart the header it plays with.
	Fragment(ctx context.Context, k fragstore.Key, seq uint64) (*fragment.Fragment, error)
	Header(ctx context.Context, k fragstore.Key, id string) ([]byte, error)
}

var (
	_ Streams = (*stream.Service)(nil)
	_ Store   = (*fragstore.Store)(nil)
)

// Event is a complete fragment handed to Config.Publish. Header and Media must not be
// modified. The Media of a persisted fragment is only valid during the Publish call (its buffer
// is reused afterwards; read it back from the store, or copy it); that of an unpersisted one
// (retention 0) stays valid.
type Event struct {
	Stream    *stream.Stream
	Key       fragstore.Key
	Fragment  *fragment.Fragment
	Header    []byte // the MKV header (EBML … Tracks) the fragment plays with
	Media     []byte // cluster and trailing tags, verbatim
	Persisted bool   // false for streams without retention: the fragment exists only here
}

// Config wires a Manager. Zero durations and sizes take the KVS defaults.
type Config struct {
	Streams Streams
	Store   Store
	// Publish, when set, receives every complete fragment in order: after its PERSISTED ack,
	// or after RECEIVED for streams with retention 0 (live GetMedia readers still want them).
	// It runs on the session loop and must not block long.
	Publish func(Event)

	MaxFragmentSize int64 // default 50 MB → ERROR 4001
	// MaxQueuedBytes bounds the received fragments all sessions together hold while they wait
	// to be persisted (default 32 MiB): beyond it, sessions with a fragment queued stop reading
	// until theirs is persisted. In real time a few fragments are queued at any moment; the
	// bound matters when the disk or CPU falls behind.
	MaxQueuedBytes      int64
	MaxFragmentDuration time.Duration // default 20 s (current quota) → ERROR 4002
	MaxConnectionAge    time.Duration // default 45 min → ERROR 4003 at the next fragment
	IdleTimeout         time.Duration // default 30 s without a body byte ends the session
	IdleAckInterval     time.Duration // default 3 s between IDLE acks while no data arrives
	// SupersededGrace is how long a connection a newer one took over may go on finishing the
	// fragments it started (default 10 s): kvssink opens its next connection about 3 s before
	// it ends the old one at a credential rotation.
	SupersededGrace time.Duration
	// MaxClockSkew refuses a fragment whose producer timestamp (ABSOLUTE timecodes, or
	// RELATIVE ones from x-amzn-producer-start-timestamp) is further than this from the server
	// clock, with ERROR 4007: a camera whose clock is wrong would fill the archive with a wrong
	// timeline. 0: no check.
	MaxClockSkew time.Duration

	// Leases, when set, makes the Manager take each stream's lease before its sessions write
	// and fence their commits with its epoch (lease.go): for catalogs shared by several nodes.
	// Nil: no leases, as a single node needs none.
	Leases   Leases
	NodeID   string        // the holder name of this node's leases
	LeaseTTL time.Duration // default DefaultLeaseTTL
	// HolderSilence is how long a node's connections of a stream may all stay silent (no
	// body byte, and the node not itself holding the reading back) before the node stops
	// renewing the stream's lease (default DefaultHolderSilence): a producer that vanished
	// without closing its connection must not keep its stream from the connection it opens
	// elsewhere. See lease.go.
	HolderSilence time.Duration

	// Now is the wall clock for fragment times, numbers and the connection age; idle timing
	// always uses real timers. Default time.Now.
	Now        func() time.Time
	Logger     *slog.Logger          // nil: no logs
	Registerer prometheus.Registerer // nil: metrics are kept but not registered
}

func (c Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.MaxFragmentSize <= 0 {
		c.MaxFragmentSize = 50_000_000
	}
	if c.MaxQueuedBytes <= 0 {
		c.MaxQueuedBytes = 32 << 20
	}
	def(&c.MaxFragmentDuration, 20*time.Second)
	def(&c.MaxConnectionAge, 45*time.Minute)
	def(&c.IdleTimeout, 30*time.Second)
	def(&c.IdleAckInterval, 3*time.Second)
	def(&c.SupersededGrace, 10*time.Second)
	def(&c.LeaseTTL, DefaultLeaseTTL)
	def(&c.HolderSilence, DefaultHolderSilence)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Timecode types of x-amzn-fragment-timecode-type.
const (
	Absolute = "ABSOLUTE"
	Relative = "RELATIVE"
)

// Request is what a PutMedia names before its body.
type Request struct {
	StreamName, StreamARN string // exactly one
	TimecodeType          string // Absolute or Relative
	// ProducerStart is x-amzn-producer-start-timestamp, zero if absent. RELATIVE cluster
	// timecodes count from it; without it they count from the session's start.
	ProducerStart time.Time
}

// Manager admits PutMedia sessions. A stream has one connection that streams; a new one takes
// over from it (the last connection wins, as on AWS): the older one may finish the fragments it
// started, then ends. A body that starts without an EBML header continues the document an
// earlier connection of the stream carried.
type Manager struct {
	cfg     Config
	metrics *metrics

	queued atomic.Int64 // bytes of received fragments not yet persisted, all sessions

	mu       sync.Mutex
	streams  map[string]*streamState // by stream name
	leases   map[string]*streamLease // by stream name: this node's grants (lease.go)
	renewer  *renewer                // the last renewer started, which renews leases (lease.go)
	problems problems

	leaseMu sync.Mutex // serialises lease acquisitions (leaseFor)
}

// streamState is what the Manager keeps of a stream across its connections.
type streamState struct {
	key      fragstore.Key
	sessions map[*Session]bool // running
	newest   *Session          // the last one opened, while it runs; older ones are superseded
	lastSeq  uint64            // the last fragment sequence handed out
	doc      *document         // the last document a connection started, for continuations
	held     *held             // a fragment a broken connection left unfinished
}

// held is a fragment whose connection ended before it was complete; the producer's next
// connection may carry its rest without a header.
type held struct {
	b   *building
	cut *mkv.Cut // the Cluster so far; nil when it was complete and only its end was missing
}

// NewManager builds a Manager; it does no I/O.
func NewManager(cfg Config) *Manager {
	cfg = cfg.withDefaults()
	return &Manager{cfg: cfg, metrics: newMetrics(cfg.Registerer), streams: map[string]*streamState{}, leases: map[string]*streamLease{}}
}

// Open validates req, resolves its stream and admits the connection; a connection of the stream
// that was streaming is superseded. Errors wrap stream.ErrNotFound or stream.ErrInvalidArgument.
// The caller must Close the session.
func (m *Manager) Open(ctx context.Context, req Request) (*Session, error) {
	if req.TimecodeType != Absolute && req.TimecodeType != Relative {
		return nil, invalidError(fmt.Sprintf("the fragment timecode type must be ABSOLUTE or RELATIVE, not %q", req.TimecodeType))
	}
	st, err := m.cfg.Streams.Describe(ctx, stream.Ref{Name: req.StreamName, ARN: req.StreamARN})
	if err != nil {
		return nil, err
	}
	if st.Status != stream.StatusActive {
		return nil, fmt.Errorf("%w: stream %s is %s", stream.ErrNotFound, st.Name, st.Status)
	}
	key := fragstore.KeyOf(st)
	last, err := m.cfg.Store.LastSeq(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("putmedia %s: last fragment: %w", st.Name, err)
	}
	now := m.cfg.Now()
	if req.TimecodeType == Relative && req.ProducerStart.IsZero() {
		req.ProducerStart = now
	}
	s := &Session{
		m: m, st: st, key: key, persistAcks: st.RetentionHours > 0,
		log:        m.cfg.Logger.With("stream", st.Name),
		stopped:    make(chan struct{}),
		superseded: make(chan struct{}),
		released:   make(chan struct{}),
		frag: &fragmenter{lim: &m.cfg, createMs: key.CreatedMs, relative: req.TimecodeType == Relative,
			start: req.ProducerStart, opened: now, now: m.cfg.Now},
	}
	s.frag.nextSeq = func() (uint64, bool) { return m.nextSeq(s) }
	s.frag.onHeader = func(d *document) { m.noteHeader(s, d) }
	if m.cfg.Leases != nil {
		// Last: nothing after it fails, so the session certainly releases what it takes.
		if s.lease, err = m.leaseFor(ctx, st.Name); err != nil {
			return nil, err
		}
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	ss := m.streams[st.Name]
	if ss == nil || ss.key != key { // new, or deleted and created again
		ss = &streamState{key: key, sessions: map[*Session]bool{}}
		m.streams[st.Name] = ss
	}
	ss.lastSeq = max(ss.lastSeq, last)
	if prev := ss.newest; prev != nil {
		s.prev = prev
		close(prev.superseded)
		m.metrics.superseded.Inc()
	}
	s.state = ss
	ss.newest = s
	ss.sessions[s] = true
	m.metrics.sessions.Inc()
	return s, nil
}

// nextSeq hands s the stream's next fragment sequence. A superseded connection gets none once
// the newer one streams: from then on the fragments are the newer one's to send.
func (m *Manager) nextSeq(s *Session) (uint64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ss := s.state
	if n := ss.newest; n != s && n != nil && n.streaming {
		return 0, false
	}
	s.streaming = true
	ss.lastSeq = max(ss.lastSeq+1, uint64(m.cfg.Now().UnixMicro()))
	return ss.lastSeq, true
}

// noteHeader records the document s started, which a later connection may continue.
func (m *Manager) noteHeader(s *Session, d *document) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s.state.doc = d
}

// continuation is what a body without a header continues.
type continuation struct {
	doc  *document
	held *held // nil: kvsd holds nothing of the fragment in flight
}

// resume prepares s to continue the stream's document: it ends the connection s took over
// (the producer is evidently done with it), waits until that one has stopped, and takes what
// it left. After a restart the document comes from the store: the header of the last fragment.
func (m *Manager) resume(ctx context.Context, s *Session) (*continuation, error) {
	m.mu.Lock()
	s.resuming = true
	m.mu.Unlock()
	if p := s.prev; p != nil {
		p.stop(endSuperseded)
		select {
		case <-p.released:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	m.mu.Lock()
	ss := s.state
	c := &continuation{doc: ss.doc, held: ss.held}
	ss.held = nil
	m.mu.Unlock()
	if c.held != nil {
		c.doc = c.held.b.doc
	}
	if c.doc != nil {
		return c, nil
	}
	doc, err := m.storedDocument(ctx, ss.key)
	if err != nil || doc == nil {
		return nil, err
	}
	m.mu.Lock()
	if ss.doc == nil {
		ss.doc = doc
	}
	m.mu.Unlock()
	return &continuation{doc: doc}, nil
}

// storedDocument rebuilds the document of the stream's last stored fragment, nil if there is
// none. Its RELATIVE start is recovered from that fragment's times.
func (m *Manager) storedDocument(ctx context.Context, k fragstore.Key) (*document, error) {
	seq, err := m.cfg.Store.LastSeq(ctx, k)
	if err != nil || seq == 0 {
		return nil, err
	}
	f, err := m.cfg.Store.Fragment(ctx, k, seq)
	if err != nil {
		return nil, fmt.Errorf("last fragment: %w", err)
	}
	raw, err := m.cfg.Store.Header(ctx, k, f.HeaderID)
	if err != nil {
		return nil, fmt.Errorf("header of the last fragment: %w", err)
	}
	ev, err := mkv.NewReader(bytes.NewReader(raw), mkv.Limits{}).Next()
	if err != nil || ev.Kind != mkv.KindHeader {
		return nil, fmt.Errorf("header of the last fragment: %w", err)
	}
	start := f.ProducerTime.Add(-time.Duration(f.Timecode * ev.Header.TimecodeScale))
	return newDocument(ev.Header, start), nil
}

// dropHeld forgets a fragment a broken connection left: s starts the stream over with a new
// header, and the producer resends what it has not seen acknowledged.
func (m *Manager) dropHeld(s *Session) *held {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := s.state.held
	s.state.held = nil
	return h
}

// release frees s's place. A fragment it left unfinished is held for a continuation, unless a
// newer connection that does not continue the stream took over. The stream's lease is
// returned when s was its last user, for the caller to end outside m.mu (endLease).
func (m *Manager) release(s *Session, h *held) (dropped *held, lease *streamLease) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ss := s.state
	if !ss.sessions[s] {
		return nil, nil
	}
	delete(ss.sessions, s)
	m.metrics.sessions.Dec()
	lease = m.dropLease(s.lease)
	if ss.newest == s {
		ss.newest = nil
	}
	if h == nil {
		return nil, lease
	}
	if n := ss.newest; n != nil && !n.resuming {
		return h, lease
	}
	ss.held = h
	return nil, lease
}

// EndStream ends the sessions of a deleted stream with ERROR 4008 and waits until they have
// stopped writing, so that removing the stream's data afterwards leaves nothing behind.
func (m *Manager) EndStream(name string) {
	m.mu.Lock()
	var all []*Session
	if ss := m.streams[name]; ss != nil {
		for s := range ss.sessions {
			all = append(all, s)
		}
		delete(m.streams, name)
	}
	m.mu.Unlock()
	for _, s := range all {
		s.stop(errStreamNotActive)
		<-s.released
	}
}

// Shutdown ends every session for a server shutdown: each persists what it has received, then
// sends ERROR 5000 naming the fragment in flight, on which producers reconnect (to this server
// once it is back, or another) and resend from it. It returns when all have stopped, and the
// lease renewer with them (it stops with the last grant), or with ctx's error.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	var all []*Session
	for _, ss := range m.streams {
		for s := range ss.sessions {
			all = append(all, s)
		}
	}
	m.mu.Unlock()
	for _, s := range all {
		s.stop(errInternal)
	}
	for _, s := range all {
		select {
		case <-s.released:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// No renewal in flight once the catalog is closed after this.
	var renewed chan struct{}
	m.mu.Lock()
	if r := m.renewer; r != nil && r.stopped {
		renewed = r.done
	}
	m.mu.Unlock()
	if renewed != nil {
		select {
		case <-renewed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

type metrics struct {
	fragments  prometheus.Counter
	bytes      prometheus.Counter
	errors     *prometheus.CounterVec
	sessions   prometheus.Gauge
	persist    prometheus.Histogram
	superseded prometheus.Counter
	resumed    *prometheus.CounterVec
	lost       *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		fragments: metric.Counter("kvsd_ingest_fragments_total", "Fragments received completely over PutMedia."),
		bytes:     metric.Counter("kvsd_ingest_fragment_bytes_total", "Bytes of media (clusters and their tags) received over PutMedia."),
		errors:    metric.CounterVec("kvsd_ingest_errors_total", "PutMedia sessions ended by an ERROR ack, by ErrorCode.", "code"),
		sessions:  metric.Gauge("kvsd_ingest_sessions_active", "PutMedia sessions running."),
		persist: metric.Histogram("kvsd_ingest_persist_duration_seconds", "Time to make one fragment durable (Store.Append).",
			prometheus.ExponentialBuckets(0.001, 2, 14)),
		superseded: metric.Counter("kvsd_ingest_superseded_total", "PutMedia connections a newer connection of the same stream took over."),
		resumed: metric.CounterVec("kvsd_ingest_continuations_total",
			"PutMedia bodies without an EBML header that continued an earlier connection, by whether the fragment in flight was held.", "fragment"),
		lost: metric.CounterVec("kvsd_ingest_frames_lost_total",
			"Frames received over PutMedia and never stored, by why: a session ended inside their fragment, or a continuation carried the rest of a fragment kvsd did not hold.",
			"why"),
	}
	if reg != nil {
		reg.MustRegister(m.fragments, m.bytes, m.errors, m.sessions, m.persist, m.superseded, m.resumed, m.lost)
	}
	return m
}
