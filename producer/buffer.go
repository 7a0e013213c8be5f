package producer

import (
	"context"
	"slices"
	"sync"
	"time"
)

// fragment is one Cluster with its frames and trailing Tags, as it goes on
// the wire. Its bytes are appended while it is built and may be sent at the
// same time: bytes below len(data), read under the lock, never change.
type fragment struct {
	seq      int64
	timecode int64 // Cluster Timecode: epoch ms
	first    int64 // earliest frame, epoch ms
	last     int64 // latest frame, epoch ms
	end      int64 // where the fragment ends (the next one's start), once closed
	frames   int
	data     []byte
	closed   bool  // complete: tags written, nothing more is appended
	sentBy   int64 // connection that started sending it (0: none)
	received bool  // RECEIVED on the connection sending it now
}

func (f *fragment) duration() time.Duration {
	return time.Duration(max(f.end, f.last)-f.first) * time.Millisecond
}

// buffer holds the fragments that are not confirmed yet, in order. The
// builder appends, connections read and acknowledgements remove. One mutex
// guards it all; changed is closed and replaced on every change so that
// waiters can select on it together with their own cancellation.
type buffer struct {
	mu      sync.Mutex
	frags   []*fragment
	bytes   int64
	limit   int64
	live    bool
	final   bool // the builder is done: no fragment will be added or grow
	changed chan struct{}
	stats   Stats
	nextSeq int64

	pend   []Event // events to hand to OnEvent once the lock is released
	emitMu sync.Mutex
	onEv   func(Event)
}

func newBuffer(limit int64, live bool, onEv func(Event)) *buffer {
	return &buffer{limit: limit, live: live, changed: make(chan struct{}), onEv: onEv, nextSeq: 1}
}

// signal wakes every waiter; the caller holds mu.
func (b *buffer) signal() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// event queues an event; the caller holds mu and calls unlock afterwards.
func (b *buffer) event(ev Event) {
	if b.onEv == nil {
		return
	}
	ev.Stats = b.stats
	b.pend = append(b.pend, ev)
}

// unlock releases mu and delivers the queued events, one call at a time.
func (b *buffer) unlock() {
	evs := b.pend
	b.pend = nil
	b.mu.Unlock()
	if len(evs) == 0 {
		return
	}
	b.emitMu.Lock()
	defer b.emitMu.Unlock()
	for _, ev := range evs {
		b.onEv(ev)
	}
}

// fragEvent describes fragment f.
func fragEvent(k EventKind, f *fragment, err error) Event {
	return Event{Kind: k, Timecode: time.UnixMilli(f.timecode), Duration: f.duration(), Bytes: len(f.data), Err: err}
}

// start adds a new fragment. A live source makes room by dropping; a file
// source waits for room in add.
func (b *buffer) start(timecode int64) *fragment {
	b.mu.Lock()
	defer b.unlock()
	f := &fragment{seq: b.nextSeq, timecode: timecode, first: timecode, last: timecode}
	b.nextSeq++
	b.frags = append(b.frags, f)
	b.stats.Fragments++
	return f
}

// add appends bytes to f (the fragment being built). For a frame it first
// makes room: a file source waits, a live one drops the oldest fragments.
// It returns ctx's error if the wait is cancelled.
func (b *buffer) add(ctx context.Context, f *fragment, p []byte, ts int64, frame bool) error {
	b.mu.Lock()
	for frame && b.bytes+int64(len(p)) > b.limit && b.frags[0] != f {
		if b.live {
			if !b.dropOldest(f) {
				break // only f is left: let it exceed the limit
			}
			continue
		}
		ch := b.changed
		b.unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		b.mu.Lock()
	}
	f.data = append(f.data, p...)
	b.bytes += int64(len(p))
	if frame {
		f.frames++
		f.first, f.last = min(f.first, ts), max(f.last, ts)
		b.stats.Frames++
	}
	b.signal()
	b.unlock()
	return nil
}

// dropOldest drops the oldest complete fragment other than keep that no
// connection has started to send, else the oldest complete one waiting for
// its ack. It reports false when there is none. The caller holds mu.
func (b *buffer) dropOldest(keep *fragment) bool {
	victim := slices.IndexFunc(b.frags, func(f *fragment) bool { return f != keep && f.closed && f.sentBy == 0 })
	if victim < 0 {
		victim = slices.IndexFunc(b.frags, func(f *fragment) bool { return f != keep && f.closed })
	}
	if victim < 0 {
		return false
	}
	f := b.frags[victim]
	b.remove(victim)
	b.stats.Dropped++
	b.event(fragEvent(EventFragmentDropped, f, nil))
	return true
}

// remove takes b.frags[i] out; the caller holds mu.
func (b *buffer) remove(i int) {
	b.bytes -= int64(len(b.frags[i].data))
	b.frags = slices.Delete(b.frags, i, i+1)
	b.signal()
}

// close marks f complete after appending its trailing bytes (tags); end is
// where it ends, the next fragment's start when there is one.
func (b *buffer) close(ctx context.Context, f *fragment, tags []byte, end int64) error {
	if len(tags) > 0 {
		if err := b.add(ctx, f, tags, 0, false); err != nil {
			return err
		}
	}
	b.mu.Lock()
	f.closed = true
	f.end = end
	if end == 0 && f.frames > 1 { // the last fragment: one mean frame interval after its last frame
		f.end = f.last + (f.last-f.first)/int64(f.frames-1)
	}
	b.signal()
	b.unlock()
	return nil
}

// finish says no more fragments will come.
func (b *buffer) finish() {
	b.mu.Lock()
	b.final = true
	b.signal()
	b.unlock()
}

// find returns the index of the fragment with the Cluster timecode tc that
// connection conn sent, or -1.
func (b *buffer) find(conn int64, tc int64) int {
	for i, f := range b.frags {
		if f.timecode == tc && f.sentBy == conn {
			return i
		}
	}
	return -1
}

// confirm handles PERSISTED (or RECEIVED without retention) for tc.
func (b *buffer) confirm(conn int64, tc int64) {
	b.mu.Lock()
	defer b.unlock()
	i := b.find(conn, tc)
	if i < 0 {
		return
	}
	f := b.frags[i]
	b.remove(i)
	b.stats.Persisted++
	b.stats.Media += f.duration()
	b.event(fragEvent(EventFragmentPersisted, f, nil))
}

// received marks tc RECEIVED on conn.
func (b *buffer) markReceived(conn int64, tc int64) {
	b.mu.Lock()
	defer b.unlock()
	if i := b.find(conn, tc); i >= 0 {
		b.frags[i].received = true
	}
}

// skip removes the fragment a non-retriable ERROR refused. With an unknown
// timecode it removes the oldest fragment conn sent, which is the one the
// server was reading (acks come in order). It reports whether it removed
// one.
func (b *buffer) skip(conn int64, tc int64, why error) bool {
	b.mu.Lock()
	defer b.unlock()
	i := b.find(conn, tc)
	if i < 0 {
		i = slices.IndexFunc(b.frags, func(f *fragment) bool { return f.sentBy == conn && !f.received })
	}
	if i < 0 {
		return false
	}
	f := b.frags[i]
	b.remove(i)
	b.stats.Skipped++
	b.stats.LastError = why
	b.event(fragEvent(EventFragmentSkipped, f, why))
	return true
}

// rewind forgets what earlier connections sent: the next connection starts
// again at the oldest unconfirmed fragment.
func (b *buffer) rewind() {
	b.mu.Lock()
	defer b.unlock()
	for _, f := range b.frags {
		f.sentBy, f.received = 0, false
	}
}

// done reports whether every fragment is confirmed and none will come.
func (b *buffer) done() bool {
	b.mu.Lock()
	defer b.unlock()
	return b.final && len(b.frags) == 0
}

// snapshot returns the current counters.
func (b *buffer) snapshot() Stats {
	b.mu.Lock()
	defer b.unlock()
	s := b.stats
	s.Pending = int64(len(b.frags))
	return s
}

// warn reports a warning through OnEvent.
func (b *buffer) warn(err error) {
	b.mu.Lock()
	b.event(Event{Kind: EventWarning, Err: err})
	b.unlock()
}
