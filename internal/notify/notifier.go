// Package notify delivers stream events to the destination of each stream's
// NotificationConfiguration: SNS topics (as KVS does), webhooks, NATS subjects and MQTT topics.
//
// Delivery is durable and at-least-once. The fragment index is the record of persisted
// fragments, so PERSISTED events need no queue of their own: per stream the notifier keeps a
// durable cursor (the last fragment sequence handled) and walks the index after it, advancing
// only once the destination acknowledged. IMAGE_DELIVERED events have no such record, so they
// are written to a durable outbox before ImageDelivered returns (outbox.go). Every event has a
// deterministic id (message.go) that receivers use to drop the duplicates a retry or a restart
// can cause.
//
// The per-stream work engine (streamwork) schedules the streams: one worker at a time handles a
// stream, so its events leave in order; a bounded pool of workers serves all streams in turns,
// and a stream whose destination fails waits out its backoff without holding a worker, so other
// streams go on. Files: notifier.go (the turn, the walk), outbox.go
// (durable state), message.go, destination.go (connection pool), status.go (Status, Diagnose,
// metrics) and one file per transport (sns.go, webhook.go, nats.go, mqtt.go).
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kvsd/kvsd/internal/egress"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/stream"
	"github.com/kvsd/kvsd/internal/streamwork"
)

// NotifyImagesTag is the stream tag that turns IMAGE_DELIVERED events on (value "true").
const NotifyImagesTag = "kvsd:NotifyImages"

// Streams reads stream records; stream.Store (the catalog) implements it.
type Streams interface {
	GetStream(ctx context.Context, name string) (*stream.Stream, error)
}

// Fragments reads the fragment index; *fragstore.Store implements it.
type Fragments interface {
	After(ctx context.Context, k fragstore.Key, afterSeq uint64, limit int) ([]*fragment.Fragment, error)
	LastSeq(ctx context.Context, k fragstore.Key) (uint64, error)
	// List is for Diagnose only (recent fragments by time).
	List(ctx context.Context, k fragstore.Key, kind fragstore.TimeKind, from, to time.Time, after fragstore.Cursor, limit int) ([]*fragment.Fragment, fragstore.Cursor, error)
}

// Config wires a Notifier. Zero durations and counts take the defaults in brackets.
type Config struct {
	Streams   Streams
	Fragments Fragments
	State     State // durable cursors and outbox: the catalog

	Logger     *slog.Logger          // nil: discard
	Registerer prometheus.Registerer // nil: metrics are kept but not registered

	// SNSEndpoint replaces the AWS SNS endpoint, for SNS-compatible servers (--sns-endpoint).
	SNSEndpoint string
	// AWSCredentials signs SNS requests; nil: EnvCredentials(os.Getenv).
	AWSCredentials aws.CredentialsProvider
	// WebhookSecret, when set, signs the webhooks that name no secret of their own
	// (X-Kvsd-Timestamp, X-Kvsd-Signature; webhook.go).
	WebhookSecret []byte
	// WebhookSecrets returns the secret a webhook URI names (https://…#secret=<name>); nil or
	// empty: not configured. nil: none is.
	WebhookSecrets func(name string) []byte
	// Egress decides which addresses destinations may connect to (webhooks, NATS, MQTT; SNS
	// goes to AWS or --sns-endpoint, which the API cannot choose).
	Egress egress.Policy

	Workers        int           // streams delivered at once [8]
	MinBackoff     time.Duration // first retry delay after a failure [500 ms]
	MaxBackoff     time.Duration // longest retry delay [30 s]
	AttemptTimeout time.Duration // one delivery attempt, connection included [10 s]
	IdleClose      time.Duration // a destination connection unused this long is closed [5 min]
	ResyncInterval time.Duration // every stream with a cursor is re-checked this often [30 s]

	Now func() time.Time // the one clock of timestamps, retry times and idle connections [time.Now]

	// Cluster, when set, shares the streams' notification work with the other nodes on the
	// same catalog (kvsd serve --catalog): a stream's events are sent by the node that holds
	// its claim, and its cursor moves only under that claim. nil: this process sends all.
	Cluster *streamwork.Cluster
}

// Notifier delivers the events of every stream. Create it with New, run it with Run.
type Notifier struct {
	cfg     Config
	log     *slog.Logger
	m       *metrics
	dests   *destinations
	work    *streamwork.Engine  // schedules the streams' turns (turn)
	cursors *streamwork.Cursors // per stream, the last fragment handled (outbox.go)
	shared  *streamwork.Shared  // the cluster's claims; nil on a single node

	mu          sync.Mutex
	streams     map[fragstore.Key]*streamState
	lastImageID int64 // orders outbox entries (outbox.go)
	outboxOK    bool  // the outbox has been loaded from the catalog
	started     bool
}

// streamState is the notifier's view of one stream.
type streamState struct {
	key fragstore.Key

	// Guarded by Notifier.mu.
	wakeSeq   uint64 // lowest fragment seq woken for since a turn last started; 0: none
	images    []imageEntry
	dest      string // redacted URI of the destination last used
	delivered uint64
	lastOK    time.Time
	pending   int
	forgotten bool // the stream is gone

	// Owned by the worker whose turn it is (the engine runs one turn of a stream at a time
	// and hands it over under its lock).
	cursorLoaded bool
	hasCursor    bool
	cursor       uint64 // last fragment seq handled (in memory; may be ahead of saved)
	saved        uint64 // cursor value in the catalog
	savedAt      time.Time
	counted      uint64 // highest fragment seq counted in kvsd_notify_events_total
}

// Defaults.
const (
	defaultWorkers        = 8
	defaultMinBackoff     = 500 * time.Millisecond
	defaultMaxBackoff     = 30 * time.Second
	defaultAttemptTimeout = 10 * time.Second
	defaultIdleClose      = 5 * time.Minute
	defaultResync         = 30 * time.Second

	// walkBatch is how many fragments are read from the index at a time, and handled in one
	// turn: a stream with a backlog then takes turns with the others.
	walkBatch = 256
	// cursorSaveInterval bounds how often a cursor moved only over untagged fragments is
	// written: re-reading those after a crash costs nothing, a commit per fragment would.
	cursorSaveInterval = 10 * time.Second
	pendingCountLimit  = 10000 // Status and the gauge count pending events up to this many
)

// New checks cfg and registers the metrics.
func New(cfg Config) (*Notifier, error) {
	if cfg.Streams == nil || cfg.Fragments == nil || cfg.State == nil {
		return nil, errors.New("notify: Config needs Streams, Fragments and State")
	}
	if cfg.WebhookSecrets == nil {
		cfg.WebhookSecrets = func(string) []byte { return nil }
	}
	setDefault(&cfg.Workers, defaultWorkers)
	setDefault(&cfg.MinBackoff, defaultMinBackoff)
	setDefault(&cfg.MaxBackoff, defaultMaxBackoff)
	setDefault(&cfg.AttemptTimeout, defaultAttemptTimeout)
	setDefault(&cfg.IdleClose, defaultIdleClose)
	setDefault(&cfg.ResyncInterval, defaultResync)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{cfg: cfg, log: log, streams: map[fragstore.Key]*streamState{}}
	n.dests = newDestinations(&n.cfg, log)
	m, err := newMetrics(cfg.Registerer, n.pendingTotal)
	if err != nil {
		return nil, err
	}
	n.m = m
	n.work, err = n.newEngine()
	if err != nil {
		return nil, err
	}
	return n, nil
}

// newEngine schedules the streams' turns. It wakes every stream with a cursor at start and
// every ResyncInterval, so that streams resume after a restart and a missed wake is made up
// for; failures back off from MinBackoff doubling to MaxBackoff.
func (n *Notifier) newEngine() (*streamwork.Engine, error) {
	n.cursors = &streamwork.Cursors{State: n.cfg.State, Component: cursorComponent}
	var claims streamwork.Claimer
	if n.cfg.Cluster != nil {
		n.shared = streamwork.NewShared(*n.cfg.Cluster, cursorComponent, n.cfg.Now, n.log)
		claims = n.shared
	}
	return streamwork.New(streamwork.Config{Process: n.turn, Workers: n.cfg.Workers,
		MinBackoff: n.cfg.MinBackoff, MaxBackoff: n.cfg.MaxBackoff, Cursors: n.cursors, Resync: n.cfg.ResyncInterval,
		Claims: claims, Now: n.cfg.Now, Logger: n.log})
}

func setDefault[T int | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// Run delivers until ctx ends, then saves the cursors and closes the destination connections.
// The notifier's goroutines (engine workers, upkeep) end before Run returns.
func (n *Notifier) Run(ctx context.Context) error {
	n.mu.Lock()
	if n.started {
		n.mu.Unlock()
		return errors.New("notify: Run called twice")
	}
	n.started = true
	n.mu.Unlock()
	// The outbox first: an image must not be overtaken by the next fragment's event.
	n.loadOutboxOnce(ctx)

	var wg sync.WaitGroup
	wg.Go(func() { n.upkeep(ctx) })
	err := n.work.Run(ctx)
	wg.Wait()
	if n.shared == nil {
		n.saveCursors() // in a cluster, each turn saved its cursor before its claim went
	}
	n.dests.closeAll()
	return err
}

// upkeep retries loading the outbox until it is loaded and closes idle connections, every
// ResyncInterval until ctx ends.
func (n *Notifier) upkeep(ctx context.Context) {
	tick := time.NewTicker(n.cfg.ResyncInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			n.loadOutboxOnce(ctx)
			n.dests.closeIdle(n.cfg.IdleClose)
		}
	}
}

// Wake tells the notifier that the fragment seq of stream k is persisted (ingest's Publish
// hook). It never blocks. seq lets a stream whose notifications were just enabled start exactly
// at that fragment; 0 means "unknown" (the stream's last fragment is taken).
func (n *Notifier) Wake(k fragstore.Key, seq uint64) {
	n.mu.Lock()
	st := n.stateLocked(k)
	if seq > 0 && (st.wakeSeq == 0 || seq < st.wakeSeq) {
		st.wakeSeq = seq
	}
	n.mu.Unlock()
	n.work.Wake(k)
}

func (n *Notifier) stateLocked(k fragstore.Key) *streamState {
	st := n.streams[k]
	if st == nil {
		st = &streamState{key: k}
		n.streams[k] = st
	}
	st.forgotten = false
	return st
}

// turn is the engine's Process: one turn over a stream, and its bookkeeping. A failure makes
// the engine back off (MinBackoff doubling to MaxBackoff) without holding a worker.
func (n *Notifier) turn(ctx context.Context, s streamwork.Stream) streamwork.Outcome {
	n.mu.Lock()
	st := n.stateLocked(s.Key)
	wakeSeq := st.wakeSeq
	st.wakeSeq = 0
	n.mu.Unlock()
	var more bool
	err := n.reload(ctx, st, s.Fresh)
	if err == nil {
		more, err = n.process(ctx, st, wakeSeq)
	}
	if err == nil && !more && n.shared != nil && st.hasCursor && st.cursor != st.saved {
		// The claim is released after this turn: the next holder starts from the saved cursor.
		err = n.saveCursor(ctx, st)
	}
	var pending int
	if err != nil && ctx.Err() == nil {
		pending = n.countPending(ctx, st)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err != nil && !st.hasCursor && wakeSeq > 0 && (st.wakeSeq == 0 || wakeSeq < st.wakeSeq) {
		st.wakeSeq = wakeSeq // the start of a newly enabled stream must not be lost to a failure
	}
	switch {
	case ctx.Err() != nil:
		return streamwork.Done() // stopping: not the stream's failure
	case err != nil:
		st.pending = pending
		if s.Failures == 0 {
			n.log.Warn("notification delivery failed; retrying with backoff", "stream", st.key.Name, "err", err)
		} else {
			n.log.Debug("notification delivery failed again", "stream", st.key.Name, "failures", s.Failures+1, "err", err)
		}
		return streamwork.Retry(err)
	}
	if s.Failures > 0 {
		n.log.Info("notification delivery resumed", "stream", st.key.Name, "after_failures", s.Failures)
	}
	st.pending = 0
	switch {
	case st.forgotten:
		if len(st.images) == 0 {
			delete(n.streams, st.key)
		}
		return streamwork.Drop()
	case more:
		return streamwork.More()
	}
	return streamwork.Done()
}

// process delivers the events of st that are due, in order: the PERSISTED event of each tagged
// fragment after the cursor, and recorded images, each after the PERSISTED event of its
// fragment. It handles at most walkBatch fragments and reports whether more may follow; it
// returns at the first failure, and the next turn starts again there.
func (n *Notifier) process(ctx context.Context, st *streamState, wakeSeq uint64) (more bool, err error) {
	s, err := n.cfg.Streams.GetStream(ctx, st.key.Name)
	if errors.Is(err, stream.ErrNotFound) || (err == nil && fragstore.KeyOf(s) != st.key) {
		return false, n.forget(ctx, st)
	}
	if err != nil {
		return false, fmt.Errorf("read stream %s: %w", st.key.Name, err)
	}
	if err := n.loadCursor(ctx, st); err != nil {
		return false, err
	}
	uri := enabledURI(s)
	n.mu.Lock()
	st.dest = redact(uri)
	n.mu.Unlock()
	if uri == "" {
		return false, n.disable(ctx, st)
	}
	if !st.hasCursor {
		// Newly enabled: events start with the fragment that woke us, or after the last one.
		if wakeSeq > 0 {
			st.cursor = wakeSeq - 1
		} else if st.cursor, err = n.cfg.Fragments.LastSeq(ctx, st.key); err != nil {
			return false, fmt.Errorf("last fragment of %s: %w", st.key.Name, err)
		}
		if err := n.saveCursor(ctx, st); err != nil {
			return false, err
		}
	}
	frags, err := n.cfg.Fragments.After(ctx, st.key, st.cursor, walkBatch)
	if err != nil {
		return false, fmt.Errorf("fragments of %s after %d: %w", st.key.Name, st.cursor, err)
	}
	more = len(frags) == walkBatch // the index may hold more after this batch
	for i := 0; ; {
		var f *fragment.Fragment
		if i < len(frags) {
			f = frags[i]
		}
		// An image goes before fragment f when its own fragment comes earlier (images of
		// fragment N follow the PERSISTED event of N), and after the last fragment.
		if img, ok := n.firstImage(st); ok && ((f == nil && !more) || (f != nil && img.seq < f.Seq)) {
			err := n.deliver(ctx, st, uri, img.event(), func() error { return n.dropImage(ctx, st, img.key) })
			if err != nil {
				return false, err
			}
			continue
		}
		if f == nil {
			break
		}
		i++
		if !f.HasTag(fragment.TagNotification) {
			st.cursor = f.Seq
			continue
		}
		if f.Seq > st.counted {
			st.counted = f.Seq
			n.m.events.WithLabelValues(TypePersisted).Inc()
		}
		ev := persistedEvent(s.ARN, s.Name, f)
		err := n.deliver(ctx, st, uri, ev, func() error {
			st.cursor = f.Seq
			return n.saveCursor(ctx, st)
		})
		if err != nil {
			return false, err
		}
	}
	if st.cursor != st.saved && n.cfg.Now().Sub(st.savedAt) >= cursorSaveInterval {
		return more, n.saveCursor(ctx, st)
	}
	return more, nil
}

// enabledURI is the destination of an ENABLED notification configuration, or "".
func enabledURI(s *stream.Stream) string {
	c := s.Notification
	if c == nil || c.Status != "ENABLED" || c.DestinationConfig == nil {
		return ""
	}
	return c.DestinationConfig.Uri
}

// deliver sends one event, waits for the destination's acknowledgement and then runs commit,
// which records durably that the event is done (cursor or outbox).
func (n *Notifier) deliver(ctx context.Context, st *streamState, uri string, ev event, commit func() error) error {
	d, err := n.dests.get(uri)
	if err != nil {
		n.m.failures.WithLabelValues(transportOf(uri)).Inc()
		return fmt.Errorf("%s event %s: connect to %s: %w", ev.Type, ev.ID, redact(uri), err)
	}
	actx, cancel := context.WithTimeout(ctx, n.cfg.AttemptTimeout)
	defer cancel()
	if err := d.send(actx, &ev); err != nil {
		n.m.failures.WithLabelValues(d.transport).Inc()
		n.dests.checkBroken(d, err)
		return fmt.Errorf("%s event %s: send to %s: %w", ev.Type, ev.ID, redact(uri), err)
	}
	n.m.delivered.WithLabelValues(d.transport).Inc()
	n.m.latency.WithLabelValues(d.transport).Observe(n.cfg.Now().Sub(ev.Origin).Seconds())
	if err := commit(); err != nil {
		return err // delivered again later: a duplicate with the same id
	}
	n.mu.Lock()
	st.delivered++
	st.lastOK = n.cfg.Now()
	n.mu.Unlock()
	return nil
}

// Cursors are the streams' durable notification cursors, for status pages (a cluster's lag).
func (n *Notifier) Cursors() *streamwork.Cursors { return n.cursors }
