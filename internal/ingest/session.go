package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvsd/kvsd/internal/bufpool"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/stream"
)

// maxWriting is how many fragments the writer may hold: the one it writes and those queued
// for it, which it takes without waiting for the session loop.
const maxWriting = 3

// maxBacklog is how many more received fragments may wait before the session stops reading
// the body. A couple absorb an fsync hiccup; more would only hide a slow disk and hold memory
// (each is hundreds of KB) that TCP back-pressure holds better, in the producer.
const maxBacklog = 2

// maxCommitting is how many fragments whose media is written may wait for their index commit
// before the writer gets no more: enough to keep the writer busy while a commit runs, which
// with one busy stream takes about as long as writing two or three fragments' media.
const maxCommitting = 4

// Session is one PutMedia connection. Run it once, then Close it.
type Session struct {
	m   *Manager
	st  *stream.Stream
	key fragstore.Key
	// persistAcks: the stream kept data when the connection opened, so its producer expects
	// PERSISTED acks. They keep coming if retention drops to 0 (the fragments are then not
	// stored: kept for 0 hours), and start coming when it rises from 0.
	persistAcks bool
	log         *slog.Logger
	frag        *fragmenter
	rd          *mkv.Reader // the parser's; read by Run once the parser has stopped

	state *streamState
	lease *streamLease // the stream's grant on this node (Config.Leases); nil without leases
	prev  *Session     // the connection this one superseded: its fragments are stored first
	// The stream as the writer last read it, and Streams' change count before that read
	// (current). Only the writer goroutine uses them.
	seen        *stream.Stream
	seenChanges uint64
	// Guarded by m.mu.
	streaming bool // the session has started a fragment
	resuming  bool // its body continues an earlier connection's document

	superseded chan struct{} // closed when a newer connection of the stream opens
	stopped    chan struct{} // closed by stop
	stopOnce   sync.Once
	stopWhy    int           // the ERROR id stop was given (endSuperseded: none); set before stopped is closed
	released   chan struct{} // closed once the session has stopped writing
	relOnce    sync.Once
	kept       bool  // release held the fragment in flight for the producer's next connection
	dropped    *held // the fragment in flight, which release did not keep
}

// endSuperseded stops a session without an ERROR ack (errSuperseded).
const endSuperseded = 0

// stop asks the session to end with ERROR why: errStreamNotActive at once; errInternal, or
// endSuperseded without an ERROR, once the fragments received so far are persisted.
func (s *Session) stop(why int) {
	s.stopOnce.Do(func() {
		s.stopWhy = why
		close(s.stopped)
	})
}

// Stream returns the stream the session writes to.
func (s *Session) Stream() *stream.Stream { return s.st }

// Close releases the session. It is safe to call after Run and more than once.
func (s *Session) Close() { s.release(nil) }

// release tells the Manager the session has stopped, handing it the fragment left in flight.
func (s *Session) release(h *held) {
	s.relOnce.Do(func() {
		var lease *streamLease
		s.dropped, lease = s.m.release(s, h)
		if lease != nil {
			s.m.endLease(lease)
		}
		s.kept = h != nil && s.dropped == nil
		close(s.released)
	})
}

// Run reads the body until it ends and sends acks through emit, which is only ever called from
// the goroutine running Run. It returns nil once the body ended and every fragment was
// acknowledged; otherwise the reason the session ended early: the error an ERROR ack reported,
// the idle timeout, ctx's error, or emit's.
//
// When Run stops before the body ended it closes body if body is an io.Closer, which must make
// a pending Read return (kvsapi's body sets a read deadline); otherwise it waits for that Read.
func (s *Session) Run(ctx context.Context, body io.Reader, emit func(Ack) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	in := &meter{r: body, lease: s.lease}
	in.touch()
	s.rd = mkv.NewReader(in, mkv.Limits{MaxClusterSize: s.m.cfg.MaxFragmentSize})
	events, stop := make(chan input), make(chan struct{})
	wg.Go(func() { s.parse(ctx, in, events, stop) })
	w := &writer{work: make(chan *complete, maxWriting), done: make(chan written, maxWriting)}
	wg.Go(func() { s.write(ctx, w) })

	l := &loop{s: s, emit: emit, in: in, w: w, resumed: time.Now(), persistAcks: s.persistAcks}
	if s.prev != nil {
		l.prev = s.prev.released
	}
	err := l.run(ctx, events)
	s.m.queued.Add(-l.held) // fragments dropped unpersisted

	// Stop and release before the final ERROR ack: the producer reconnects the moment it reads
	// one, and its new connection continues from what this one left.
	close(stop)
	if c, ok := body.(io.Closer); ok && err != nil { // after a clean end the parser is done
		_ = c.Close()
	}
	cancel()
	close(w.work)
	wg.Wait()
	s.release(s.leftover(err, l.parsedTo))
	s.report(err)
	if ae, ok := errors.AsType[*ackError](err); ok && ae.id != endSuperseded {
		s.m.metrics.errors.WithLabelValues(errorCodes[ae.id]).Inc()
		_ = emit(ae.ack()) // the producer may be gone already; the error is returned either way
	}
	return err
}

// leftover is the fragment in flight when the session ended, if the producer may send its
// rest on its next connection: one that broke or went quiet, or was taken over. An ERROR ack
// the producer reads makes it resend or skip the fragment instead.
func (s *Session) leftover(err error, parsedTo int64) *held {
	b := s.frag.cur
	ae, isAck := errors.AsType[*ackError](err)
	if b == nil || isAck && ae.id != errStreamRead && ae.id != endSuperseded {
		return nil
	}
	h := &held{b: b, cut: s.rd.Cut(parsedTo)}
	if h.cut == nil && b.media == nil {
		return nil // the Reader is past the Cluster, the loop never saw its end: nothing to resume
	}
	return h
}

// input is one Reader result handed from the parser to the session loop.
type input struct {
	ev         mkv.Event     // Raw is the parser's own copy
	at         time.Time     // when it was read: a cluster's server timestamp
	end        int64         // the body offset the event ends at
	err        error         // io.EOF when the body ended cleanly
	readFailed bool          // err came from reading the body, not from its content
	resume     *continuation // the first input of a body without a header
}

// parse runs the Reader on the body and hands every event to the loop. It stops after the
// first error or when stop is closed. A body that does not start with an EBML header
// continues the stream's document; its first input says how.
func (s *Session) parse(ctx context.Context, in *meter, out chan<- input, stop <-chan struct{}) {
	rd := s.rd
	send := func(msg input) bool {
		select {
		case out <- msg:
			return true
		case <-stop:
			return false
		}
	}
	switch doc, err := rd.StartsDocument(); {
	case err != nil:
		send(input{err: err, readFailed: in.err != nil})
		return
	case doc:
		if h := s.m.dropHeld(s); h != nil {
			s.log.Info("the producer started its stream over: dropping the rest of a fragment its broken connection left",
				"fragment", h.b.frag.Number, "frames", h.b.frames())
		}
	default:
		c, err := s.m.resume(ctx, s)
		if err == nil && c == nil {
			err = errors.New(errNoHeader)
		}
		if err != nil {
			send(input{err: err})
			return
		}
		var cut *mkv.Cut
		if c.held != nil {
			cut = c.held.cut
		}
		rd.Resume(cut)
		if !send(input{resume: c}) {
			return
		}
	}
	rd.SwapCluster(buffers.Get(0))
	defer func() { buffers.Put(rd.SwapCluster(nil)) }() // nil while a Cluster is half read
	var sizes recentSizes
	for {
		ev, err := rd.Next()
		msg := input{ev: ev, at: s.m.cfg.Now(), end: rd.Offset(), err: err, readFailed: err != nil && in.err != nil}
		if ev.Kind == mkv.KindClusterEnd {
			// The Reader's buffer becomes the fragment's (no copy of hundreds of KB); the
			// Reader goes on in a recycled one.
			msg.ev.Raw = rd.SwapCluster(buffers.Get(sizes.add(len(ev.Raw))))
		} else {
			msg.ev.Raw = bytes.Clone(ev.Raw) // the Reader reuses its buffers on the next call
		}
		if !send(msg) || err != nil {
			return
		}
	}
}

// meter records when body bytes last arrived (for IDLE) and whether reading failed (4000, as
// opposed to malformed content).
type meter struct {
	r     io.Reader
	last  atomic.Int64 // UnixNano of the last byte read
	lease *streamLease // told of every byte (the holder's silence); nil without leases
	err   error        // the first error other than io.EOF; parser goroutine only
}

func (m *meter) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	if n > 0 {
		m.touch()
	}
	if err != nil && err != io.EOF && m.err == nil {
		m.err = err
	}
	return n, err
}

func (m *meter) touch() {
	now := time.Now()
	m.last.Store(now.UnixNano())
	m.lease.touch(now)
}

func (m *meter) lastByte() time.Time { return time.Unix(0, m.last.Load()) }

// writer writes fragments' media in order on its own goroutine. Each one's index entry then
// commits in the store's group commit while the writer goes on with the next fragment's media:
// a stream's fragments are pipelined, media sync of N+1 overlapping the index commit of N.
// Both channels are buffered for maxWriting fragments, and the loop hands over no more than
// that before it has their results, so the writer goes from one fragment to the next without
// waiting for the loop, and never blocks on done.
type writer struct {
	work chan *complete
	done chan written
}

// written is a fragment whose media is durable (commit set), that is not kept because the
// stream's retention is 0 (neither set), or that could not be stored (err set).
type written struct {
	c      *complete
	start  time.Time // handed to the writer
	commit *fragstore.Commit
	err    error // an *ackError
}

func (w written) stored() bool { return w.commit != nil }

// ready is closed when w's outcome is known: its commit finished, or at once for an error.
func (w written) ready() <-chan struct{} {
	if w.commit == nil {
		return closed
	}
	return w.commit.Done()
}

var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// prepared is a fragment taken from the writer's work, prepared for its write (err: why not).
type prepared struct {
	c   *complete
	p   *fragstore.Prepared
	err error
}

// write stores the fragments handed to the writer, in order. A second goroutine prepares each
// one (meta, encryption, checksums: CPU only) while the one before it is being written, so
// that a stream's sealing and its durable writes overlap instead of taking turns.
func (s *Session) write(ctx context.Context, w *writer) {
	next := make(chan prepared) // unbuffered: the preparer works one fragment ahead, no more
	go s.prepare(ctx, w.work, next)
	failed := false
	for r := range next {
		start := time.Now()
		var commit *fragstore.Commit
		var err error
		if failed {
			// A fragment after a failed one must not be persisted: the producer resends from
			// the failed one. The session ends with the first failure; this one is never acked.
			err = failf(errArchival, r.c.frag, "not stored after an earlier fragment failed")
		} else {
			commit, err = s.store(ctx, &r)
		}
		if r.p != nil {
			r.p.Release() // not written (store consumed it otherwise)
		}
		failed = failed || err != nil
		w.done <- written{c: r.c, start: start, commit: commit, err: err}
	}
}

// prepare prepares the fragments of work in order and hands them to the writer. It returns,
// closing out, once work is closed and the writer took everything.
func (s *Session) prepare(ctx context.Context, work <-chan *complete, out chan<- prepared) {
	defer close(out)
	for c := range work {
		p, err := s.m.cfg.Store.Prepare(ctx, s.key, c.doc.raw, c.frag, c.media)
		out <- prepared{c: c, p: p, err: err}
	}
}

// store writes one prepared fragment's media and queues its index entry, unless the stream is
// gone (a stream deleted, or deleted and created again, must not receive this session's
// fragments) or keeps no data: retention is read per fragment, so a change applies from the
// next one. It returns a nil Commit for a fragment not kept. It consumes r.p when it writes it.
func (s *Session) store(ctx context.Context, r *prepared) (*fragstore.Commit, error) {
	c := r.c
	st, err := s.current(ctx)
	switch {
	case errors.Is(err, stream.ErrNotFound) || err == nil && fragstore.KeyOf(st) != s.key:
		return nil, failf(errStreamNotActive, c.frag, "the stream was deleted")
	case err != nil:
		return nil, failf(errArchival, c.frag, "check the stream: %w", err)
	case st.RetentionHours == 0:
		return nil, nil
	}
	var commit *fragstore.Commit
	if err = r.err; err == nil {
		var epoch uint64 // 0: not fenced
		if s.lease != nil {
			epoch = s.lease.lease.Epoch
		}
		p := r.p
		r.p = nil
		commit, err = s.m.cfg.Store.WritePrepared(ctx, p, epoch)
	}
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("persist fragment", "fragment", c.frag.Number, "err", err)
		}
		return nil, persistFailure(c.frag, err)
	}
	return commit, nil
}

// changeCounter is a Streams that counts the changes made to streams (*stream.Service).
type changeCounter interface{ Changes() uint64 }

// current returns the stream as the catalog has it now. With a Streams that counts its changes
// it reads the catalog again only when a stream changed since the last read: a retention
// change or a deletion is seen by the next fragment, without a catalog read per fragment.
func (s *Session) current(ctx context.Context) (*stream.Stream, error) {
	cc, ok := s.m.cfg.Streams.(changeCounter)
	if !ok {
		return s.m.cfg.Streams.Describe(ctx, stream.Ref{Name: s.st.Name})
	}
	n := cc.Changes() // before the read: a change during it is read again next time
	if s.seen != nil && n == s.seenChanges {
		return s.seen, nil
	}
	st, err := s.m.cfg.Streams.Describe(ctx, stream.Ref{Name: s.st.Name})
	if err != nil {
		return nil, err
	}
	s.seen, s.seenChanges = st, n
	return st, nil
}

// loop is the session's main goroutine: the only one that emits acks and publishes.
type loop struct {
	s    *Session
	emit func(Ack) error
	in   *meter
	w    *writer
	// prev is closed once the connection this one superseded has stopped: until then
	// fragments wait in backlog, so that the stream's fragments are stored in order.
	prev <-chan struct{}
	// persistAcks: PERSISTED acks are sent (the stream kept data at the start, or does now).
	persistAcks bool
	parsedTo    int64 // the body offset of the last event taken
	skipNoted   bool  // the continuation's skipped data was reported

	held       int64       // bytes of the fragments in backlog, with the writer and in committing
	backlog    []*complete // received, not yet handed to the writer
	writing    int         // handed to the writer, result not yet taken from done
	committing []written   // media written (or failed), in order, awaiting the index commit
	failure    *ackError   // to send once the fragments before it are persisted
	broken     bool        // the writer failed: its error is queued in committing
	eof        bool

	reading  bool      // taking events last time round
	resumed  time.Time // when reading last resumed: a pause is ours, not the producer's silence
	lastIdle time.Time
}

func (l *loop) run(ctx context.Context, events <-chan input) error {
	cfg := &l.s.m.cfg
	tick := time.NewTicker(min(cfg.IdleAckInterval, cfg.IdleTimeout) / 2)
	defer tick.Stop()
	stopped, superseded := l.s.stopped, l.s.superseded
	var grace <-chan time.Time
	for {
		draining := l.eof || l.failure != nil || l.broken
		l.handOver()
		if draining && len(l.backlog) == 0 && l.writing == 0 && len(l.committing) == 0 {
			if l.failure != nil {
				return l.failure
			}
			return nil
		}
		// A session with fragments queued also waits while all sessions together hold more
		// than MaxQueuedBytes: a server falling behind then pushes back on its producers
		// instead of filling its memory. One with none queued always reads, so each makes
		// progress.
		reading := !draining && len(l.backlog) < maxBacklog &&
			(l.held == 0 || l.s.m.queued.Load() < l.s.m.cfg.MaxQueuedBytes)
		if reading && !l.reading {
			l.resumed = time.Now()
		}
		l.reading = reading
		var (
			recv <-chan input
			done <-chan written
			head <-chan struct{}
		)
		if reading {
			recv = events
		}
		done = l.w.done
		if len(l.committing) > 0 {
			head = l.committing[0].ready()
		}

		var err error
		select {
		case in := <-recv:
			err = l.input(in)
		case r := <-done:
			l.writing--
			l.wrote(r)
		case <-head:
			r := l.committing[0]
			l.committing[0] = written{} // let the fragment go once handled
			l.committing = l.committing[1:]
			err = l.persisted(r)
		case <-tick.C:
			err = l.idle()
		case <-l.prev:
			l.prev = nil
		case <-superseded:
			// The older connection may finish the fragments it started for a while; one it
			// starts once the newer connection streams ends it (Manager.nextSeq).
			superseded = nil
			grace = time.After(cfg.SupersededGrace)
		case <-grace:
			l.end(errSuperseded)
		case <-stopped:
			stopped = nil
			open := l.s.frag.open()
			switch l.s.stopWhy {
			case errStreamNotActive:
				return failf(errStreamNotActive, open, "the stream was deleted")
			case endSuperseded:
				l.end(errSuperseded)
			default:
				l.end(failf(errInternal, open, "kvsd is shutting down"))
			}
		case <-ctx.Done():
			return ctx.Err()
		}
		if err != nil {
			return err
		}
	}
}

// end makes the session end with fail once what it received is persisted, unless it is ending
// already.
func (l *loop) end(fail *ackError) {
	if l.failure == nil && !l.eof {
		l.failure = fail
	}
}

// handOver queues backlog fragments for the writer while it holds fewer than maxWriting and
// at most maxWriting+maxCommitting are with it or committing, and the connection this one
// superseded has stopped. The sends never block: the channel has room for maxWriting.
func (l *loop) handOver() {
	for l.prev == nil && len(l.backlog) > 0 && l.writing < maxWriting && l.writing+len(l.committing) < maxWriting+maxCommitting {
		l.w.work <- l.backlog[0]
		// Clear the slot before reslicing: the backing array would otherwise keep the
		// handed-off fragment (hundreds of KB) alive until the next one arrives.
		l.backlog[0] = nil
		l.backlog = l.backlog[1:]
		l.writing++
	}
}

// input applies one parser result. Its outputs go out at once; an error waits for the
// fragments before it to be persisted, so the producer does not resend those.
func (l *loop) input(in input) error {
	f := l.s.frag
	var outs []output
	var fail *ackError
	l.parsedTo = in.end
	switch {
	case in.resume != nil:
		l.resume(in.resume)
	case in.err == io.EOF:
		outs, fail = f.end()
		l.eof = true
	case in.err != nil:
		fail = readFailure(in, f.open())
	default:
		outs, fail = f.handle(in.ev, in.at)
	}
	for _, o := range outs {
		if err := l.emit(o.ack); err != nil {
			return err
		}
		if o.done != nil {
			l.received(o.done)
		}
	}
	if fail != nil {
		l.failure = fail
	}
	if sk := f.skipped; !l.skipNoted && sk.frames+sk.tags > 0 && (!f.skipping || l.failure != nil || l.eof) {
		l.skipNoted = true
		l.s.m.metrics.lost.WithLabelValues("continuation").Add(float64(sk.frames))
		l.s.problem("INGEST_CONTINUATION_SKIPPED",
			fmt.Sprintf("a PutMedia body without an EBML header began with %d frames and %d tags (%d bytes) of a fragment whose start kvsd does not hold; they were skipped up to the next Cluster", sk.frames, sk.tags, sk.bytes),
			"The producer continued a connection from before a kvsd restart (kill -9, crash) mid-fragment. Stop kvsd with SIGTERM so that it ends connections with an ERROR naming the fragment in flight, which producers resend.",
			"frames", sk.frames, "tags", sk.tags, "bytes", sk.bytes)
	}
	return nil
}

// resume starts the loop on a body that continues an earlier connection's document.
func (l *loop) resume(c *continuation) {
	var b *building
	how := "none"
	if c.held != nil {
		b, how = c.held.b, "held"
	}
	l.s.m.metrics.resumed.WithLabelValues(how).Inc()
	l.s.frag.resume(c.doc, b)
	args := []any{"header", c.doc.id}
	if b != nil {
		args = append(args, "fragment", b.frag.Number, "frames_so_far", b.frames())
	}
	l.s.log.Info("PutMedia body without an EBML header: continuing the stream from the earlier connection", args...)
}

// readFailure classifies a Reader error.
func readFailure(in input, open *fragment.Fragment) *ackError {
	switch {
	case in.readFailed:
		return failf(errStreamRead, open, "read body: %w", in.err)
	case errors.Is(in.err, mkv.ErrTooLarge):
		return failf(errFragmentSize, open, "%w", in.err)
	}
	return failf(errInvalidMKV, open, "%w", in.err)
}

func (l *loop) received(c *complete) {
	m := l.s.m.metrics
	m.fragments.Inc()
	m.bytes.Add(float64(len(c.media)))
	l.backlog = append(l.backlog, c)
	l.hold(int64(len(c.media)))
}

// wrote queues a fragment the writer is done with behind the ones committing. After a
// failure nothing more is handed to the writer: the fragments before it still get their
// PERSISTED acks, then the session ends with its error.
func (l *loop) wrote(r written) {
	l.committing = append(l.committing, r)
	if r.err != nil {
		l.backlog, l.broken = nil, true
	}
}

// hold counts n bytes more (or fewer) as queued in this session and in all of them.
func (l *loop) hold(n int64) {
	l.held += n
	l.s.m.queued.Add(n)
}

// persisted handles the oldest fragment in committing once its outcome is known.
func (l *loop) persisted(r written) error {
	l.hold(-int64(len(r.c.media)))
	err := r.err
	if err == nil && r.stored() {
		if cerr := r.commit.Err(); cerr != nil {
			l.s.log.Error("persist fragment", "fragment", r.c.frag.Number, "err", cerr)
			err = failf(errArchival, r.c.frag, "persist: %w", cerr)
		}
	}
	if err != nil {
		return err // supersedes a pending failure: the producer must resend from here
	}
	if !r.stored() {
		// Retention 0: nothing kept. A producer that expects PERSISTED still gets it (the
		// fragment is kept for the 0 hours asked), so that it frees its buffer.
		if l.persistAcks {
			if err := l.emit(ackFor(EventPersisted, r.c.frag)); err != nil {
				return err
			}
		}
		l.publish(r.c, false)
		return nil
	}
	l.persistAcks = true
	l.s.m.metrics.persist.Observe(time.Since(r.start).Seconds())
	if err := l.emit(ackFor(EventPersisted, r.c.frag)); err != nil {
		return err
	}
	l.publish(r.c, true)
	// Publish is done with the media of a persisted fragment (it is read back from the store
	// from now on), so its buffer goes to the next Cluster.
	buffers.Put(r.c.media)
	r.c.media = nil
	return nil
}

func (l *loop) publish(c *complete, persisted bool) {
	if p := l.s.m.cfg.Publish; p != nil {
		p(Event{Stream: l.s.st, Key: l.s.key, Fragment: c.frag, Header: c.doc.raw, Media: c.media, Persisted: persisted})
	}
}

// idle sends IDLE while the producer is silent and ends the session after IdleTimeout. Time
// spent not reading (backpressure, draining) does not count as the producer's silence.
func (l *loop) idle() error {
	cfg := &l.s.m.cfg
	since := l.in.lastByte()
	if l.resumed.After(since) {
		since = l.resumed
	}
	quiet := time.Since(since)
	if !l.reading {
		l.s.lease.touch(time.Now()) // the pause is ours: the producer is not silent
	}
	if l.reading && quiet >= cfg.IdleTimeout {
		return errIdle
	}
	if quiet >= cfg.IdleAckInterval && time.Since(l.lastIdle) >= cfg.IdleAckInterval {
		l.lastIdle = time.Now()
		return l.emit(Ack{EventType: EventIdle})
	}
	return nil
}

// buffers recycles the buffers persisted fragments were read into. The Reader keeps filling
// one buffer per session with the Cluster being received; once a fragment is persisted its
// buffer goes back here for the next Cluster of any session. Without it every fragment is a
// fresh allocation of hundreds of KB, and the garbage collector lets the heap grow to twice
// the live buffers before it reclaims them.
var buffers bufpool.Pool

// recentSizes is the sizes of a session's last few Clusters. Their largest is the hint for the
// next one's buffer: Clusters of one stream differ by ±10 % or more (a 1080p 2 Mbit/s file's
// 2-s fragments run 473 to 575 KB), and sized by the last one alone, a buffer recycled from a
// smaller Cluster was dropped, and a new one allocated, for every larger one: 1 MB of garbage
// per fragment, whose collection took a fifth of a scaled node's CPU.
type recentSizes struct {
	n    int
	last [8]int
}

// add notes a Cluster of size bytes and returns the largest recent size.
func (r *recentSizes) add(size int) int {
	r.last[r.n%len(r.last)] = size
	r.n++
	return slices.Max(r.last[:])
}
