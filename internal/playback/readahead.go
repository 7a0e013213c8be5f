package playback

import (
	"github.com/kvsd/kvsd/internal/bufpool"
	"runtime"
	"sync"
	"sync/atomic"
)

// readAhead reads fragments 0..n-1 of a clip on worker goroutines, a few ahead of the one being
// used, and hands them over in order: the checksums and the decryption (AES-GCM) of the next
// fragments then run on other cores while the current one is parsed or written to the client,
// and an object store's latency is paid once for several fragments. At most readAheadSlots
// fragment buffers exist at once, so memory stays flat in the clip's length.
type readAhead struct {
	read    func(i int, buf []byte) ([]byte, error)
	results []chan readResult // one per fragment, buffered
	free    chan []byte       // buffers to read into; a slot is taken while a fragment is out
	out     []byte            // the media Fragment gave out last
	next    atomic.Int64      // the next fragment a worker takes
	done    chan struct{}
	wg      sync.WaitGroup
	close   sync.Once
}

// readAheadSlots is how many fragments' buffers a readAhead uses (the one in use included):
// enough for every worker to have one, and for a stock of fragments decrypted while a clip's
// first pass lays it out, before the first byte goes out (about 4 MB of 1080p).
const readAheadSlots = 8

type readResult struct {
	media []byte
	err   error
}

// startReadAhead starts reading n fragments through read, which must be safe to call from
// several goroutines at once. Stop must be called.
func startReadAhead(n int, read func(i int, buf []byte) ([]byte, error)) *readAhead {
	workers := min(runtime.GOMAXPROCS(0), 4, n)
	slots := readAheadSlots
	r := &readAhead{read: read, results: make([]chan readResult, n), free: make(chan []byte, slots), done: make(chan struct{})}
	for i := range r.results {
		r.results[i] = make(chan readResult, 1)
	}
	for range slots - 1 {
		r.free <- buffers.Get(0)
	}
	r.out = buffers.Get(0) // the last slot's, which the first Fragment call hands in
	r.wg.Add(workers)
	for range workers {
		go r.work()
	}
	return r
}

func (r *readAhead) work() {
	defer r.wg.Done()
	for {
		var buf []byte
		select {
		case buf = <-r.free:
		case <-r.done:
			return
		}
		i := int(r.next.Add(1) - 1)
		if i >= len(r.results) {
			return
		}
		media, err := r.read(i, buf[:0])
		r.results[i] <- readResult{media, err}
	}
}

// Fragment returns fragment i's media, once read; calls must ask for 0, 1, 2 … in order. The
// media of the previous call is read into again from then on: the caller is done with it.
func (r *readAhead) Fragment(i int) ([]byte, error) {
	r.free <- r.out // never blocks: a slot is free for the buffer given out last
	res := <-r.results[i]
	r.out = res.media
	return res.media, res.err
}

// Stop ends the workers, waits for them and recycles the buffers: the media Fragment gave out
// must not be used any more.
func (r *readAhead) Stop() {
	r.close.Do(func() {
		close(r.done)
		r.wg.Wait()
		buffers.Put(r.out)
		r.out = nil
		// The workers have returned and Fragment is not called again: nothing else sends
		// or receives on the channels.
		for len(r.free) > 0 {
			buffers.Put(<-r.free)
		}
		for _, c := range r.results {
			if len(c) > 0 {
				buffers.Put((<-c).media)
			}
		}
	})
}

// buffers recycles fragment buffers between clips: fresh ones cost the clip their page faults
// on first touch (pread fills them) and the collector their garbage, a few MB per clip.
var buffers bufpool.Pool
