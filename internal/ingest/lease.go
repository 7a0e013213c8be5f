package ingest

import (
	"context"
	"time"

	"github.com/kvsd/kvsd/internal/catalog"
)

// Leases is what a PutMedia session will take its stream through when several kvsd nodes
// share one catalog (scale-out): AcquireLease when the session starts (ErrLeaseHeld becomes
// ConnectionLimitExceeded unless the holder has been silent a while), RenewLease about every
// second while it runs (*catalog.FencedError ends it without another PERSISTED), ReleaseLease
// when it ends, and the grant's epoch in every index commit it makes (catalog.Put.Epoch).
// catalog.Leases documents the semantics; every catalog implements it, the embedded one
// trivially. Not wired yet: the Manager does not take leases.
type Leases interface {
	AcquireLease(ctx context.Context, stream, holder string, ttl time.Duration) (catalog.Lease, error)
	RenewLease(ctx context.Context, l catalog.Lease, ttl time.Duration) (catalog.Lease, error)
	ReleaseLease(ctx context.Context, l catalog.Lease) error
}

var _ Leases = catalog.Catalog(nil)
