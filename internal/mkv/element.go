package mkv

import (
	"errors"
	"io"
	"slices"
)

// elemHeader is an element's ID and size field as read from the input. The
// raw bytes are kept because every buffered element is stored verbatim,
// including size fields wider than needed.
type elemHeader struct {
	id   uint32
	size int64 // payload size, or unknownSize
	off  int64 // absolute offset of the first ID byte
	n    int   // length of the ID and size fields
	raw  [maxIDLen + maxSizeLen]byte
}

// bytes returns the ID and size field as sent.
func (h *elemHeader) bytes() []byte { return h.raw[:h.n] }

// end returns the offset just past the element; only for known sizes.
func (h *elemHeader) end() int64 { return h.off + int64(h.n) + h.size }

// total returns the element's length including its header; only for known
// sizes.
func (h *elemHeader) total() int64 { return int64(h.n) + h.size }

// child wraps the element's bytes (header included, as read) for the
// in-memory parsers.
func (h *elemHeader) child(elem []byte) child {
	return child{id: h.id, data: elem[h.n:], off: h.off, dataOff: h.off + int64(h.n)}
}

// readHeader reads one element header. It returns io.EOF only when the input
// ends cleanly before the first byte. It never waits for more bytes than
// the header needs, so an event is never held back waiting for data that
// belongs to the next element.
func (r *Reader) readHeader() (elemHeader, error) {
	if b, _ := r.br.Peek(r.br.Buffered()); len(b) >= maxIDLen+maxSizeLen {
		// Fast path: the whole header is buffered; the slow path gives
		// the same result with exact-length peeks.
		if il := idLen(b[0]); il != 0 {
			if sl := sizeLen(b[il]); sl != 0 {
				return r.takeHeader(b, il, sl), nil
			}
		}
	}
	off := r.off
	b, err := r.br.Peek(1)
	if len(b) == 0 {
		if errors.Is(err, io.EOF) {
			return elemHeader{off: off}, io.EOF
		}
		return elemHeader{off: off}, readError(err, off, "element header")
	}
	il := idLen(b[0])
	if il == 0 {
		return elemHeader{off: off}, invalidf(off, "bad element ID (first byte 0x%02X)", b[0])
	}
	if b, err = r.br.Peek(il + 1); len(b) < il+1 {
		return elemHeader{off: off}, readError(err, off, "element header")
	}
	sl := sizeLen(b[il])
	if sl == 0 {
		return elemHeader{off: off}, invalidf(off, "bad size of %s (first byte 0x00)", idName(decodeID(b[:il])))
	}
	if b, err = r.br.Peek(il + sl); len(b) < il+sl {
		return elemHeader{off: off}, readError(err, off, "element header")
	}
	return r.takeHeader(b, il, sl), nil
}

// takeHeader decodes and consumes a header whose ID is il bytes and size
// field sl bytes, at the start of the buffered bytes b.
func (r *Reader) takeHeader(b []byte, il, sl int) elemHeader {
	h := elemHeader{off: r.off, n: il + sl}
	copy(h.raw[:], b[:h.n])
	h.id = decodeID(b[:il])
	h.size = decodeSize(b[il:h.n])
	r.consume(h.n)
	return h
}

// consume drops n bytes already peeked.
func (r *Reader) consume(n int) {
	_, _ = r.br.Discard(n) // cannot fail: the bytes are buffered
	r.off += int64(n)
}

// readChunk bounds how far a buffer grows ahead of the bytes that actually
// arrived, so a hostile size field costs at most this much extra memory.
const readChunk = 64 << 10

// readPayload appends the n-byte payload of h to dst. Capacity already in
// dst is filled in one read; beyond it the buffer grows by at most readChunk
// at a time.
func (r *Reader) readPayload(dst []byte, h *elemHeader, n int64) ([]byte, error) {
	if n <= int64(r.br.Buffered()) {
		// Small elements are usually buffered already: copy them out
		// without the io.ReadFull round trip.
		b, _ := r.br.Peek(int(n))
		dst = append(dst, b...)
		r.consume(int(n))
		return dst, nil
	}
	for n > 0 {
		k := int(min(n, int64(max(readChunk, cap(dst)-len(dst)))))
		dst = slices.Grow(dst, k)
		m, err := io.ReadFull(r.br, dst[len(dst):len(dst)+k])
		dst = dst[:len(dst)+m]
		r.off += int64(m)
		n -= int64(m)
		if err != nil {
			return dst, readError(err, h.off, idName(h.id))
		}
	}
	return dst, nil
}

// readElem appends the whole element h (header and payload) to dst.
func (r *Reader) readElem(dst []byte, h *elemHeader) ([]byte, error) {
	return r.readPayload(append(dst, h.bytes()...), h, h.size)
}

// skip discards the payload of h without buffering it.
func (r *Reader) skip(h *elemHeader) error {
	if h.size == unknownSize {
		return invalidf(h.off, "%s with unknown size", idName(h.id))
	}
	for n := h.size; n > 0; {
		m, err := r.br.Discard(int(min(n, 1<<30)))
		r.off += int64(m)
		n -= int64(m)
		if err != nil {
			return readError(err, h.off, idName(h.id))
		}
	}
	return nil
}

// children iterates over the child elements of a master held in memory,
// in the style of bufio.Scanner:
//
//	c := childrenOf(parent, idParent)
//	for c.next() {
//		use(c.ch)
//	}
//	return c.err
type children struct {
	b      []byte
	off    int64 // absolute offset of b[0]
	parent uint32
	ch     child // the current child, valid after next returns true
	err    error // why iteration stopped early, nil at a clean end
}

// child is one element found by children.next.
type child struct {
	id      uint32
	data    []byte // payload
	off     int64  // absolute offset of the element
	dataOff int64  // absolute offset of the payload
}

// childrenOf iterates over the payload of e, an element with ID id.
func childrenOf(e child, id uint32) children {
	return children{b: e.data, off: e.dataOff, parent: id}
}

// next advances to the next child and reports whether there is one.
func (c *children) next() bool {
	if len(c.b) == 0 || c.err != nil {
		return false
	}
	off := c.off
	il := idLen(c.b[0])
	if il == 0 {
		c.err = invalidf(off, "bad element ID (first byte 0x%02X) in %s", c.b[0], idName(c.parent))
		return false
	}
	if len(c.b) < il+1 {
		c.err = invalidf(off, "element header cut short by its parent %s", idName(c.parent))
		return false
	}
	id := decodeID(c.b[:il])
	sl := sizeLen(c.b[il])
	n := il + sl
	switch {
	case sl == 0:
		c.err = invalidf(off, "bad size of %s (first byte 0x00)", idName(id))
	case len(c.b) < n:
		c.err = invalidf(off, "element header cut short by its parent %s", idName(c.parent))
	}
	if c.err != nil {
		return false
	}
	size := decodeSize(c.b[il:n])
	switch {
	case size == unknownSize:
		c.err = invalidf(off, "%s with unknown size inside %s", idName(id), idName(c.parent))
	case size > int64(len(c.b)-n):
		c.err = invalidf(off, "%s (%d bytes) is bigger than its parent %s", idName(id), size, idName(c.parent))
	}
	if c.err != nil {
		return false
	}
	c.ch = child{id: id, data: c.b[n : n+int(size)], off: off, dataOff: off + int64(n)}
	c.b = c.b[n+int(size):]
	c.off += int64(n) + size
	return true
}
