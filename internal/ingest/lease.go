package ingest

import (
	"context"
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
// renewed every LeaseTTL/3 until the last of them ends, then released. One goroutine per
// Manager renews all of the node's grants together, in one catalog request per tick
// (catalog.Leases.RenewLeases), not one per stream. Every fragment of those sessions commits
// under the grant's epoch (the epoch of fragstore.Store.WritePrepared): once another node has
// taken the stream (this node paused or cut off past its lease), the commit fails and the
// session ends with ERROR 5001 without acknowledging the fragment. A connection for a stream
// another node holds is refused with catalog.ErrLeaseHeld (ConnectionLimitExceeded).
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
	RenewLeases(ctx context.Context, ls []catalog.Lease, ttl time.Duration) ([]catalog.Lease, []*catalog.FencedError, error)
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
	users int // sessions using it; guarded by Manager.mu
	// active is the UnixNano of the stream's last activity on this node (a body byte, the node
	// holding the reading back, a new connection): the renewer renews only within
	// Config.HolderSilence of it.
	active atomic.Int64
	// lapsing is set while the renewer lets the grant lapse for the silence, so that it says
	// so once per silence.
	lapsing atomic.Bool
}

// renewer is the Manager's one goroutine renewing all of its grants (renew). It runs while the
// Manager holds any: leaseFor starts it with the first, and it is stopped when the last is
// gone (dropLease, or the renewer itself finding the last one lost), so Shutdown, which ends
// every session, ends it too.
type renewer struct {
	stop    chan struct{} // closed to stop it
	stopped bool          // stop is closed; guarded by Manager.mu
	done    chan struct{} // closed when it has returned
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
	ls := &streamLease{lease: l, users: 1}
	ls.touch(time.Now())
	m.mu.Lock()
	m.leases[name] = ls
	if r := m.renewer; r == nil || r.stopped {
		r = &renewer{stop: make(chan struct{}), done: make(chan struct{})}
		m.renewer = r
		go m.renew(r)
	}
	m.mu.Unlock()
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
		m.stopIdleRenewer()
	}
	return ls
}

// stopIdleRenewer stops the renewer once the Manager holds no grant, with m.mu held.
func (m *Manager) stopIdleRenewer() {
	if r := m.renewer; r != nil && !r.stopped && len(m.leases) == 0 {
		close(r.stop)
		r.stopped = true
	}
}

// endLease releases the grant, so that the producer's next connection, to whichever node,
// finds the stream free at once. It runs before the session's last ack. dropLease took ls out
// of m.leases, so the renewer does not renew it again; a renewal it sent before may still be
// in flight, but the catalog refuses a renewal that lands after the release (a released grant
// is not renewed, catalog.Leases; PostgreSQL's UPDATE skips rows whose holder is empty), so
// none extends the grant past it.
func (m *Manager) endLease(ls *streamLease) {
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.LeaseTTL)
	defer cancel()
	if err := m.cfg.Leases.ReleaseLease(ctx, ls.lease); err != nil {
		m.cfg.Logger.Warn("releasing the stream's lease; it expires by itself", "stream", ls.lease.Stream, "err", err)
	}
}

// renew renews the Manager's grants every LeaseTTL/3, all of them in one RenewLeases, until r
// is stopped. A grant found lost (another node took the stream) is no longer renewed: its
// sessions' next commits fail on their own (fenced), and the next connection here acquires
// again (refused while the other node holds the stream). Other failures (the database
// unreachable) are retried at the next tick; commits stay fenced by the epoch meanwhile, so
// nothing is acknowledged twice whatever happens.
func (m *Manager) renew(r *renewer) {
	defer close(r.done)
	ttl := m.cfg.LeaseTTL
	tick := time.NewTicker(ttl / 3)
	defer tick.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-tick.C:
			m.renewAll(r, ttl)
		}
	}
}

// renewAll is one tick of renew: it renews the grants whose streams are active on this node
// and lets the silent ones lapse.
func (m *Manager) renewAll(r *renewer, ttl time.Duration) {
	m.mu.Lock()
	held := make([]*streamLease, 0, len(m.leases))
	for _, ls := range m.leases {
		held = append(held, ls)
	}
	m.mu.Unlock()
	due := make(map[string]*streamLease, len(held))
	grants := make([]catalog.Lease, 0, len(held))
	for _, ls := range held {
		if silent := ls.silentFor(); silent >= m.cfg.HolderSilence {
			if !ls.lapsing.Swap(true) {
				m.cfg.Logger.Info("the stream's connections here are silent: letting its lease lapse, so that another node may take it",
					"stream", ls.lease.Stream, "epoch", ls.lease.Epoch, "silent", silent.Round(time.Millisecond))
			}
			continue
		}
		ls.lapsing.Store(false)
		due[ls.lease.Stream] = ls
		grants = append(grants, ls.lease)
	}
	if len(grants) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), ttl/3)
	_, lost, err := m.cfg.Leases.RenewLeases(ctx, grants, ttl)
	cancel()
	if err != nil {
		select {
		case <-r.stop: // the grants are all released meanwhile: nothing to retry
		default:
			m.cfg.Logger.Warn("renewing the node's stream leases; retrying", "streams", len(grants), "err", err)
		}
		return
	}
	var taken []*catalog.FencedError
	m.mu.Lock()
	for _, fe := range lost {
		// A grant no longer in m.leases was released meanwhile (endLease), which refused the
		// renewal: not taken by anyone.
		if ls := due[fe.Stream]; ls != nil && m.leases[fe.Stream] == ls {
			delete(m.leases, fe.Stream)
			taken = append(taken, fe)
		}
	}
	m.stopIdleRenewer()
	m.mu.Unlock()
	for _, fe := range taken {
		m.cfg.Logger.Warn("another node took the stream: its fragments here are no longer acknowledged",
			"stream", fe.Stream, "epoch", fe.Epoch, "err", fe)
	}
}
