// Package imagegen makes images from stored fragments: automatically for streams whose
// ImageGenerationConfiguration is ENABLED (delivered to S3 or the local folder with KVS's keys
// and metadata), and on request for GetImages.
//
// Durable work is the fragment index plus one cursor per stream. The index already records
// every persisted fragment; the generator keeps, per stream, the sequence of the last fragment
// it fully handled (catalog state imagegen/<createdMs>_<name>) and works through
// Store.After(cursor) in order. Ingest only wakes it (Wake). A fragment counts when it was
// persisted while the configuration was ENABLED: while a stream is not enabled its cursor
// follows the newest fragment, so enabling applies from the next fragment, and after a
// restart an enabled stream resumes where its cursor stands.
//
// Delivery never drops an image: a fragment's cursor moves only after all of its images are
// stored (and, for the local folder, synced). Transient failures retry with exponential backoff (RetryMin doubling to RetryMax);
// permanent ones (NoSuchBucket, AccessDenied …) retry every RetryMax, since someone may fix the
// bucket, and are reported by `kvsd doctor` and the metrics with their S3 code. Keys are
// deterministic, so an image redone after a crash overwrites its object instead of adding one.
//
// Concurrency: the per-stream work engine (streamwork) runs Workers goroutines, all owned by
// Run, over the streams that have work; a stream is handled by one worker at a time (its
// fragments stay in order) and keeps one Decoder that is reused from fragment to fragment. Rendering (decode, scale, encode) is
// further bounded by RenderWorkers, so uploads to a slow S3 do not leave cores idle.
package imagegen

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kvsd/kvsd/internal/catalog"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/stream"
	"github.com/kvsd/kvsd/internal/streamwork"
)

// Store is the part of the fragment store the generator reads; *fragstore.Store implements it.
type Store interface {
	LastSeq(ctx context.Context, k fragstore.Key) (uint64, error)
	Fragment(ctx context.Context, k fragstore.Key, seq uint64) (*fragment.Fragment, error)
	After(ctx context.Context, k fragstore.Key, afterSeq uint64, limit int) ([]*fragment.Fragment, error)
	Media(ctx context.Context, k fragstore.Key, f *fragment.Fragment) ([]byte, error)
	MediaAppend(ctx context.Context, k fragstore.Key, f *fragment.Fragment, dst []byte) ([]byte, error)
	Header(ctx context.Context, k fragstore.Key, id string) ([]byte, error)
	List(ctx context.Context, k fragstore.Key, kind fragstore.TimeKind, from, to time.Time, after fragstore.Cursor, limit int) ([]*fragment.Fragment, fragstore.Cursor, error)
	SeqAt(ctx context.Context, k fragstore.Key, kind fragstore.TimeKind, t time.Time) (uint64, error)
}

// Catalog holds the streams and the generator's durable cursors; a catalog.Catalog
// implements it.
type Catalog interface {
	GetStream(ctx context.Context, name string) (*stream.Stream, error)
	ListStreams(ctx context.Context, prefix, startAfter string, limit int) ([]*stream.Stream, error)
	catalog.State
}

// Objects is where images go (objstore.S3 or objstore.Dir).
type Objects interface {
	Put(ctx context.Context, bucket, key string, body []byte, contentType string, meta map[string]string) error
}

// Delivered describes one image that reached its destination.
type Delivered struct {
	URI            string // s3://bucket/key
	ImageTime      time.Time
	FragmentNumber string
}

// Config wires a Generator. Zero values take the defaults named.
type Config struct {
	Catalog    Catalog
	Store      Store
	Objects    Objects
	NewDecoder NewDecoderFunc
	AccountID  string // the account in image keys
	// Destination says in words where s3:// URIs are delivered ("local folder …", "S3
	// endpoint …"), for `kvsd doctor`.
	Destination string

	Workers       int           // streams handled at once; default 4 × GOMAXPROCS (uploads wait on I/O)
	RenderWorkers int           // renders at once; default GOMAXPROCS
	RetryMin      time.Duration // first retry after a transient failure; default 1 s
	RetryMax      time.Duration // backoff cap, and the pace of retries after a permanent failure; default 1 min
	PutTimeout    time.Duration // one upload; default 30 s
	// UntaggedWarnAfter is how many eligible-looking fragments in a row must arrive without
	// the image tag before the server logs its one WARN for the stream; default 10.
	UntaggedWarnAfter int
	// LagWarn is the lag (oldest fragment waiting for images, on the server clock) past which a
	// stream's falling behind is logged as a WARN and `kvsd doctor` warns; default 1 min.
	LagWarn time.Duration

	// Cluster, when set, shares the streams' image work with the other nodes on the same
	// catalog (kvsd serve --catalog): a stream's images are made by the node that holds its
	// claim, and its cursor moves only under that claim. nil: this process does all of it.
	Cluster *streamwork.Cluster

	// OnDelivered, when set, runs after each image is stored (notifications' IMAGE_DELIVERED).
	// It runs on a worker and should not block long.
	OnDelivered func(ctx context.Context, st *stream.Stream, d Delivered)

	Now        func() time.Time      // the one clock of timestamps, metrics and retry times; nil: time.Now
	Logger     *slog.Logger          // nil: discard
	Registerer prometheus.Registerer // nil: metrics are kept but not registered
}

func (c Config) withDefaults() Config {
	if c.Workers <= 0 {
		c.Workers = 4 * runtime.GOMAXPROCS(0)
	}
	if c.RenderWorkers <= 0 {
		c.RenderWorkers = runtime.GOMAXPROCS(0)
	}
	if c.RetryMin <= 0 {
		c.RetryMin = time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = time.Minute
	}
	if c.PutTimeout <= 0 {
		c.PutTimeout = 30 * time.Second
	}
	if c.LagWarn <= 0 {
		c.LagWarn = time.Minute
	}
	if c.UntaggedWarnAfter <= 0 {
		c.UntaggedWarnAfter = 10
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Generator makes and delivers images; see the package documentation.
type Generator struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	render  gate
	work    *streamwork.Engine  // schedules the streams' turns (process)
	cursors *streamwork.Cursors // the streams' durable cursors (cursor.go)
	shared  *streamwork.Shared  // the cluster's claims; nil on a single node
	resumed chan struct{}       // closed once Run resumed every stream

	mu    sync.Mutex
	tasks map[fragstore.Key]*task
}

// New returns a Generator; it does no I/O until Run.
func New(cfg Config) (*Generator, error) {
	cfg = cfg.withDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	g := &Generator{cfg: cfg, log: cfg.Logger.With("component", "imagegen"), metrics: m,
		render: make(gate, cfg.RenderWorkers), resumed: make(chan struct{}), tasks: map[fragstore.Key]*task{}}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(lagCollector{g}); err != nil {
			return nil, err
		}
	}
	g.cursors = &streamwork.Cursors{State: cfg.Catalog, Component: component, Encode: encodeCursor, Decode: decodeCursor}
	// Transient delivery failures back off from RetryMin to RetryMax; other waits are chosen
	// per failure (process).
	var claims streamwork.Claimer
	if cfg.Cluster != nil {
		g.shared = streamwork.NewShared(*cfg.Cluster, component, cfg.Now, g.log)
		claims = g.shared
	}
	g.work, err = streamwork.New(streamwork.Config{Process: g.turn, Workers: cfg.Workers,
		MinBackoff: cfg.RetryMin, MaxBackoff: cfg.RetryMax, Cursors: g.cursors, Claims: claims, Now: cfg.Now, Logger: g.log})
	if err != nil {
		return nil, err
	}
	return g, nil
}

// Wake tells the generator that stream k has a new fragment (or changed). It never blocks on
// image work: ingest calls it after each PERSISTED ack.
func (g *Generator) Wake(k fragstore.Key) {
	g.mu.Lock()
	t := g.tasks[k]
	g.mu.Unlock()
	if t != nil {
		// A caught-up stream has a new fragment, persisted about now: its lag counts from here
		// even while it waits for a worker (its turn reads the fragment's own time).
		now := g.cfg.Now()
		t.mu.Lock()
		if t.status.tracked && t.status.behindSince.IsZero() {
			t.status.behindSince = now
		}
		t.mu.Unlock()
	}
	g.work.Wake(k)
}

// Ready is closed once Run has read every stream's cursor: a stream created after that starts
// from its first fragment.
func (g *Generator) Ready() <-chan struct{} { return g.resumed }

// Run starts the workers and blocks until ctx ends; it returns nil after a clean stop. Every
// goroutine it starts has ended when it returns, and every decoder is closed.
func (g *Generator) Run(ctx context.Context) error {
	for {
		err := g.resume(ctx)
		if err == nil {
			break
		}
		g.log.Error("reading image-generation cursors; retrying in 5 s", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(5 * time.Second):
		}
	}
	close(g.resumed)
	// The engine wakes every stream with a cursor: the enabled ones (resume).
	err := g.work.Run(ctx)
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, t := range g.tasks {
		t.dec.close()
	}
	return err
}

// task is one stream's image work. Its fields are touched only by the worker whose turn it
// is (the engine runs one turn of a stream at a time, and hands it over under its lock);
// status has its own lock because Diagnose reads it from API requests.
type task struct {
	key fragstore.Key

	known      bool   // cursor and enabled reflect this process's view of the stream
	cursor     uint64 // last fragment fully handled
	unsaved    int    // fragments the cursor moved past since it was last recorded
	enabled    bool   // as last recorded (durably when true)
	dec        decoderSlot
	buf        []byte // the last fragment's bytes, reused for the next (loadVideo)
	pending    *pendingFragment
	failures   int    // consecutive delivery failures (doctor's attempt count)
	untagged   int    // ineligible fragments in a row while enabled
	warned     bool   // the untagged WARN was logged
	lastLogged string // last delivery error code logged, to log changes only
	unsynced   bool   // images were put since the destination's last Sync

	mu     sync.Mutex
	status status
}

// taskFor returns k's task, made on first use.
func (g *Generator) taskFor(k fragstore.Key) *task {
	g.mu.Lock()
	defer g.mu.Unlock()
	t := g.tasks[k]
	if t == nil {
		t = &task{key: k}
		g.tasks[k] = t
	}
	return t
}

// turn is the engine's Process: one turn of work on a stream.
func (g *Generator) turn(ctx context.Context, s streamwork.Stream) streamwork.Outcome {
	t := g.taskFor(s.Key)
	if s.Fresh {
		// Another node may have worked on the stream since this one's last turn.
		if err := g.reload(ctx, t); err != nil {
			return g.retryAfterError(ctx, t, err)
		}
	}
	return g.process(ctx, t)
}

// Claims reports the streams whose image work this node holds, for status pages; nil on a
// single node.
func (g *Generator) Claims() *streamwork.Shared { return g.shared }

// Cursors are the streams' durable image cursors, for status pages (a cluster's lag).
func (g *Generator) Cursors() *streamwork.Cursors { return g.cursors }
