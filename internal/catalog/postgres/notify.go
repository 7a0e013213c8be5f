package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kvsd/kvsd/internal/catalog"
)

// Nodes sharing a database tell each other what changed with NOTIFY, delivered to every
// listening session:
//
//   - StreamsChannel: a stream record was created, updated or deleted; payload: its name.
//     Sent in the transaction of the change, so delivered only when it commits.
//   - FragmentsChannel: a stream's fragments up to a sequence were committed; payload:
//     "<createdMs> <seq> <name>", one per stream and commit. Sent right after the commit, in
//     a transaction of its own (notifyFragments says why).
//
// Notifications are wake-ups, never the truth: a listener that loses its connection misses
// some, so Listen reports every (re)connection and callers poll behind them.
const (
	StreamsChannel   = "kvsd_streams"
	FragmentsChannel = "kvsd_fragments"
)

func notifyStream(ctx context.Context, tx pgx.Tx, name string) error {
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, StreamsChannel, name); err != nil {
		return fmt.Errorf("notify change of stream %s: %w", name, err)
	}
	return nil
}

func fragmentPayload(k catalog.Key, seq uint64) string {
	return strconv.FormatInt(k.CreatedMs, 10) + " " + strconv.FormatUint(seq, 10) + " " + k.Name
}

// ParseFragmentPayload reads a FragmentsChannel payload.
func ParseFragmentPayload(p string) (catalog.Key, uint64, error) {
	ms, rest, ok1 := strings.Cut(p, " ")
	sq, name, ok2 := strings.Cut(rest, " ")
	created, err1 := strconv.ParseInt(ms, 10, 64)
	seq, err2 := strconv.ParseUint(sq, 10, 64)
	// Only the form fragmentPayload writes: "00" or "+5" is not a number a node sent.
	canonical := err1 == nil && err2 == nil && strconv.FormatInt(created, 10) == ms && strconv.FormatUint(seq, 10) == sq
	if !ok1 || !ok2 || !canonical || name == "" {
		return catalog.Key{}, 0, fmt.Errorf("fragment notification %.80q is not <createdMs> <seq> <name>", p)
	}
	return catalog.Key{Name: name, CreatedMs: created}, seq, nil
}

// Listener receives the notifications of other nodes (and this one's) on a connection of its
// own, outside the pool: a LISTEN holds its session.
type Listener struct {
	// OnNotify is called, on Listen's goroutine, with each notification.
	OnNotify func(channel, payload string)
	// OnConnect is called after every (re)connection: notifications sent while the listener
	// was not connected are lost, so whatever they would have woken must look again.
	OnConnect func()
	// Retry is the pause after a lost connection; 0: one second.
	Retry time.Duration
}

// Listen listens on StreamsChannel and FragmentsChannel until ctx ends, reconnecting after
// any failure; it returns ctx's error.
func (d *DB) Listen(ctx context.Context, l Listener) error {
	retry := l.Retry
	if retry <= 0 {
		retry = time.Second
	}
	for {
		err := d.listenOnce(ctx, l)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.log.Warn("catalog notifications: connection lost; polling covers the gap until it is back", "err", err, "retry", retry)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(retry):
		}
	}
}

func (d *DB) listenOnce(ctx context.Context, l Listener) error {
	conn, err := pgx.ConnectConfig(ctx, d.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	for _, ch := range []string{StreamsChannel, FragmentsChannel} {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return err
		}
	}
	if l.OnConnect != nil {
		l.OnConnect()
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return ctx.Err()
			}
			return err
		}
		if l.OnNotify != nil {
			l.OnNotify(n.Channel, n.Payload)
		}
	}
}

// StreamsDigest is a digest of every stream record: it changes whenever one is created,
// updated or deleted. Nodes poll it behind the notifications.
func (d *DB) StreamsDigest(ctx context.Context) (string, error) {
	var sum string
	err := d.pool.QueryRow(ctx, `SELECT md5(coalesce(string_agg(name || ' ' || record::text, E'\n' ORDER BY name), '')) FROM streams`).Scan(&sum)
	if err != nil {
		return "", fmt.Errorf("digest of stream records: %w", err)
	}
	return sum, nil
}
