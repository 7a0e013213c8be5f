package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/kvsd/kvsd/internal/catalog"
)

// Leases is what a Manager takes streams through when several kvsd nodes share one catalog
// (Config.Leases); catalog.Leases documents the semantics and every catalog implements it.
//
// A node holds one grant per stream, shared by the stream's sessions on the node (between
// them the last connection wins, as without leases), taken when the first of them opens and
// renewed every LeaseTTL/3 until the last of them ends, then released. Every fragment of
// those sessions commits under the grant's epoch (the epoch of fragstore.Store.WritePrepared):
// once another node has taken the stream (this node paused or cut off past its lease), the
// commit fails and the session ends with ERROR 5001 without acknowledging the fragment. A
// connection for a stream another node holds is refused with catalog.ErrLeaseHeld
// (ConnectionLimitExceeded).
//
// The holder silent for a while: the grant is renewed only while the stream is active on the
// node, that is while a body byte of one of its connections arrived within HolderSilence, or
// the node itself holds the reading back (its writes are slow). A producer that vanished
// without closing its connection (power cut, network gone) thus lets its stream go: the grant
// lapses LeaseTTL after its last renewal, between HolderSilence+LeaseTTL*2/3 and
// HolderSilence+LeaseTTL after the last byte (defaults: about 6.7 to 8 s), and the producer's
// next connection, to any node, takes the stream. A live producer sends every frame (tens of
// milliseconds), so it keeps its stream. If the silent connection speaks again before anyone
// took the stream, renewal resumes (a lapsed grant nobody replaced is still current);
// otherwise its next commit is fenced and it ends with ERROR 5001.
type Leases interface {
	AcquireLease(ctx context.Context, stream, holder string, ttl time.Duration) (catalog.Lease, error)
	RenewLease(ctx context.Context, l catalog.Lease, ttl time.Duration) (catalog.Lease, error)
	ReleaseLease(ctx context.Context, l catalog.Lease) error
}

var _ Leases = catalog.Catalog(nil)

// DefaultLeaseTTL is Config.LeaseTTL's default: a node that dies lets its streams go this
// long after its last renewal.
const DefaultLeaseTTL = 5 * time.Second

// DefaultHolderSilence is Config.HolderSilence's default: a few seconds, well above the gap
// between a live producer's frames and below kvssink's 60 s connection staleness.
const DefaultHolderSilence = 3 * time.Second

// streamLease is this node's grant of one stream.
type streamLease struct {
	lease catalog.Lease
	stop  chan struct{} // closed by endLease: the renewer returns
	done  chan struct{} // closed when the renewer has returned
	users int           // sessions using it; guarded by Manager.mu
	// active is the UnixNano of the stream's last activity on this node (a body byte, the node
	// holding the reading back, a new connection): the renewer renews only within
	// Config.HolderSilence of it.
	active atomic.Int64
}

// touch records activity of the stream at t.
func (ls *streamLease) touch(t time.Time) {
	if ls == nil {
		return
	}
	n := t.UnixNano()
	for {
		cur := ls.active.Load()
		if cur >= n || ls.active.CompareAndSwap(cur, n) {
			return
		}
	}
}

func (ls *streamLease) silentFor() time.Duration { return time.Since(time.Unix(0, ls.active.Load())) }

// leaseFor returns the stream's grant on this node, taken now if there is none, for a new
// session. Acquisitions are serialised per Manager, so connections of a stream arriving
// together share one grant.
func (m *Manager) leaseFor(ctx context.Context, name string) (*streamLease, error) {
	m.leaseMu.Lock()
	defer m.leaseMu.Unlock()
	m.mu.Lock()
	if ls := m.leases[name]; ls != nil {
		ls.users++
		ls.touch(time.Now())
		m.mu.Unlock()
		return ls, nil
	}
	m.mu.Unlock()
	l, err := m.cfg.Leases.AcquireLease(ctx, name, m.cfg.NodeID, m.cfg.LeaseTTL)
	if err != nil {
		return nil, fmt.Errorf("putmedia %s: %w", name, err)
	}
	ls := &streamLease{lease: l, stop: make(chan struct{}), done: make(chan struct{}), users: 1}
	ls.touch(time.Now())
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
	lapsing := false
	for {
		select {
		case <-ls.stop:
			return
		case <-tick.C:
			if silent := ls.silentFor(); silent >= m.cfg.HolderSilence {
				if !lapsing {
					log.Info("the stream's connections here are silent: letting its lease lapse, so that another node may take it", "silent", silent.Round(time.Millisecond))
					lapsing = true
				}
				continue
			}
			lapsing = false
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
