package bolt

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/kvsd/kvsd/internal/catalog"
)

// Work claims of a catalog only one process can open: kept in memory, since a restart ends
// every holder of the process anyway. The one node's claims are always granted unless its own
// workers hold them; the embedded kvsd does not use them at all (its work engine's claims are
// in-process). They follow catalog.WorkClaims to the letter so that catalogtest checks both
// catalogs alike.
type workClaims struct {
	mu     sync.Mutex
	epochs uint64
	rows   map[[2]string]*workRow
}

type workRow struct {
	holder  string
	epoch   uint64
	expires time.Time
}

// ClaimWork grants (kind, key) when it is free, expired, released or holder's already.
func (d *DB) ClaimWork(ctx context.Context, kind, key, holder string, ttl time.Duration) (catalog.WorkClaim, error) {
	if err := ctx.Err(); err != nil {
		return catalog.WorkClaim{}, err
	}
	w := &d.work
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.rows == nil {
		w.rows = map[[2]string]*workRow{}
	}
	now := time.Now()
	r := w.rows[[2]string{kind, key}]
	if r != nil && r.holder != "" && r.holder != holder && now.Before(r.expires) {
		return catalog.WorkClaim{}, &catalog.HeldError{What: kind + " work of " + key, Holder: r.holder, Left: r.expires.Sub(now)}
	}
	w.epochs++
	r = &workRow{holder: holder, epoch: w.epochs, expires: now.Add(ttl)}
	w.rows[[2]string{kind, key}] = r
	return catalog.WorkClaim{Kind: kind, Key: key, Holder: holder, Epoch: r.epoch, Expires: r.expires}, nil
}

// current returns the row of (kind, key); a zero row (epoch 0) when it was never claimed. w.mu is held.
func (w *workClaims) current(kind, key string) *workRow {
	if r := w.rows[[2]string{kind, key}]; r != nil {
		return r
	}
	return &workRow{}
}

func fenced(c catalog.WorkClaim, cur uint64) *catalog.FencedError {
	return &catalog.FencedError{Stream: c.Kind + " work of " + c.Key, Epoch: c.Epoch, Current: cur}
}

// RenewWork extends c while its epoch is current and it was not released.
func (d *DB) RenewWork(ctx context.Context, c catalog.WorkClaim, ttl time.Duration) (catalog.WorkClaim, error) {
	if err := ctx.Err(); err != nil {
		return catalog.WorkClaim{}, err
	}
	w := &d.work
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.current(c.Kind, c.Key)
	if r.epoch != c.Epoch || r.holder == "" {
		return catalog.WorkClaim{}, fenced(c, r.epoch)
	}
	r.expires = time.Now().Add(ttl)
	c.Expires = r.expires
	return c, nil
}

// ReleaseWork ends c if it is current.
func (d *DB) ReleaseWork(ctx context.Context, c catalog.WorkClaim) error {
	w := &d.work
	w.mu.Lock()
	defer w.mu.Unlock()
	if r := w.current(c.Kind, c.Key); r.epoch == c.Epoch && r.holder != "" {
		r.holder, r.expires = "", time.Now()
	}
	return ctx.Err()
}

// SaveStateFenced saves under c. The claims' lock is held across the check and the commit, so
// no grant slips between them; the commit is its own (a Batch would wait for callers that wait
// for the lock).
func (d *DB) SaveStateFenced(ctx context.Context, c catalog.WorkClaim, component, key string, value []byte) error {
	w := &d.work
	w.mu.Lock()
	defer w.mu.Unlock()
	if r := w.current(c.Kind, c.Key); r.epoch != c.Epoch {
		return fenced(c, r.epoch)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return d.db.Update(putState(component, key, value))
}

// ListWork lists the live claims. Stream leases of this catalog are not tracked (lease.go).
func (d *DB) ListWork(ctx context.Context) ([]catalog.WorkClaim, error) {
	w := &d.work
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	var out []catalog.WorkClaim
	for k, r := range w.rows {
		if r.holder != "" && now.Before(r.expires) {
			out = append(out, catalog.WorkClaim{Kind: k[0], Key: k[1], Holder: r.holder, Epoch: r.epoch, Expires: r.expires})
		}
	}
	slices.SortFunc(out, func(a, b catalog.WorkClaim) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Key, b.Key))
	})
	return out, ctx.Err()
}
