package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/catalog"
	"github.com/kvsd/kvsd/internal/catalog/postgres/pgtest"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/stream"
)

type note struct{ channel, payload string }

// listen runs db.Listen until the test ends; it returns the notifications and connections.
func listen(t *testing.T, db *DB) (<-chan note, <-chan struct{}) {
	t.Helper()
	notes, connected := make(chan note, 64), make(chan struct{}, 8)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- db.Listen(ctx, Listener{Retry: 10 * time.Millisecond,
			OnNotify:  func(ch, p string) { notes <- note{ch, p} },
			OnConnect: func() { connected <- struct{}{} }})
	}()
	t.Cleanup(func() {
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
	})
	<-connected
	return notes, connected
}

func next(t *testing.T, notes <-chan note) note {
	t.Helper()
	select {
	case n := <-notes:
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("no notification")
		return note{}
	}
}

// Another node's stream changes and fragment commits reach a listener as notifications, only
// once committed; a listener whose connection is cut reconnects and says so (its caller then
// polls for what it missed), and hears the next change.
func TestNotifications(t *testing.T) {
	url := pgtest.NewDatabase(t)
	a, b := open(t, url), open(t, url)
	notes, connected := listen(t, b)
	ctx := context.Background()

	st := &stream.Stream{Name: "cam", ARN: "arn:aws:kinesisvideo:us-east-1:123456789012:stream/cam/1", Version: "v1",
		Status: stream.StatusActive, CreationTime: time.UnixMilli(1700000000123), StorageTier: "HOT", RetentionHours: 24}
	require.NoError(t, a.CreateStream(ctx, st))
	require.Equal(t, note{StreamsChannel, "cam"}, next(t, notes))
	digest, err := b.StreamsDigest(ctx)
	require.NoError(t, err)

	_, err = a.UpdateStream(ctx, "cam", func(s *stream.Stream) error { s.RetentionHours = 0; return nil })
	require.NoError(t, err)
	require.Equal(t, note{StreamsChannel, "cam"}, next(t, notes))
	changed, err := b.StreamsDigest(ctx)
	require.NoError(t, err)
	require.NotEqual(t, digest, changed, "the digest polled behind the notifications moves too")

	k := catalog.Key{Name: "cam", CreatedMs: 1700000000123}
	f := func(seq uint64) catalog.Put {
		return catalog.Put{Key: k, Fragment: &fragment.Fragment{Seq: seq, Number: fragment.FormatNumber(k.CreatedMs, seq), ProducerTime: time.UnixMilli(1700000100000 + int64(seq)*1000),
			ServerTime: time.UnixMilli(1700000100000 + int64(seq)*1000), Duration: time.Second, HeaderID: "h1"},
			Location: catalog.Location{Segment: 1, Offset: int64(seq), Length: 10}, Header: []byte("hdr")}
	}
	require.NoError(t, a.PutFragments(ctx, []catalog.Put{f(1), f(2)}))
	n := next(t, notes)
	require.Equal(t, FragmentsChannel, n.channel)
	gotK, seq, err := ParseFragmentPayload(n.payload)
	require.NoError(t, err)
	require.Equal(t, k, gotK)
	require.Equal(t, uint64(2), seq, "one notification per stream and commit, with its last seq")

	require.Error(t, a.PutFragments(ctx, []catalog.Put{f(2)}), "a duplicate fails the commit")

	// Cut the listener's connection, as a database restart or a network fault would.
	_, err = a.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()`)
	require.NoError(t, err)
	select {
	case <-connected:
	case <-time.After(10 * time.Second):
		t.Fatal("the listener did not reconnect")
	}
	require.NoError(t, a.DeleteStream(ctx, "cam", nil))
	require.Equal(t, note{StreamsChannel, "cam"}, next(t, notes), "nothing from the failed commit came before")
}

func FuzzParseFragmentPayload(f *testing.F) {
	f.Add(fragmentPayload(catalog.Key{Name: "cam 1", CreatedMs: -5}, 7))
	f.Add("1 2")
	f.Fuzz(func(t *testing.T, p string) {
		k, seq, err := ParseFragmentPayload(p)
		if err == nil {
			require.Equal(t, p, fragmentPayload(k, seq))
		}
	})
}

// LeaseHolder names the live holder of a lease, and nobody once it was released or expired.
func TestLeaseHolder(t *testing.T) {
	db := open(t, pgtest.NewDatabase(t))
	ctx := context.Background()
	h, err := db.LeaseHolder(ctx, "cam")
	require.NoError(t, err)
	require.Empty(t, h, "never taken")
	l, err := db.AcquireLease(ctx, "cam", "node-a http://10.0.0.5:4580", time.Minute)
	require.NoError(t, err)
	h, err = db.LeaseHolder(ctx, "cam")
	require.NoError(t, err)
	require.Equal(t, "node-a http://10.0.0.5:4580", h)
	require.NoError(t, db.ReleaseLease(ctx, l))
	h, err = db.LeaseHolder(ctx, "cam")
	require.NoError(t, err)
	require.Empty(t, h, "released")
}
