package producer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvsd/kvsd/internal/putmedia"
)

// AckError is an ERROR acknowledgement.
type AckError struct {
	ID       int
	Code     string
	Timecode time.Time // the fragment's producer timestamp (zero if none)
}

func (e *AckError) Error() string {
	if e.Timecode.IsZero() {
		return fmt.Sprintf("ERROR %d %s", e.ID, e.Code)
	}
	return fmt.Sprintf("ERROR %d %s for the fragment at %s", e.ID, e.Code, e.Timecode.UTC().Format("2006-01-02T15:04:05.000Z"))
}

// Retriable reports whether resending the fragment may succeed: the PIC's
// rule (§3.7) retries 4000, 4003, 5000, 5001 and ids it does not know.
func (e *AckError) Retriable() bool {
	switch {
	case e.ID == 4000 || e.ID == 4003 || e.ID == 5000 || e.ID == 5001:
		return true
	case e.ID >= 4001 && e.ID <= 4012, e.ID >= 4500 && e.ID <= 4507:
		return false
	}
	return true
}

// errStale ends a connection that carries data but gets no ack.
var errStale = errors.New("no acknowledgement for the data sent")

// errRotate ends a connection at a fragment boundary to start a fresh one.
var errRotate = errors.New("connection rotated")

// session runs PutMedia connections one after the other until every
// fragment is confirmed and the builder is done.
type session struct {
	p       *Producer
	buf     *buffer
	track   Track
	persist bool // the stream keeps data: wait for PERSISTED, else RECEIVED
	conns   int64
}

// connLimitRetryMax caps the backoff after ConnectionLimitExceeded, so that the producer is
// back within a second of the stream freeing (a kvsd cluster's lease expiry after a node died).
const connLimitRetryMax = time.Second

// loop connects, and reconnects with backoff, until the buffer is done or
// ctx ends. It returns only fatal errors.
func (s *session) loop(ctx context.Context) error {
	cfg := &s.p.cfg
	delay := cfg.RetryMin
	idle := 0 // clean ends that confirmed nothing
	for !s.buf.done() && ctx.Err() == nil {
		before := s.buf.snapshot()
		err := s.connect(ctx)
		after := s.buf.snapshot()
		progressed := after.Persisted+after.Skipped > before.Persisted+before.Skipped
		if progressed {
			idle = 0
		}
		var f fatal
		switch {
		case errors.As(err, &f):
			return f.error
		case ctx.Err() != nil:
			return nil
		case err == nil || errors.Is(err, errRotate):
			if err == nil && !progressed && !s.buf.done() {
				// The body ended and the server answered everything, yet
				// something is unconfirmed: a server that does not ack.
				if idle++; idle >= 3 {
					return fmt.Errorf("the server ended 3 connections without confirming %d fragments", after.Pending)
				}
			}
			continue
		}
		s.buf.mu.Lock()
		s.buf.stats.Reconnects++
		s.buf.stats.LastError = err
		s.buf.event(Event{Kind: EventReconnect, Err: err})
		s.buf.unlock()
		cfg.Logger.Warn("PutMedia connection ended; reconnecting", "stream", cfg.StreamName, "err", err, "in", delay)
		if progressed {
			delay = cfg.RetryMin
		}
		wait := delay
		if ae, ok := errors.AsType[*putmedia.APIError](err); ok && ae.Code == "ConnectionLimitExceededException" {
			// The stream's previous connection is still open, or a kvsd cluster node that
			// died still holds its lease: it frees within seconds, and asking is cheap.
			wait = min(delay, connLimitRetryMax)
		}
		if sleepCtx(ctx, wait) != nil {
			return nil
		}
		delay = min(2*delay, cfg.RetryMax)
	}
	return nil
}

// connect runs one PutMedia connection: a fresh MKV header, then the
// fragments from the oldest unconfirmed one on. It returns nil when the
// body ended and the server answered everything.
func (s *session) connect(ctx context.Context) error {
	cfg := &s.p.cfg
	endpoint, err := s.p.dataEndpoint(ctx)
	if err != nil {
		return err
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return fatal{fmt.Errorf("credentials: %w", err)}
	}
	if s.conns > 0 && cfg.RetentionHours == nil {
		// The retention may have changed since the last connection: it says whether this
		// one's fragments get PERSISTED (a connection keeps the acks it started with). A
		// failed call changes nothing; PutMedia reports the real problem.
		if h, err := s.p.describe(ctx); err == nil {
			s.persist = h > 0
		}
	}
	s.conns++
	conn := s.conns
	s.buf.rewind()
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	uid, trackUID := randomUIDs()
	bd := &body{s: s, conn: conn, ctx: cctx, hdr: appendHeader(nil, s.track, uid, trackUID), opened: time.Now()}
	bd.lastAck.Store(time.Now().UnixNano())

	var wg sync.WaitGroup
	defer func() { cancel(nil); wg.Wait() }()
	wg.Go(func() { bd.watch(cctx, cancel) })

	var ackErr error
	client := &putmedia.Client{Endpoint: endpoint, Region: cfg.Region, Credentials: creds, HTTP: s.p.put}
	err = client.Put(cctx, putmedia.Request{StreamName: cfg.StreamName, Body: bd}, func(a putmedia.Ack) {
		bd.lastAck.Store(time.Now().UnixNano())
		switch a.EventType {
		case "RECEIVED":
			if s.persist {
				s.buf.markReceived(conn, int64(a.FragmentTimecode))
			} else {
				s.buf.confirm(conn, int64(a.FragmentTimecode))
			}
		case "PERSISTED":
			s.buf.confirm(conn, int64(a.FragmentTimecode))
		case "ERROR":
			ae := &AckError{ID: a.ErrorID, Code: a.ErrorCode}
			if a.FragmentTimecode > 0 {
				ae.Timecode = time.UnixMilli(int64(a.FragmentTimecode))
			}
			if !ae.Retriable() {
				s.buf.skip(conn, int64(a.FragmentTimecode), ae)
				cfg.Logger.Error("fragment refused; skipping it", "stream", cfg.StreamName, "err", ae)
			}
			if ackErr == nil {
				ackErr = ae
			}
			cancel(ae) // KVS ends the session after an ERROR
		}
	})
	cause := context.Cause(cctx)
	switch {
	case ackErr != nil:
		return ackErr
	case errors.Is(cause, errStale):
		return cause
	case err != nil:
		return classifyPut(err)
	case bd.rotated.Load():
		return errRotate
	}
	return nil
}

// classifyPut makes refusals that reconnecting cannot fix fatal.
func classifyPut(err error) error {
	var ae *putmedia.APIError
	if !errors.As(err, &ae) {
		return err
	}
	switch {
	case ae.Code == "ResourceNotFoundException":
		return fatal{fmt.Errorf("%w: %s", ErrStreamNotFound, ae.Message)}
	case authCodes[ae.Code]:
		return fatal{fmt.Errorf("PutMedia: %w", &AuthError{Code: ae.Code, Message: ae.Message})}
	case ae.Code == "InvalidArgumentException" || ae.Code == "InvalidEndpointException":
		return fatal{err}
	}
	// ConnectionLimitExceededException right after a reconnect: the old
	// session is still open on the server. Retried with backoff, as are
	// throttling and 5xx.
	return err
}

// body is one connection's request body: the header, then fragments as
// the builder makes them.
type body struct {
	s       *session
	conn    int64
	ctx     context.Context
	hdr     []byte
	opened  time.Time
	cur     *fragment
	off     int
	lastSeq int64
	rotated atomic.Bool

	lastAck   atomic.Int64 // UnixNano
	lastWrite atomic.Int64 // UnixNano of the last body bytes
}

func (bd *body) Read(p []byte) (int, error) {
	if len(bd.hdr) > 0 {
		n := copy(p, bd.hdr)
		bd.hdr = bd.hdr[n:]
		return n, nil
	}
	b := bd.s.buf
	for {
		b.mu.Lock()
		if bd.cur == nil {
			if time.Since(bd.opened) >= bd.s.p.cfg.ConnectionAge {
				bd.rotated.Store(true)
				b.unlock()
				return 0, io.EOF
			}
			if i := slices.IndexFunc(b.frags, func(f *fragment) bool { return f.seq > bd.lastSeq && !f.skipped }); i >= 0 {
				bd.cur, bd.off = b.frags[i], 0
				bd.cur.sentBy = bd.conn
			} else if b.final {
				b.unlock()
				return 0, io.EOF
			}
		}
		if f := bd.cur; f != nil {
			if bd.off < len(f.data) {
				n := copy(p, f.data[bd.off:])
				bd.off += n
				b.stats.BytesSent += int64(n)
				b.unlock()
				bd.lastWrite.Store(time.Now().UnixNano())
				return n, nil
			}
			if f.closed {
				bd.lastSeq, bd.cur = f.seq, nil
				b.event(fragEvent(EventFragmentSent, f, nil))
				b.unlock()
				continue
			}
		}
		ch := b.changed
		b.unlock()
		select {
		case <-ch:
		case <-bd.ctx.Done():
			return 0, context.Cause(bd.ctx)
		}
	}
}

// watch ends the connection when data went out but no ack came back for
// AckTimeout (a peer that vanished without closing).
func (bd *body) watch(ctx context.Context, cancel context.CancelCauseFunc) {
	timeout := bd.s.p.cfg.AckTimeout
	t := time.NewTicker(min(timeout/4, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			ack, wr := bd.lastAck.Load(), bd.lastWrite.Load()
			if wr > ack && time.Since(time.Unix(0, ack)) > timeout {
				cancel(errStale)
				return
			}
		}
	}
}
