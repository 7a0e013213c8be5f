package catalog

import (
	"context"
	"time"
)

// WorkClaim is one grant of a work claim: the right of one node to do one kind of background
// work ("imagegen", "notify") on one stream incarnation and to move that work's durable cursor.
type WorkClaim struct {
	Kind   string // the work: the State component whose cursor the claim fences
	Key    string // the stream incarnation, as its State key (streamwork.StateKey)
	Holder string // the node id given to ClaimWork
	// Epoch is the fencing token: it increases with every grant of (Kind, Key) and is never
	// reused, so that a cursor write naming it (SaveStateFenced) is refused once anyone
	// claimed the work after this grant.
	Epoch uint64
	// Expires is the end of the grant on the catalog's clock (see Leases on clocks).
	Expires time.Time
}

// WorkClaims share per-stream background work between the nodes of a cluster: a node runs a
// stream's image or notification turns only while it holds that work's claim, and moves the
// work's cursor only under the claim's epoch, so a node that lost the claim (paused, presumed
// dead) cannot move the cursor back or forth under the new holder.
//
// Contract (catalogtest.TestWorkClaims checks it, for both catalogs):
//   - ClaimWork grants (kind, key) when it has no claim, when its claim expired or was
//     released, or when holder is the current holder; every grant has a new, higher epoch.
//     Otherwise ErrLeaseHeld (wrapped, naming the holder). Expiry is on the catalog's clock.
//   - RenewWork extends a grant whose epoch is current and that was not released, even past its
//     expiry (nobody claimed meanwhile); otherwise *FencedError.
//   - ReleaseWork ends a current grant at once; releasing a lost grant is no error.
//   - SaveStateFenced is State.SaveState of component/key under the claim: it fails with
//     *FencedError, storing nothing, unless c's epoch is the current one of (c.Kind, c.Key),
//     checked in the same transaction as the write.
//   - ListWork lists the unexpired, unreleased claims, for status pages, and the live stream
//     leases (Leases) among them as kind "ingest" with the stream name as Key.
//
// A catalog only one process can open (bolt) keeps claims in memory: with one node, its
// claims are always granted unless that node's own workers hold them.
type WorkClaims interface {
	ClaimWork(ctx context.Context, kind, key, holder string, ttl time.Duration) (WorkClaim, error)
	RenewWork(ctx context.Context, c WorkClaim, ttl time.Duration) (WorkClaim, error)
	ReleaseWork(ctx context.Context, c WorkClaim) error
	SaveStateFenced(ctx context.Context, c WorkClaim, component, key string, value []byte) error
	ListWork(ctx context.Context) ([]WorkClaim, error)
}
