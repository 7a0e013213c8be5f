// Package bufpool recycles the buffers that hold a fragment's bytes (hundreds of KB each)
// while it is received, stored or sent. Allocated afresh for each fragment, they are most of a
// server's garbage: the collector's work, and page faults on first touch.
package bufpool

import "sync"

// MaxPooled keeps rare huge fragments (up to 50 MB) from being held for reuse.
const MaxPooled = 8 << 20

// Pool is a pool of byte buffers. The zero Pool is ready to use.
type Pool struct{ p sync.Pool } // of *[]byte

// Get returns an empty buffer for about hint bytes (0: unknown). A recycled buffer too small
// for hint is dropped, since growing it as it fills would copy it, maybe more than once; with
// none recycled a new one has an eighth more room than hint (a stream's fragments vary a
// little), or is nil for hint 0, to grow as it fills.
func (bp *Pool) Get(hint int) []byte {
	if b, ok := bp.p.Get().(*[]byte); ok && cap(*b) >= hint {
		return (*b)[:0]
	}
	if hint == 0 {
		return nil
	}
	return make([]byte, 0, min(hint+hint/8, MaxPooled))
}

// Put recycles b; its owner must not use it afterwards.
func (bp *Pool) Put(b []byte) {
	if cap(b) == 0 || cap(b) > MaxPooled {
		return
	}
	b = b[:0]
	bp.p.Put(&b)
}
