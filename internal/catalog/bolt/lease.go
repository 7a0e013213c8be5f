package bolt

import (
	"context"
	"time"

	"github.com/kvsd/kvsd/internal/catalog"
)

// Leases of a catalog only one process can open (bbolt locks the file): there is no other
// node to fence off, so every AcquireLease is granted with a new epoch, renewals and releases
// always succeed and PutFragments ignores Put.Epoch (catalog.Leases documents this). The
// single node's ownership rule stays ingest's own: the last connection wins. Epochs live in
// memory; a restart ends every writer of the process anyway.

// AcquireLease grants stream's lease to holder with the next epoch.
func (d *DB) AcquireLease(ctx context.Context, stream, holder string, ttl time.Duration) (catalog.Lease, error) {
	if err := ctx.Err(); err != nil {
		return catalog.Lease{}, err
	}
	return catalog.Lease{Stream: stream, Holder: holder, Epoch: d.epochs.Add(1), Expires: time.Now().Add(ttl)}, nil
}

// RenewLease extends l.
func (d *DB) RenewLease(ctx context.Context, l catalog.Lease, ttl time.Duration) (catalog.Lease, error) {
	if err := ctx.Err(); err != nil {
		return catalog.Lease{}, err
	}
	l.Expires = time.Now().Add(ttl)
	return l, nil
}

// RenewLeases extends every one of ls.
func (d *DB) RenewLeases(ctx context.Context, ls []catalog.Lease, ttl time.Duration) ([]catalog.Lease, []*catalog.FencedError, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	renewed := make([]catalog.Lease, len(ls))
	until := time.Now().Add(ttl)
	for i, l := range ls {
		l.Expires = until
		renewed[i] = l
	}
	return renewed, nil, nil
}

// ReleaseLease has nothing to release.
func (d *DB) ReleaseLease(ctx context.Context, _ catalog.Lease) error { return ctx.Err() }
