package ingest

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/catalog"
	"github.com/kvsd/kvsd/internal/catalog/postgres"
	"github.com/kvsd/kvsd/internal/catalog/postgres/pgtest"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/fragstore/s3media"
	"github.com/kvsd/kvsd/internal/objstore/s3test"
	"github.com/kvsd/kvsd/internal/stream"
)

// clusterNode is one kvsd of a cluster: its own catalog connection, store and Manager over
// the shared PostgreSQL and bucket.
type clusterNode struct {
	db  *postgres.DB
	svc *stream.Service
	st  *fragstore.Store
	m   *Manager
}

func newClusterNode(t *testing.T, pgURL string, s3 *s3test.Server, id string) *clusterNode {
	t.Helper()
	db, err := postgres.Open(context.Background(), postgres.Config{URL: pgURL})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	media, err := s3media.Open(s3media.Config{Client: s3.Client(), Bucket: "media"})
	require.NoError(t, err)
	st, err := fragstore.Open(fragstore.Config{Media: media, Index: db})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	n := &clusterNode{db: db, svc: &stream.Service{Store: db, Region: "us-east-1", AccountID: "111122223333"}, st: st}
	n.m = NewManager(Config{Streams: n.svc, Store: st, Leases: db, NodeID: id, LeaseTTL: time.Hour})
	return n
}

func (n *clusterNode) open(t *testing.T) (*Session, error) {
	t.Helper()
	s, err := n.m.Open(context.Background(), Request{StreamName: testStreamName, TimecodeType: Absolute})
	if err == nil {
		t.Cleanup(s.Close)
	}
	return s, err
}

// run runs s over a pipe, acks to a channel.
func run(t *testing.T, s *Session) *live {
	pr, pw := io.Pipe()
	l := &live{t: t, pw: pw, acks: make(chan Ack, 1000), done: make(chan error, 1)}
	go func() {
		l.done <- s.Run(context.Background(), pr, func(a Ack) error { l.acks <- a; return nil })
	}()
	t.Cleanup(func() { pw.Close() })
	return l
}

func newCluster(t *testing.T) (a, b *clusterNode) {
	pgURL := pgtest.NewDatabase(t)
	s3 := s3test.Start(t)
	s3.CreateBucket(t, "media")
	a, b = newClusterNode(t, pgURL, s3, "node-a"), newClusterNode(t, pgURL, s3, "node-b")
	retention := 24
	_, err := a.svc.Create(context.Background(), stream.CreateInput{Name: testStreamName, RetentionHours: &retention})
	require.NoError(t, err)
	return a, b
}

// One node ingests a stream at a time: a connection to another node is refused with
// ErrLeaseHeld (ConnectionLimitExceeded) while the first streams, and admitted as soon as the
// first connection has ended.
func TestLeaseOneNodePerStream(t *testing.T) {
	a, b := newCluster(t)
	sa, err := a.open(t)
	require.NoError(t, err)
	la := run(t, sa)
	la.write(cat(header(1, 1), gop(1000, 2), gop(3000, 2)))
	require.Equal(t, EventBuffering, la.next().EventType)

	_, err = b.open(t)
	require.ErrorIs(t, err, catalog.ErrLeaseHeld)

	// A second connection on the same node shares the node's grant: the last one wins, as on
	// a single node.
	sa2, err := a.open(t)
	require.NoError(t, err)
	require.Same(t, sa.lease, sa2.lease)
	sa2.Close()

	require.NoError(t, la.pw.Close())
	require.NoError(t, la.wait())
	sb, err := b.open(t)
	require.NoError(t, err, "the stream is free once a's connection ended")
	lb := run(t, sb)
	lb.write(cat(header(1, 1), gop(5000, 2), gop(7000, 2)))
	require.NoError(t, lb.pw.Close())
	require.NoError(t, lb.wait())
	require.Greater(t, sb.lease.lease.Epoch, sa.lease.lease.Epoch)

	// Both nodes' fragments are stored, in order, and every node reads them.
	k := fragstore.KeyOf(sa.st)
	for _, n := range []*clusterNode{a, b} {
		frags, err := n.st.After(context.Background(), k, 0, 100)
		require.NoError(t, err)
		require.Len(t, frags, 4)
	}
}

// A node paused past its lease: another node takes the stream over; the first node's next
// fragment reaches neither the index nor a PERSISTED ack, and its session ends with ERROR 5001
// while the other node's fragments are persisted.
func TestLeaseLostFencesTheOldNode(t *testing.T) {
	a, b := newCluster(t)
	sa, err := a.open(t)
	require.NoError(t, err)
	la := run(t, sa)
	la.write(cat(header(1, 1), gop(1000, 2), gop(3000, 2))) // fragment 1 complete, 2 open
	var acks []Ack
	for len(acks) < 3 || acks[len(acks)-1].EventType != EventPersisted {
		acks = append(acks, la.next())
	}

	// a's lease runs out on the database's clock while a is paused; b takes the stream.
	_, err = a.db.Pool().Exec(context.Background(), `UPDATE stream_leases SET expires_at = now() - interval '1 second'`)
	require.NoError(t, err)
	sb, err := b.open(t)
	require.NoError(t, err)
	lb := run(t, sb)
	lb.write(cat(header(2, 1), gop(9000, 2), gop(11000, 2)))

	// a resumes: fragment 2 completes, and its commit is refused.
	la.write(gop(5000, 2))
	tail := la.untilError()
	last := tail[len(tail)-1]
	require.Equal(t, errArchival, last.ErrorID)
	for _, a := range tail {
		require.NotEqual(t, EventPersisted, a.EventType, "nothing of a's after the takeover is acknowledged")
	}
	require.ErrorIs(t, la.wait(), catalog.ErrFenced)

	require.NoError(t, lb.pw.Close())
	require.NoError(t, lb.wait())
	frags, err := b.st.After(context.Background(), fragstore.KeyOf(sa.st), 0, 100)
	require.NoError(t, err)
	var got []uint64
	for _, f := range frags {
		got = append(got, f.Timecode)
	}
	require.Equal(t, []uint64{1000, 9000, 11000}, got, "a's fragment 1, then b's; never a's fragment 2")
}

// eventually polls cond every 10 ms for up to 5 s: the renewer announces nothing, and what it
// does shows only in the database.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within 5 s: %s", what)
		}
	}
}

// The renewer: while a connection streams, its node's grant is extended every LeaseTTL/3 on
// the database's clock; when another node has taken the stream the renewer lets the grant go,
// so the node's next connection asks again and is refused.
func TestLeaseRenewal(t *testing.T) {
	a, b := newCluster(t)
	a.m.cfg.LeaseTTL = 300 * time.Millisecond
	sa, err := a.open(t)
	require.NoError(t, err)
	expires := func() (at time.Time, epoch int64) {
		require.NoError(t, a.db.Pool().QueryRow(context.Background(),
			`SELECT expires_at, epoch FROM stream_leases WHERE stream = $1`, testStreamName).Scan(&at, &epoch))
		return at, epoch
	}
	first, _ := expires()
	eventually(t, "a renewal", func() bool { at, _ := expires(); return at.After(first) })

	// b takes the stream over (a's grant made to lapse on the database's clock); a's renewer
	// finds its epoch fenced and drops the grant.
	_, err = a.db.Pool().Exec(context.Background(), `UPDATE stream_leases SET expires_at = now() - interval '1 second'`)
	require.NoError(t, err)
	sb, err := b.open(t)
	require.NoError(t, err)
	eventually(t, "a's renewer dropping the grant", func() bool {
		a.m.mu.Lock()
		defer a.m.mu.Unlock()
		return a.m.leases[testStreamName] == nil
	})
	_, err = a.open(t)
	require.ErrorIs(t, err, catalog.ErrLeaseHeld)
	_, epoch := expires()
	require.Equal(t, int64(sb.lease.lease.Epoch), epoch)
	sa.Close()
	sb.Close()
	var holder string
	require.NoError(t, a.db.Pool().QueryRow(context.Background(), `SELECT holder FROM stream_leases WHERE stream = $1`, testStreamName).Scan(&holder))
	require.Empty(t, holder, "b's grant was released when its session closed")
}

// One renewer renews all of a node's grants, in one request per tick: a grant another node
// took is dropped while the node's other grant in the same request goes on being renewed, and
// the renewer stops once the node holds no grant.
func TestLeaseRenewerRenewsAllTogether(t *testing.T) {
	ctx := context.Background()
	a, b := newCluster(t)
	a.m.cfg.LeaseTTL, a.m.cfg.HolderSilence = 300*time.Millisecond, time.Hour
	retention := 24
	_, err := a.svc.Create(ctx, stream.CreateInput{Name: "cam_other", RetentionHours: &retention})
	require.NoError(t, err)
	s1, err := a.open(t)
	require.NoError(t, err)
	s2, err := a.m.Open(ctx, Request{StreamName: "cam_other", TimecodeType: Absolute})
	require.NoError(t, err)
	t.Cleanup(s2.Close)
	a.m.mu.Lock()
	r := a.m.renewer
	a.m.mu.Unlock()
	require.NotNil(t, r)

	expires := func(name string) (at time.Time) {
		require.NoError(t, a.db.Pool().QueryRow(ctx, `SELECT expires_at FROM stream_leases WHERE stream = $1`, name).Scan(&at))
		return at
	}
	_, err = a.db.Pool().Exec(ctx, `UPDATE stream_leases SET expires_at = now() - interval '1 second' WHERE stream = $1`, testStreamName)
	require.NoError(t, err)
	sb, err := b.open(t)
	require.NoError(t, err)
	eventually(t, "a's renewer dropping the grant b took", func() bool {
		a.m.mu.Lock()
		defer a.m.mu.Unlock()
		return a.m.leases[testStreamName] == nil
	})
	after := expires("cam_other")
	eventually(t, "a's other grant renewed on", func() bool { return expires("cam_other").After(after) })

	s1.Close()
	a.m.mu.Lock()
	require.Same(t, r, a.m.renewer, "one renewer for all of the node's grants")
	require.False(t, r.stopped, "a grant is still held")
	a.m.mu.Unlock()
	s2.Close()
	a.m.mu.Lock()
	require.True(t, r.stopped, "the node holds no grant")
	a.m.mu.Unlock()
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the renewer did not return")
	}
	sb.Close()
}

// The holder silent for a while: a connection that stops sending (its producer vanished
// without closing it) stops its node renewing the stream's lease, so that another node's
// connection takes the stream once the lease lapsed; the silent connection's next fragment is
// then fenced (ERROR 5001, no PERSISTED). A connection that keeps sending keeps its stream.
func TestLeaseSilentHolderLetsGo(t *testing.T) {
	a, b := newCluster(t)
	a.m.cfg.LeaseTTL, a.m.cfg.HolderSilence = 300*time.Millisecond, 200*time.Millisecond
	sa, err := a.open(t)
	require.NoError(t, err)
	la := run(t, sa)
	la.write(cat(header(1, 1), gop(1000, 2), gop(3000, 2))) // fragment 1 complete, 2 open
	var acks []Ack
	for len(acks) < 3 || acks[len(acks)-1].EventType != EventPersisted {
		acks = append(acks, la.next())
	}

	// While a keeps sending, b is refused, even long past a's ttl: a's grant is renewed.
	expires := func() (at time.Time) {
		require.NoError(t, a.db.Pool().QueryRow(context.Background(),
			`SELECT expires_at FROM stream_leases WHERE stream = $1`, testStreamName).Scan(&at))
		return at
	}
	first, rel := expires(), int16(100)
	eventually(t, "a's grant renewed past twice its ttl while it sends", func() bool {
		la.write(block(1, rel, 100)) // a frame every poll (10 ms)
		rel += 10
		_, err := b.open(t)
		require.ErrorIs(t, err, catalog.ErrLeaseHeld)
		return expires().After(first.Add(2 * a.m.cfg.LeaseTTL))
	})

	// a goes silent: within silence + ttl (+ the renewer's tick and the poll) b gets it.
	var sb *Session
	eventually(t, "b taking the silent holder's stream", func() bool {
		s, err := b.open(t)
		if err != nil {
			require.ErrorIs(t, err, catalog.ErrLeaseHeld)
			return false
		}
		sb = s
		return true
	})
	lb := run(t, sb)
	lb.write(cat(header(2, 1), gop(9000, 2), gop(11000, 2)))

	// a speaks again: fragment 2 completes and its commit is refused.
	la.write(gop(5000, 2))
	tail := la.untilError()
	require.Equal(t, errArchival, tail[len(tail)-1].ErrorID)
	for _, ack := range tail {
		require.NotEqual(t, EventPersisted, ack.EventType)
	}
	require.NoError(t, lb.pw.Close())
	require.NoError(t, lb.wait())
}
