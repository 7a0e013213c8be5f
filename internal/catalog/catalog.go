// Package catalog holds the contracts of kvsd's catalog: what an implementation (catalog/bolt,
// embedded; catalog/postgres, shared by the nodes of scale-out) provides, and the sentinel errors it answers with.
// catalogtest is the one conformance suite every implementation passes (catalogtest.Run).
//
// The contracts, grouped by who uses them:
//
//   - Streams: the stream records (stream.Store; its consumer, stream.Service, sits below the
//     catalog in the import graph, so the declaration lives there and Streams names it).
//     Answers stream.ErrNotFound and stream.ErrInUse. Creation times strictly increase per
//     name (see stream.Store.CreateStream), so a stream's incarnation (Key) is never reused.
//   - Index: the fragment index (index.go); fragstore is its user. Answers ErrFragmentNotFound.
//   - State: small durable records of background components (state.go); streamwork's cursors
//     and notify's outbox. Answers ErrNoState.
//   - Leases: per-stream write leases with epochs that fence index commits (lease.go), for
//     catalogs shared by several kvsd nodes. Answers ErrLeaseHeld and ErrFenced.
//   - WorkClaims: per-stream claims on background work (image generation, notifications)
//     whose epochs fence the work's cursor writes (work.go); streamwork.Shared is the user.
//
// Domain packages declare the narrow interfaces they use (notify.Streams, retention's catalog)
// and depend on this package, never on an implementation: layering_test.go checks that.
package catalog

import "github.com/kvsd/kvsd/internal/stream"

// Streams stores stream records. The contract is documented on stream.Store.
type Streams = stream.Store

// Catalog is everything an implementation provides, behind one handle.
type Catalog interface {
	Streams
	Index
	State
	Leases
	WorkClaims
	// Close releases the catalog.
	Close() error
}
