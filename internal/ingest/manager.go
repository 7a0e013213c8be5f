// Package ingest is PutMedia's domain: it reads a producer's Matroska stream, cuts it into
// fragments, checks them against the KVS ingest rules, persists them in order and says so
// with acknowledgements (BUFFERING, RECEIVED, PERSISTED, IDLE, ERROR; §3 of the protocol
// reference). It takes an io.Reader and emits Ack values; kvsapi does the HTTP.
//
// A Manager admits one session per stream. Session.Run starts two goroutines and stops both
// before it returns: a parser that reads the body, and a writer that writes fragments' media
// to the store one at a time, so fragment N is fsynced while N+1 arrives. Each fragment's index
// entry then commits in the store's group commit (shared by all streams) while the writer goes
// on with the next fragment. Run itself is the session loop, the only goroutine that sends
// acks: PERSISTED once a fragment's commit is done, in order. The writer holds at most
// maxWriting fragments, maxCommitting more may wait for their commit, and maxBacklog more
// for room with the writer; when those are all taken the loop stops taking parsed events, the parser stops reading, and TCP pushes back on the
// producer.
package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/stream"
)

// Streams resolves streams; *stream.Service implements it.
type Streams interface {
	Describe(ctx context.Context, ref stream.Ref) (*stream.Stream, error)
}

// Store is the part of the fragment store ingest writes to; *fragstore.Store implements it.
// Write makes the media durable and returns with the index entry queued: the session writes
// the next fragment's media while this one's entry commits.
type Store interface {
	Write(ctx context.Context, k fragstore.Key, header []byte, f *fragment.Fragment, media []byte) (*fragstore.Commit, error)
	LastSeq(ctx context.Context, k fragstore.Key) (uint64, error)
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

// Manager admits PutMedia sessions, one per stream.
type Manager struct {
	cfg     Config
	metrics *metrics

	queued atomic.Int64 // bytes of received fragments not yet persisted, all sessions

	mu     sync.Mutex
	active map[string]*Session // by stream name
}

// NewManager builds a Manager; it does no I/O.
func NewManager(cfg Config) *Manager {
	cfg = cfg.withDefaults()
	return &Manager{cfg: cfg, metrics: newMetrics(cfg.Registerer), active: map[string]*Session{}}
}

// Open validates req, resolves its stream and claims the stream's single connection. Errors
// wrap stream.ErrNotFound, stream.ErrInvalidArgument or ErrConnectionLimit. The caller must
// Close the session.
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
		m: m, st: st, key: key, persist: st.RetentionHours > 0,
		log:      m.cfg.Logger.With("stream", st.Name),
		stopped:  make(chan struct{}),
		released: make(chan struct{}),
		frag: &fragmenter{lim: &m.cfg, createMs: key.CreatedMs, relative: req.TimecodeType == Relative,
			start: req.ProducerStart, opened: now, now: m.cfg.Now, lastSeq: last},
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.active[st.Name] != nil {
		return nil, fmt.Errorf("%w: stream %s", ErrConnectionLimit, st.Name)
	}
	m.active[st.Name] = s
	m.metrics.sessions.Inc()
	return s, nil
}

// EndStream ends the sessions of a deleted stream with ERROR 4008 and waits until they have
// stopped writing, so that removing the stream's data afterwards leaves nothing behind.
func (m *Manager) EndStream(name string) {
	if s := m.session(name); s != nil {
		s.stop(errStreamNotActive)
		<-s.released
	}
}

// Reconnect asks the stream's session, if any, to end the way Shutdown ends it: it persists
// what it received, then sends the retriable ERROR 5000, on which the producer reconnects and
// resends the rest. The new connection sees the stream as it is now; a session reads the
// stream's settings (whether it archives) only when it opens.
func (m *Manager) Reconnect(name, why string) {
	if s := m.session(name); s != nil {
		s.log.Info("ending the PutMedia connection; the producer reconnects", "why", why)
		s.stop(errInternal)
	}
}

// session returns the stream's open session, or nil.
func (m *Manager) session(name string) *Session {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.active[name]
}

// Shutdown ends every session for a server shutdown: each persists what it has received, then
// sends ERROR 5000, on which producers reconnect (to this server once it is back, or another)
// and resend the rest. It returns when all have stopped, or with ctx's error.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	var all []*Session
	for _, s := range m.active {
		all = append(all, s)
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
	return nil
}

// release gives up the stream's connection slot.
func (m *Manager) release(s *Session) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.active[s.st.Name] == s {
		delete(m.active, s.st.Name)
		m.metrics.sessions.Dec()
	}
}

type metrics struct {
	fragments prometheus.Counter
	bytes     prometheus.Counter
	errors    *prometheus.CounterVec
	sessions  prometheus.Gauge
	persist   prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		fragments: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kvsd_ingest_fragments_total", Help: "Fragments received completely over PutMedia.",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kvsd_ingest_fragment_bytes_total", Help: "Bytes of media (clusters and their tags) received over PutMedia.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kvsd_ingest_errors_total", Help: "PutMedia sessions ended by an ERROR ack, by ErrorCode.",
		}, []string{"code"}),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kvsd_ingest_sessions_active", Help: "PutMedia sessions running.",
		}),
		persist: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kvsd_ingest_persist_duration_seconds", Help: "Time to make one fragment durable (Store.Append).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.fragments, m.bytes, m.errors, m.sessions, m.persist)
	}
	return m
}
