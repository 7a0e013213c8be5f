package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kvsd/kvsd/internal/catalog"
)

// Leases is what a Manager takes streams through when several kvsd nodes share one catalog
// (Config.Leases); catalog.Leases documents the semantics and every catalog implements it.
//
// A node holds one grant per stream, shared by the stream's sessions on the node (between
// them the last connection wins, as without leases), taken when the first of them opens and
// renewed every LeaseTTL/3 until the last of them ends, then released. Every fragment of
// those sessions commits under the grant's epoch (fragstore.Store.WriteFenced): once another
// node has taken the stream (this node paused or cut off past its lease), the commit fails and
// the session ends with ERROR 5001 without acknowledging the fragment. A connection for a
// stream another node holds is refused with catalog.ErrLeaseHeld (ConnectionLimitExceeded).
type Leases interface {
	AcquireLease(ctx context.Context, stream, holder string, ttl time.Duration) (catalog.Lease, error)
	RenewLease(ctx context.Context, l catalog.Lease, ttl time.Duration) (catalog.Lease, error)
	ReleaseLease(ctx context.Context, l catalog.Lease) error
}

var _ Leases = catalog.Catalog(nil)

// DefaultLeaseTTL is Config.LeaseTTL's default: a node that dies lets its streams go this
// long after its last renewal.
const DefaultLeaseTTL = 5 * time.Second

// streamLease is this node's grant of one stream.
type streamLease struct {
	lease catalog.Lease
	stop  chan struct{} // closed by endLease: the renewer returns
	done  chan struct{} // closed when the renewer has returned
	users int           // sessions using it; guarded by Manager.mu
}

// leaseFor returns the stream's grant on this node, taken now if there is none, for a new
// session. Acquisitions are serialised per Manager, so connections of a stream arriving
// together share one grant.
func (m *Manager) leaseFor(ctx context.Context, name string) (*streamLease, error) {
	m.leaseMu.Lock()
	defer m.leaseMu.Unlock()
	m.mu.Lock()
	if ls := m.leases[name]; ls != nil {
		ls.users++
		m.mu.Unlock()
		return ls, nil
	}
	m.mu.Unlock()
	l, err := m.cfg.Leases.AcquireLease(ctx, name, m.cfg.NodeID, m.cfg.LeaseTTL)
	if err != nil {
		return nil, fmt.Errorf("putmedia %s: %w", name, err)
	}
	ls := &streamLease{lease: l, stop: make(chan struct{}), done: make(chan struct{}), users: 1}
	m.mu.Lock()
	m.leases[name] = ls
	m.mu.Unlock()
	go m.renew(ls)
	return ls, nil
}

// dropLease is release's part for leases, with m.mu held: it returns ls when its last user
// has gone, for endLease.
func (m *Manager) dropLease(ls *streamLease) *streamLease {
	if ls == nil {
		return nil
	}
	if ls.users--; ls.users > 0 {
		return nil
	}
	if m.leases[ls.lease.Stream] == ls {
		delete(m.leases, ls.lease.Stream)
	}
	return ls
}

// endLease stops ls's renewer and releases the grant, so that the producer's next connection,
// to whichever node, finds the stream free at once. It runs before the session's last ack.
func (m *Manager) endLease(ls *streamLease) {
	close(ls.stop)
	<-ls.done // no renewal may land after the release
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.LeaseTTL)
	defer cancel()
	if err := m.cfg.Leases.ReleaseLease(ctx, ls.lease); err != nil {
		m.cfg.Logger.Warn("releasing the stream's lease; it expires by itself", "stream", ls.lease.Stream, "err", err)
	}
}

// renew keeps ls alive every LeaseTTL/3 until endLease stops it. A renewal that finds the
// stream taken stops renewing: the sessions' next commits fail on their own (fenced), and the
// next connection here acquires again (refused while the other node holds the stream). Other
// failures (the database unreachable) are retried at the next tick; commits stay fenced by the
// epoch meanwhile, so nothing is acknowledged twice whatever happens.
func (m *Manager) renew(ls *streamLease) {
	defer close(ls.done)
	ttl := m.cfg.LeaseTTL
	tick := time.NewTicker(ttl / 3)
	defer tick.Stop()
	log := m.cfg.Logger.With("stream", ls.lease.Stream, "epoch", ls.lease.Epoch)
	for {
		select {
		case <-ls.stop:
			return
		case <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), ttl/3)
			_, err := m.cfg.Leases.RenewLease(ctx, ls.lease, ttl)
			cancel()
			switch {
			case errors.Is(err, catalog.ErrFenced):
				log.Warn("another node took the stream: its fragments here are no longer acknowledged", "err", err)
				m.mu.Lock()
				if m.leases[ls.lease.Stream] == ls {
					delete(m.leases, ls.lease.Stream)
				}
				m.mu.Unlock()
				return
			case err != nil:
				log.Warn("renewing the stream's lease; retrying", "err", err)
			}
		}
	}
}
