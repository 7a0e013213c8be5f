// Package orphans deletes fragment objects that no index entry names, in a kvsd cluster (the
// catalog in PostgreSQL, the media in S3). A node writes a fragment's object, then commits its
// index entry: a node killed between the two, or one whose commit was fenced because another
// node took the stream, leaves an object nothing reads. Nodes repair nothing at start (another
// node may be between a PUT and its commit), so this sweep collects them instead.
//
// One node of the cluster sweeps at a time: the sweep runs under the catalog lease named
// LeaseName (a row beside the streams' leases, fenced the same way), which the sweeping node
// keeps for Interval after a sweep, so the other nodes skip theirs until then, and take over
// within Interval when it died. Only objects older than MinAge are candidates: a commit never
// takes anywhere near that long (a node that lost the stream cannot commit at all), so an
// object about to be committed is never taken for an orphan.
package orphans

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/kvsd/kvsd/internal/catalog"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/fragstore/s3media"
	"github.com/kvsd/kvsd/internal/stream"
)

// LeaseName is the catalog lease the sweep runs under. Stream names cannot hold ':', so it
// never collides with a stream's lease.
const LeaseName = "cluster:orphans"

// Defaults of Config.
const (
	DefaultMinAge   = time.Hour
	DefaultInterval = 10 * time.Minute
	// DefaultLeaseTTL is how long the sweeping node's lease lasts between its renewals while it
	// sweeps: after a node died mid-sweep, another may sweep this much later.
	DefaultLeaseTTL = time.Minute
)

// ErrBusy is Sweep's answer when another node holds LeaseName (it sweeps, or swept less than
// Interval ago).
var ErrBusy = errors.New("another node sweeps the orphaned objects")

// Streams lists the catalog's streams (catalog.Catalog implements it).
type Streams interface {
	ListStreams(ctx context.Context, prefix, startAfter string, limit int) ([]*stream.Stream, error)
}

// Index finds a fragment's index entry (catalog.Catalog implements it).
type Index interface {
	GetFragment(ctx context.Context, k catalog.Key, seq uint64) (*fragment.Fragment, error)
}

// Media lists and deletes a stream's record objects (*s3media.Media implements it).
type Media interface {
	Records(ctx context.Context, k fragstore.Key) ([]s3media.Record, error)
	UnknownRecords(ctx context.Context, known []fragstore.Key) ([]s3media.Record, error)
	DeleteRecords(ctx context.Context, recs []s3media.Record) (int64, error)
}

// Leases is the part of catalog.Leases the sweep uses.
type Leases interface {
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (catalog.Lease, error)
	RenewLease(ctx context.Context, l catalog.Lease, ttl time.Duration) (catalog.Lease, error)
}

// Config is what a Sweeper works on.
type Config struct {
	Streams Streams
	Index   Index
	Media   Media
	Leases  Leases
	Holder  string // this node's name in the lease (ingest's NodeID)

	MinAge   time.Duration // objects younger than this are left alone; default DefaultMinAge
	Interval time.Duration // between sweeps; default DefaultInterval
	LeaseTTL time.Duration // default DefaultLeaseTTL
	// Now is the clock objects' ages are measured with (S3's Last-Modified is the store's
	// clock: MinAge is far above any skew). Default time.Now.
	Now    func() time.Time
	Logger *slog.Logger // nil: discard
}

// Result is what one sweep did.
type Result struct {
	Streams int   // streams looked at
	Objects int   // record objects looked at
	Deleted int   // orphans deleted
	Bytes   int64 // their size
}

// Sweeper runs the sweep.
type Sweeper struct{ cfg Config }

// New returns a Sweeper over cfg.
func New(cfg Config) *Sweeper {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.MinAge, DefaultMinAge)
	def(&cfg.Interval, DefaultInterval)
	def(&cfg.LeaseTTL, DefaultLeaseTTL)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Sweeper{cfg: cfg}
}

// Run sweeps every Interval until ctx ends; a failed sweep is logged and tried again at the
// next one.
func (s *Sweeper) Run(ctx context.Context) error {
	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		r, err := s.Sweep(ctx)
		switch {
		case errors.Is(err, ErrBusy) || ctx.Err() != nil:
		case err != nil:
			s.cfg.Logger.Warn("sweeping orphaned objects; trying again later", "err", err)
		case r.Deleted > 0:
			s.cfg.Logger.Info("deleted orphaned objects (written by a node that died or lost its stream before committing them)",
				"objects", r.Deleted, "bytes", r.Bytes)
		}
	}
}

// Sweep deletes, if this node gets LeaseName, every record object older than MinAge that no
// index entry names: its seq has no entry, or the entry lies in another segment (the node
// that took the stream over wrote that seq again). It returns ErrBusy when another node holds
// the lease. Afterwards the lease is kept for Interval, so that the cluster sweeps once per
// Interval; this node's next Sweep takes it again.
func (s *Sweeper) Sweep(ctx context.Context) (Result, error) {
	var r Result
	l, err := s.cfg.Leases.AcquireLease(ctx, LeaseName, s.cfg.Holder, s.cfg.LeaseTTL)
	if errors.Is(err, catalog.ErrLeaseHeld) {
		return r, fmt.Errorf("%w: %v", ErrBusy, err)
	}
	if err != nil {
		return r, fmt.Errorf("orphans: %w", err)
	}
	renewed := time.Now()
	keep := func() error { // renew during a long sweep; fenced: another node sweeps now
		if time.Since(renewed) < s.cfg.LeaseTTL/3 {
			return nil
		}
		if l, err = s.cfg.Leases.RenewLease(ctx, l, s.cfg.LeaseTTL); err != nil {
			return fmt.Errorf("orphans: %w", err)
		}
		renewed = time.Now()
		return nil
	}
	cutoff := s.cfg.Now().Add(-s.cfg.MinAge)
	after := ""
	var known []fragstore.Key
	for {
		page, err := s.cfg.Streams.ListStreams(ctx, "", after, 100)
		if err != nil {
			return r, fmt.Errorf("orphans: list streams: %w", err)
		}
		for _, st := range page {
			if err := keep(); err != nil {
				return r, err
			}
			if err := s.sweepStream(ctx, fragstore.KeyOf(st), cutoff, &r); err != nil {
				return r, err
			}
			known = append(known, fragstore.KeyOf(st))
			after = st.Name
		}
		if len(page) < 100 {
			break
		}
	}
	// Streams the catalog no longer has (deleted by a node that died before it deleted all
	// their objects). Their objects are old: a stream created since the listing above has only
	// objects younger than MinAge.
	if err := keep(); err != nil {
		return r, err
	}
	gone, err := s.cfg.Media.UnknownRecords(ctx, known)
	if err != nil {
		return r, fmt.Errorf("orphans: %w", err)
	}
	if err := s.deleteOld(ctx, gone, cutoff, "", &r); err != nil {
		return r, err
	}
	if _, err := s.cfg.Leases.RenewLease(ctx, l, s.cfg.Interval); err != nil {
		return r, fmt.Errorf("orphans: keeping the lease until the next sweep: %w", err)
	}
	return r, nil
}

func (s *Sweeper) sweepStream(ctx context.Context, k fragstore.Key, cutoff time.Time, r *Result) error {
	recs, err := s.cfg.Media.Records(ctx, k)
	if err != nil {
		return fmt.Errorf("orphans: %w", err)
	}
	r.Streams++
	var orphans []s3media.Record
	for _, rec := range recs {
		if !rec.Modified.Before(cutoff) {
			r.Objects++
			continue
		}
		f, err := s.cfg.Index.GetFragment(ctx, k, rec.Seq)
		switch {
		case errors.Is(err, catalog.ErrFragmentNotFound):
		case err != nil:
			return fmt.Errorf("orphans: fragment %d of %s: %w", rec.Seq, k.Name, err)
		case f.Location.Segment == rec.Segment:
			r.Objects++
			continue // referenced
		}
		orphans = append(orphans, rec)
	}
	return s.deleteOld(ctx, orphans, cutoff, k.Name, r)
}

// deleteOld deletes the records of recs older than cutoff (what the sweep found no index entry
// for) and counts the others as looked at; stream names them in the log ("" for streams the
// catalog no longer has).
func (s *Sweeper) deleteOld(ctx context.Context, recs []s3media.Record, cutoff time.Time, stream string, r *Result) error {
	var old []s3media.Record
	for _, rec := range recs {
		r.Objects++
		if rec.Modified.Before(cutoff) {
			old = append(old, rec)
		}
	}
	if len(old) == 0 {
		return nil
	}
	n, err := s.cfg.Media.DeleteRecords(ctx, old)
	if err != nil {
		return fmt.Errorf("orphans: stream %q: %w", stream, err)
	}
	r.Deleted += len(old)
	r.Bytes += n
	s.cfg.Logger.Debug("deleted orphaned objects", "stream", stream, "objects", len(old))
	return nil
}
