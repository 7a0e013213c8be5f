package fragstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kvsd/kvsd/internal/catalog"
	"github.com/kvsd/kvsd/internal/fragment"
)

// commitQueue is the capacity hint of the committer's queue.
const commitQueue = 256

var errClosed = errors.New("fragstore: closed")

// Commit is a fragment whose media is durable and whose index entry is queued for the next
// group commit. Done is closed once that commit has finished; Err then says how it went.
type Commit struct {
	put   Put
	st    *streamState
	start time.Time
	done  chan struct{}
	err   error
}

// Done is closed when the fragment's index commit has finished, successfully or not.
func (c *Commit) Done() <-chan struct{} { return c.done }

// Err is nil once the fragment is durable (media and index entry): it then survives kill -9
// and power loss. Only meaningful after Done is closed.
func (c *Commit) Err() error { return c.err }

// Wait waits for the commit, or for ctx. A commit given up on still completes.
func (c *Commit) Wait(ctx context.Context) error {
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Append makes one fragment durable: Write, then wait for its commit. When Append returns nil
// the fragment survives kill -9 and power loss.
func (s *Store) Append(ctx context.Context, k Key, header []byte, f *fragment.Fragment, media []byte) error {
	c, err := s.Write(ctx, k, header, f, media)
	if err != nil {
		return err
	}
	return c.Wait(ctx)
}

// Write is the first half of Append: it stores the media bytes (cluster and trailing tags,
// verbatim) durably and queues the index entry, which carries the header (stored once per
// distinct HeaderID). It returns as soon as the media is synced, so that a writer can go on
// with its next fragment's media while this one's entry commits together with whatever else
// is queued, from this stream and others: one index commit, with its fsyncs, for all of them.
//
// f.Seq, f.Number, f.HeaderID and the timestamps are set by the caller; Write sets f.Size. The
// caller must not change f, header or media until the Commit is done. Writes of one Key come
// from one goroutine at a time, in increasing Seq; their commits finish in that order.
//
// Media is synced before its entry is queued, so a committed entry never points at bytes a
// crash could lose; media written but never committed is cut away at the next Open.
func (s *Store) Write(ctx context.Context, k Key, header []byte, f *fragment.Fragment, media []byte) (*Commit, error) {
	return s.WriteFenced(ctx, k, 0, header, f, media)
}

// WriteFenced is Write with the index commit fenced by epoch (catalog.Put.Epoch), the epoch of
// the stream's lease when several nodes share the catalog; 0 is Write. Once another node has
// acquired the stream, the Commit fails with an error wrapping catalog.ErrFenced (entries of
// other streams in the same group commit are not held back), and the stream's next Write reads
// its last sequence from the index again, since the other node has been writing.
func (s *Store) WriteFenced(ctx context.Context, k Key, epoch uint64, header []byte, f *fragment.Fragment, media []byte) (*Commit, error) {
	p, err := s.Prepare(ctx, k, header, f, media)
	if err != nil {
		return nil, err
	}
	return s.WritePrepared(ctx, p, epoch)
}

// Prepared is a fragment made ready for its write by Prepare: its self-description encoded
// and, where the Media can (disk), its record sealed and checksummed in the buffer it is
// written from. WritePrepared writes it; Release drops one that will not be written.
type Prepared struct {
	k      Key
	header []byte
	f      *fragment.Fragment
	media  []byte
	meta   []byte
	rec    PreparedRecord // nil: the Media appends plain Records
}

// Release frees a Prepared that will not be written. Releasing one that was written, or
// twice, is harmless.
func (p *Prepared) Release() {
	if p.rec != nil {
		p.rec.Release()
		p.rec = nil
	}
}

// Prepare does the CPU work of Write ahead of it (the frame table, the meta, the encryption
// and checksums of the record) without taking the stream's turn, so that a writer prepares
// a stream's next fragment while the previous one's media is being written. It reads f and
// media: the caller must not change them until the Prepared is written or released.
func (s *Store) Prepare(ctx context.Context, k Key, header []byte, f *fragment.Fragment, media []byte) (*Prepared, error) {
	if err := checkAppend(k, header, f, media); err != nil {
		return nil, err
	}
	meta, err := encodeMeta(f, int64(len(media)), header, encodeFrames(media))
	if err != nil {
		return nil, err
	}
	p := &Prepared{k: k, header: header, f: f, media: media, meta: meta}
	if pm, ok := s.media.(Preparer); ok {
		if p.rec, err = pm.Prepare(ctx, k, p.record()); err != nil {
			return nil, fmt.Errorf("prepare media of fragment %d of %s: %w", f.Seq, k.Name, err)
		}
	}
	return p, nil
}

func (p *Prepared) record() Record {
	return Record{Seq: p.f.Seq, Time: p.f.ServerTime, Meta: p.meta, Data: p.media}
}

// WritePrepared is WriteFenced of a fragment Prepare made (epoch 0: Write). It consumes p:
// p is released whatever the outcome.
func (s *Store) WritePrepared(ctx context.Context, p *Prepared, epoch uint64) (*Commit, error) {
	defer p.Release()
	start := time.Now()
	k, f := p.k, p.f
	st := s.state(k)
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.loaded {
		last, _, err := s.index.LastFragment(ctx, k)
		if err != nil {
			return nil, err
		}
		st.lastSeq, st.loaded = last, true
	}
	if f.Seq <= st.lastSeq {
		return nil, fmt.Errorf("append to %s: sequence %d is not after the last stored %d", k.Name, f.Seq, st.lastSeq)
	}
	var loc Location
	var err error
	mediaStart := time.Now()
	if p.rec != nil {
		rec := p.rec
		p.rec = nil // AppendPrepared releases it
		loc, err = s.media.(Preparer).AppendPrepared(ctx, k, rec)
	} else {
		loc, err = s.media.Append(ctx, k, p.record())
	}
	s.noteWrite(err)
	if err != nil {
		return nil, fmt.Errorf("append media of fragment %d of %s: %w", f.Seq, k.Name, err)
	}
	s.metrics.mediaSeconds.Observe(time.Since(mediaStart).Seconds())
	f.Size = int64(len(p.media))
	st.lastSeq = f.Seq
	c := &Commit{put: Put{Key: k, Fragment: f, Location: loc, Header: p.header, Epoch: epoch}, st: st, start: start, done: make(chan struct{})}
	if err := s.enqueue(c); err != nil {
		// The media record stays behind unindexed: harmless (never read), and cut away or
		// deleted with its segment by the next Open.
		return nil, err
	}
	st.pending++ // under st.mu, so the committer's decrement comes after it
	s.metrics.bytes.Add(float64(len(p.media)))
	return c, nil
}

// enqueue hands c to the committer.
func (s *Store) enqueue(c *Commit) error {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if s.qclosed {
		return errClosed
	}
	s.queue = append(s.queue, c)
	select {
	case s.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
	return nil
}

// commitLoop is the group commit: it takes everything queued, commits it in one index
// transaction and reports to each Commit, then starts over with what queued up meanwhile.
// Nothing waits for a timer: a lone fragment commits at once, and under load each commit
// carries all that arrived during the previous one. It stops once Close was called and the
// queue is empty.
func (s *Store) commitLoop() {
	defer close(s.committed)
	for {
		s.qmu.Lock()
		batch := s.queue
		s.queue = nil
		if len(batch) == 0 && s.qclosed {
			s.qmu.Unlock()
			return
		}
		s.qmu.Unlock()
		if len(batch) == 0 {
			select {
			case <-s.wake:
			case <-s.closing:
				s.qmu.Lock()
				s.qclosed = true
				s.qmu.Unlock()
			}
			continue
		}
		s.commit(batch)
	}
}

// commitTimeout bounds one group commit, its retries entry by entry included. A commit that
// timed out may still have been applied: the fragment then gets ERROR 5001 though stored, and
// the producer's resend stores it twice, as on AWS after a lost ack.
const commitTimeout = 10 * time.Second

// commit stores batch's entries in one transaction. If that fails, each entry is tried on its
// own, so that one bad entry fails only its own fragment.
func (s *Store) commit(batch []*Commit) {
	// Shared by many writers: none of their contexts may cancel it. Bounded, so that a database
	// that stopped answering without closing its connections fails the fragments (ERROR 5001:
	// the producer resends) instead of holding their acks until TCP gives up, minutes later.
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	puts := make([]Put, len(batch))
	for i, c := range batch {
		puts[i] = c.put
	}
	commitStart := time.Now()
	err := s.index.PutFragments(ctx, puts)
	if err != nil {
		s.noteWrite(err) // the catalog's file may be what ran out of space
	} else {
		s.metrics.commitSeconds.Observe(time.Since(commitStart).Seconds())
	}
	for i, c := range batch {
		if err != nil && len(batch) > 1 && ctx.Err() == nil {
			c.err = s.index.PutFragments(ctx, puts[i:i+1])
		} else {
			c.err = err
		}
		if c.err != nil {
			f := c.put.Fragment
			c.err = fmt.Errorf("index fragment %d of %s: %w", f.Seq, c.put.Key.Name, c.err)
		} else {
			s.metrics.appendSeconds.Observe(time.Since(c.start).Seconds())
		}
		c.st.mu.Lock()
		if errors.Is(c.err, catalog.ErrFenced) {
			c.st.loaded = false // another node wrote the stream meanwhile
		}
		if c.st.pending--; c.st.pending == 0 {
			c.st.idle.Broadcast()
		}
		c.st.mu.Unlock()
		close(c.done)
	}
	s.metrics.commitSize.Observe(float64(len(batch)))
}

// checkAppend refuses what would corrupt the index: entries without a sequence, numbers that do
// not encode the Key and Seq, fragments without a header to play with.
func checkAppend(k Key, header []byte, f *fragment.Fragment, media []byte) error {
	switch {
	case f == nil:
		return fmt.Errorf("append to %s: nil fragment", k.Name)
	case f.Seq == 0:
		return fmt.Errorf("append to %s: fragment sequence 0 (sequences start at 1)", k.Name)
	case f.Number != fragment.FormatNumber(k.CreatedMs, f.Seq):
		return fmt.Errorf("append to %s: fragment number %q is not FormatNumber(%d, %d)", k.Name, f.Number, k.CreatedMs, f.Seq)
	case f.HeaderID == "" || len(header) == 0:
		return fmt.Errorf("append to %s: fragment %d has no header", k.Name, f.Seq)
	case len(media) == 0:
		return fmt.Errorf("append to %s: fragment %d has no media", k.Name, f.Seq)
	}
	return nil
}
