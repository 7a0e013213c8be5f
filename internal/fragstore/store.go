// Package fragstore is the durable, time-indexed fragment store the rest of kvsd uses: media
// bytes first, then the index entry, so that a fragment acknowledged PERSISTED survives a crash.
//
// A Store joins two backends, each behind an interface declared here with a conformance suite:
// Media (fragment bytes in per-stream segments; disk implements it, mediatest checks it) and
// Index (the fragment index, catalog.Index; every catalog implements it, catalogtest.TestIndex
// checks it).
// The Index is the truth: a fragment exists when its entry is committed. Media holding bytes
// the Index does not know of (a crash between the two writes) is cut away by Open's recovery;
// the Index never points at media that was not synced first.
//
// Writes are pipelined: Write makes a fragment's media durable and queues its index entry; one
// committer goroutine commits everything queued, from every stream, in one index transaction
// (group commit), while the writers go on with their next fragments' media. Before that,
// Prepare does a fragment's CPU work (meta, encryption) ahead of its Write, so that a writer
// seals its next fragment while the previous one's media is being written. See append.go.
//
// Files by facet: append.go (write path, group commit), list.go (time and sequence reads, cursors),
// expire.go (retention and deletion), recover.go (start-up repair), meta.go (the record
// self-description), metrics.go.
package fragstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/stream"
)

// KeyOf returns the storage key of s.
func KeyOf(s *stream.Stream) Key { return Key{Name: s.Name, CreatedMs: s.CreationTime.UnixMilli()} }

// Config wires a Store. The caller opens both backends (only app knows the concrete types:
// disk.Open, the catalog). A Store that opened owns Media and closes it; the Index is the catalog
// file, shared with the stream metadata, and stays the caller's to close.
type Config struct {
	Media      Media                 // fragment bytes, e.g. disk.Open(<data-dir>/media)
	Index      Index                 // fragment index: the catalog
	Logger     *slog.Logger          // nil: discard
	Registerer prometheus.Registerer // nil: metrics are kept but not registered
	// Shared says other processes write the same Media and Index (kvsd nodes on one catalog
	// and bucket). Open then repairs nothing: media the Index does not reference may be
	// another node's fragment between its media write and its commit. What crashes leave
	// behind stays (unreferenced, never read) until a cluster-wide clean-up collects it.
	Shared bool
}

// Store keeps fragment media and the fragment index.
type Store struct {
	media   Media
	index   Index
	log     *slog.Logger
	metrics *metrics

	mu      sync.Mutex
	streams map[Key]*streamState // never shrinks: see state

	damage damage // fragments that could not be served (damage.go)

	// The group commit (append.go): Write appends to queue, commitLoop takes it.
	qmu       sync.Mutex
	queue     []*Commit
	qclosed   bool          // no more Writes: set by commitLoop once Close was called
	wake      chan struct{} // capacity 1: something was queued
	closing   chan struct{} // closed by Close: the committer finishes the queue and stops
	committed chan struct{} // closed when the committer has stopped
	closeOnce sync.Once

	fullMu    sync.Mutex
	fullSince time.Time // zero unless the last media write ran out of space (evict.go)
}

// streamState serialises the writers of one stream. Write holds mu across its media step and
// counts the entries it queued for the index in pending; Expire and DeleteStream hold mu and
// first wait for pending to drop to zero, so that they never free a segment between a Write's
// media and its index commit. Different Keys never wait on each other.
type streamState struct {
	mu      sync.Mutex
	idle    sync.Cond // L is &mu; signalled when pending drops to zero
	lastSeq uint64    // highest Seq written to media (committed, queued or failed); valid when loaded
	loaded  bool
	pending int // entries written to media whose index commit has not finished
}

// quiesce waits, with st.mu held, until none of the stream's entries awaits its commit.
func (st *streamState) quiesce() {
	for st.pending > 0 {
		st.idle.Wait()
	}
}

// Open runs crash recovery over the backends (see recover.go) and returns the Store.
func Open(cfg Config) (*Store, error) {
	if cfg.Media == nil || cfg.Index == nil {
		return nil, errors.New("fragstore: Config needs both Media and Index")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Store{media: cfg.Media, index: cfg.Index, log: log, metrics: m, streams: map[Key]*streamState{},
		queue: make([]*Commit, 0, commitQueue), wake: make(chan struct{}, 1), closing: make(chan struct{}), committed: make(chan struct{})}
	if cfg.Shared {
		log.Info("fragment media is shared with other nodes: start-up recovery skipped, unreferenced media is left in place")
	} else if err := s.repair(context.Background()); err != nil {
		return nil, fmt.Errorf("fragstore recovery: %w", err)
	}
	go s.commitLoop()
	return s, nil
}

// state returns k's writer state. States are never removed: a writer blocked on a removed state
// would no longer exclude the writers of a new one.
func (s *Store) state(k Key) *streamState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[k]
	if st == nil {
		st = &streamState{}
		st.idle.L = &st.mu
		s.streams[k] = st
	}
	return st
}

// LastSeq returns the highest stored sequence of the stream, 0 if none.
func (s *Store) LastSeq(ctx context.Context, k Key) (uint64, error) {
	seq, _, err := s.index.LastFragment(ctx, k)
	return seq, err
}

// Fragment returns the index entry with that sequence.
func (s *Store) Fragment(ctx context.Context, k Key, seq uint64) (*fragment.Fragment, error) {
	return s.index.GetFragment(ctx, k, seq)
}

// Media returns the stored bytes of f (cluster and trailing tags), exactly as ingested.
func (s *Store) Media(ctx context.Context, k Key, f *fragment.Fragment) ([]byte, error) {
	loc, err := s.location(ctx, k, f)
	if err != nil {
		return nil, err
	}
	b, err := s.media.Read(ctx, k, loc)
	if err != nil {
		return nil, s.noteRead(k, f.Number, fmt.Errorf("media of fragment %d of %s: %w", f.Seq, k.Name, err))
	}
	return b, nil
}

// MediaAppend is Media appending the bytes to dst, for callers that read fragment after
// fragment into one reused buffer. Backends that can read into a caller's buffer (disk) do so;
// others are read with Media and copied. On error dst is returned as it was.
func (s *Store) MediaAppend(ctx context.Context, k Key, f *fragment.Fragment, dst []byte) ([]byte, error) {
	loc, err := s.location(ctx, k, f)
	if err != nil {
		return dst, err
	}
	var out []byte
	if ra, ok := s.media.(readAppender); ok {
		out, err = ra.ReadAppend(ctx, k, loc, dst)
	} else {
		var b []byte
		if b, err = s.media.Read(ctx, k, loc); err == nil {
			out = append(dst, b...)
		}
	}
	if err != nil {
		return dst, s.noteRead(k, f.Number, fmt.Errorf("media of fragment %d of %s: %w", f.Seq, k.Name, err))
	}
	return out, nil
}

// location is where f's media lies. Entries the index returned (List, After, Fragment) carry
// it; a Fragment made elsewhere (the one a Write was given) is looked up by Seq.
func (s *Store) location(ctx context.Context, k Key, f *fragment.Fragment) (Location, error) {
	if f.Location != (Location{}) {
		return f.Location, nil
	}
	e, err := s.index.GetFragment(ctx, k, f.Seq)
	if err != nil {
		return Location{}, err
	}
	return e.Location, nil
}

// readAppender is a Media backend that reads into a caller's buffer (disk.Media).
type readAppender interface {
	ReadAppend(ctx context.Context, k Key, loc Location, dst []byte) ([]byte, error)
}

// Header returns the MKV header bytes (EBML … Tracks) stored under id.
func (s *Store) Header(ctx context.Context, k Key, id string) ([]byte, error) {
	return s.index.GetHeader(ctx, k, id)
}

// Close commits the index entries still queued, stops the committer and releases open files.
// Writes must have stopped.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	<-s.committed
	return s.media.Close() // the Index is the caller's (Config)
}
