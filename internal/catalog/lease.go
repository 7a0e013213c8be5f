package catalog

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrLeaseHeld is AcquireLease's answer while another holder's lease on the stream is live.
var ErrLeaseHeld = errors.New("stream lease is held by another node")

// HeldError is ErrLeaseHeld naming the holder and how long its grant has left on the
// catalog's clock, as read right after the refusal: a node that wants the stream or the work
// next tries again when it ends (a dead holder's grant is not renewed), not at a fixed interval.
type HeldError struct {
	What   string // "stream cam", "imagegen work of …"
	Holder string
	Left   time.Duration
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("%v: %s is held by %s for %v more", ErrLeaseHeld, e.What, e.Holder, e.Left.Round(time.Millisecond))
}

// Is makes errors.Is(err, ErrLeaseHeld) true.
func (e *HeldError) Is(target error) bool { return target == ErrLeaseHeld }

// ErrFenced is the answer to a write or renewal under a lease epoch that is no longer the
// stream's current one: another holder acquired the stream since. The writer has lost the
// stream and must not acknowledge anything more of it. *FencedError carries the details.
var ErrFenced = errors.New("stream lease epoch is no longer current")

// FencedError is the typed ErrFenced: errors.Is(err, ErrFenced) holds for it.
type FencedError struct {
	Stream  string
	Epoch   uint64 // the epoch the write or renewal named
	Current uint64 // the stream's current epoch; 0 if the stream has no lease at all
}

func (e *FencedError) Error() string {
	return fmt.Sprintf("stream %s: lease epoch %d is fenced off (current epoch %d)", e.Stream, e.Epoch, e.Current)
}

// Is makes errors.Is(err, ErrFenced) true.
func (e *FencedError) Is(target error) bool { return target == ErrFenced }

// Lease is one grant of a stream's lease: the right to write its fragment index.
type Lease struct {
	Stream string // the stream name (leases outlive incarnations: one row per name)
	Holder string // the node id given to AcquireLease
	// Epoch is the fencing token: it increases with every grant of the stream's lease and is
	// never reused, so that a commit naming it (Put.Epoch) is refused once anyone acquired
	// the stream after this grant.
	Epoch uint64
	// Expires is the end of the grant on the catalog's clock. Holders never compare it with
	// their own clock: they count the ttl from when they sent the request, on their monotonic
	// clock, which ends no later (see Leases).
	Expires time.Time
}

// Leases grant streams to writers, with fencing. The ingest path of a node (ingest.Leases)
// takes a stream's lease before it writes, renews it while it has connections of the stream
// and names its epoch in every index commit (Put.Epoch, fragstore.Store.WriteFenced), so that a
// node that lost the stream (paused, partitioned, presumed dead) can no longer commit: its late
// commits fail with ErrFenced and it sends no PERSISTED.
//
// Contract:
//   - Expiry is on the catalog's clock (PostgreSQL: now() + ttl), so node clocks never
//     matter. A holder's grant is valid, by its own clock, until the time it sent the request
//     plus ttl: the catalog's now() is read after the request was sent.
//   - AcquireLease grants when the stream has no lease, when its lease expired or was
//     released, or when holder is the current holder; every grant has a new, higher epoch.
//     Otherwise ErrLeaseHeld (wrapped, naming the holder).
//   - RenewLease extends a grant whose epoch is still current and that was not released, even
//     past its expiry (nobody acquired meanwhile, so nobody else wrote); otherwise
//     *FencedError.
//   - RenewLeases is RenewLease for many grants in one request (a node renews all of its
//     streams' grants together): each grant is renewed or lost exactly as RenewLease would
//     renew it or answer *FencedError, independently of the others, and the answer says which
//     (renewed, with their new Expires; lost, one *FencedError each). An error means nothing
//     is known: any of the grants may or may not have been extended. The grants must be of
//     distinct streams.
//   - ReleaseLease ends a current grant at once (the next AcquireLease succeeds); releasing a
//     lost grant is no error.
//   - Index commits fence on Put.Epoch (see Index): a non-zero Epoch that is not the current
//     epoch of Put.Key.Name's lease fails the whole PutFragments with *FencedError, in the
//     same transaction as the check, so no acquisition can slip between check and commit.
//     Epoch 0 is an unfenced commit.
//
// catalogtest.TestLeases checks this for catalogs shared between processes (PostgreSQL).
// A catalog only one process can open (bolt: bbolt locks its file) has no other writer to
// fence off: it grants every AcquireLease with a new epoch, renews and releases without
// checks, and accepts every Put.Epoch. That process's own session registry (ingest's last
// connection wins) is the single node's ownership rule, unchanged.
type Leases interface {
	// AcquireLease grants stream's lease to holder for ttl, or returns ErrLeaseHeld.
	AcquireLease(ctx context.Context, stream, holder string, ttl time.Duration) (Lease, error)
	// RenewLease extends l for ttl from now (the catalog's now), or returns *FencedError.
	RenewLease(ctx context.Context, l Lease, ttl time.Duration) (Lease, error)
	// RenewLeases extends each of ls for ttl from now, in one request. Every lease of ls is
	// either in renewed (with its new Expires) or in lost (fenced: released, or acquired by
	// someone since), both in ls's order; an error means nothing is known.
	RenewLeases(ctx context.Context, ls []Lease, ttl time.Duration) (renewed []Lease, lost []*FencedError, err error)
	// ReleaseLease ends l if it is still current.
	ReleaseLease(ctx context.Context, l Lease) error
}
