package playback

import (
	"sync"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
)

// Item is one complete fragment as ingest hands it over.
type Item struct {
	Fragment *fragment.Fragment
	Header   []byte
	Media    []byte
}

// Hub tells live GetMedia readers that a stream has a new fragment. For streams without
// retention it also keeps the last few fragments in memory, since nothing is archived: that is
// the small buffer live GetMedia reads from (KVS keeps a similar one).
type Hub struct {
	mu      sync.Mutex
	streams map[fragstore.Key]*live
	// RingBytes bounds each retention-0 stream's buffer; the newest fragment is always kept.
	ringBytes int
}

type live struct {
	wake  chan struct{} // closed and replaced on every publish
	ring  []Item
	bytes int
}

// NewHub returns a hub whose per-stream memory buffers hold up to ringBytes.
func NewHub(ringBytes int) *Hub {
	return &Hub{streams: map[fragstore.Key]*live{}, ringBytes: ringBytes}
}

func (h *Hub) get(k fragstore.Key) *live {
	l := h.streams[k]
	if l == nil {
		l = &live{wake: make(chan struct{})}
		h.streams[k] = l
	}
	return l
}

// Publish announces a complete fragment. Persisted fragments are read from the store by
// readers; unpersisted ones (retention 0) are buffered here.
func (h *Hub) Publish(k fragstore.Key, it Item, persisted bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	l := h.get(k)
	if !persisted {
		l.ring = append(l.ring, it)
		l.bytes += len(it.Media)
		for len(l.ring) > 1 && l.bytes > h.ringBytes {
			l.bytes -= len(l.ring[0].Media)
			l.ring[0] = Item{}
			l.ring = l.ring[1:]
		}
	}
	close(l.wake)
	l.wake = make(chan struct{})
}

// Wake wakes k's waiters without a fragment: another node committed one, which readers find
// in the store. Streams nobody waits on are left alone.
func (h *Hub) Wake(k fragstore.Key) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if l := h.streams[k]; l != nil {
		close(l.wake)
		l.wake = make(chan struct{})
	}
}

// WakeAll wakes every waiter, so that each looks at the store again: notifications of other
// nodes' fragments may have been missed.
func (h *Hub) WakeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, l := range h.streams {
		close(l.wake)
		l.wake = make(chan struct{})
	}
}

// Wait returns a channel closed at the next Publish (or Wake) for k.
func (h *Hub) Wait(k fragstore.Key) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.get(k).wake
}

// Buffered returns the buffered fragments of k with Seq > afterSeq, oldest first.
func (h *Hub) Buffered(k fragstore.Key, afterSeq uint64) []Item {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Item
	for _, it := range h.get(k).ring {
		if it.Fragment.Seq > afterSeq {
			out = append(out, it)
		}
	}
	return out
}

// LastBuffered is the highest buffered sequence of k, 0 if none.
func (h *Hub) LastBuffered(k fragstore.Key) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r := h.get(k).ring; len(r) > 0 {
		return r[len(r)-1].Fragment.Seq
	}
	return 0
}

// Forget drops a deleted stream's state, waking its readers so they notice.
func (h *Hub) Forget(k fragstore.Key) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if l := h.streams[k]; l != nil {
		close(l.wake)
		delete(h.streams, k)
	}
}
