package mkv

import (
	"encoding/binary"
	"errors"
	"io"
	"slices"
)

// clusterState tracks the Cluster being read. Its bytes accumulate in
// Reader.cbuf, the only copy the Reader makes of them.
type clusterState struct {
	off     int64  // offset of the Cluster element
	end     int64  // where it must end: its own end, or a known-size Segment's; -1 if open
	unknown bool   // the Cluster has unknown size
	hasTC   bool   // its Timecode was read
	tc      uint64 // its Timecode
}

// beginCluster starts a Cluster at level 1. The first Cluster of a document
// completes its header, so that KindHeader is returned first.
func (r *Reader) beginCluster(h *elemHeader) (Event, bool, error) {
	if !r.doc.emitted {
		if err := r.checkHeader(h.off); err != nil {
			return Event{}, false, err
		}
	}
	if h.size != unknownSize && h.total() > r.lim.MaxClusterSize {
		return Event{}, false, tooLarge(h.off, "Cluster", h.total(), r.lim.MaxClusterSize)
	}
	r.cl = clusterState{off: h.off, end: r.segEnd, unknown: h.size == unknownSize}
	if !r.cl.unknown {
		r.cl.end = h.end()
	}
	r.cbuf = append(r.cbuf[:0], h.bytes()...)
	r.state = stCluster
	if !r.doc.emitted {
		return r.headerEvent(), true, nil
	}
	return Event{}, false, nil
}

// stepCluster handles one child of the current Cluster, or its end.
func (r *Reader) stepCluster() (Event, bool, error) {
	if r.cl.end >= 0 && r.off >= r.cl.end {
		return r.endCluster()
	}
	h, err := r.nextHeader()
	if errors.Is(err, io.EOF) {
		if r.cl.end >= 0 {
			return Event{}, false, truncated(r.cl.off, "Cluster")
		}
		return r.endCluster()
	}
	if err != nil {
		return Event{}, false, err
	}
	if r.cl.unknown && endsCluster(h.id) {
		r.unread(h)
		return r.endCluster()
	}
	if h.size == unknownSize {
		return Event{}, false, invalidf(h.off, "%s with unknown size inside Cluster", idName(h.id))
	}
	if r.cl.end >= 0 && h.end() > r.cl.end {
		return Event{}, false, invalidf(h.off, "%s (%d bytes) is bigger than its parent Cluster", idName(h.id), h.size)
	}
	if need := int64(len(r.cbuf)) + h.total(); need > r.lim.MaxClusterSize {
		return Event{}, false, tooLarge(r.cl.off, "Cluster", need, r.lim.MaxClusterSize)
	}
	switch h.id {
	case IDTimecode:
		return r.readTimecode(&h)
	case IDSimpleBlock, IDBlockGroup:
		return r.readBlock(&h)
	}
	r.cbuf, err = r.readElem(r.cbuf, &h)
	return Event{}, false, err
}

// readTimecode reads the Cluster's Timecode; the Cluster is announced now,
// before its frames arrive, so the server can acknowledge it early.
func (r *Reader) readTimecode(h *elemHeader) (Event, bool, error) {
	if r.cl.hasTC {
		return Event{}, false, invalidf(h.off, "second Timecode in Cluster at offset %d", r.cl.off)
	}
	if h.size > 8 {
		return Event{}, false, invalidf(h.off, "Timecode has %d bytes, an integer has at most 8", h.size)
	}
	start := len(r.cbuf) + h.n
	var err error
	if r.cbuf, err = r.readElem(r.cbuf, h); err != nil {
		return Event{}, false, err
	}
	r.cl.tc, _ = decodeUint(r.cbuf[start:])
	r.cl.hasTC = true
	return Event{Kind: KindClusterStart, Offset: r.cl.off, Timecode: r.cl.tc}, true, nil
}

// readBlock reads a SimpleBlock or BlockGroup into the Cluster buffer and
// describes it.
func (r *Reader) readBlock(h *elemHeader) (Event, bool, error) {
	if !r.cl.hasTC {
		return Event{}, false, invalidf(h.off, "%s before the Timecode of Cluster at offset %d", idName(h.id), r.cl.off)
	}
	start := len(r.cbuf)
	var err error
	if r.cbuf, err = r.readElem(r.cbuf, h); err != nil {
		return Event{}, false, err
	}
	e := h.child(r.cbuf[start:])
	var b Block
	if h.id == IDSimpleBlock {
		b, err = parseBlock(e.data, e.dataOff)
	} else {
		b, err = parseBlockGroup(e)
	}
	if err != nil {
		return Event{}, false, err
	}
	return Event{Kind: KindBlock, Offset: h.off, Timecode: r.cl.tc, Block: b}, true, nil
}

// endCluster finishes the current Cluster and hands out its bytes.
func (r *Reader) endCluster() (Event, bool, error) {
	if !r.cl.hasTC {
		return Event{}, false, invalidf(r.cl.off, "Cluster without a Timecode")
	}
	r.state = stSegment
	// Clipped: a caller appending to Raw gets its own copy instead of
	// writing into the buffer the next Cluster reuses.
	return Event{Kind: KindClusterEnd, Offset: r.cl.off, Timecode: r.cl.tc, Raw: slices.Clip(r.cbuf)}, true, nil
}

// SwapCluster hands the caller the bytes of the Cluster the last KindClusterEnd reported
// (the same bytes as its Raw, with whatever capacity the buffer has) and makes buf, emptied,
// the buffer the Reader reads the next Cluster into. The caller owns what it gets back and the
// Reader owns buf from now on; buf may be nil. This saves copying every Cluster out of the
// Reader: a caller that keeps the bytes swaps in a buffer it is done with instead.
//
// Call it before the first Cluster (to give the Reader a buffer of the right size; it returns
// nil or an empty buffer then) or after a KindClusterEnd and before the next Cluster starts.
// While a Cluster is being read it returns nil and does not take buf.
func (r *Reader) SwapCluster(buf []byte) []byte {
	if r.state == stCluster {
		return nil
	}
	b := r.cbuf
	r.cbuf = buf[:0]
	return b
}

// Block header flags.
const flagKeyframe = 0x80

// parseBlock decodes a (Simple)Block header: track number vint, int16
// relative timecode, flags. off is the payload's offset.
func parseBlock(b []byte, off int64) (Block, error) {
	if len(b) == 0 {
		return Block{}, invalidf(off, "empty block")
	}
	n := sizeLen(b[0])
	if n == 0 {
		return Block{}, invalidf(off, "bad block track number (first byte 0x00)")
	}
	if len(b) < n+3 {
		return Block{}, invalidf(off, "block of %d bytes is shorter than its header", len(b))
	}
	track := decodeSize(b[:n])
	if track <= 0 {
		return Block{}, invalidf(off, "block with track number %d", max(track, 0))
	}
	return Block{
		Track:       uint64(track),
		RelTimecode: int16(binary.BigEndian.Uint16(b[n:])),
		Keyframe:    b[n+2]&flagKeyframe != 0,
		Size:        len(b) - n - 3,
	}, nil
}

// parseBlockGroup finds the Block of a BlockGroup; the group is a keyframe
// when it has no ReferenceBlock.
func parseBlockGroup(e child) (Block, error) {
	var blk Block
	found, ref := false, false
	c := childrenOf(e, IDBlockGroup)
	for c.next() {
		switch c.ch.id {
		case IDBlock:
			if found {
				return Block{}, invalidf(c.ch.off, "second Block in BlockGroup")
			}
			var err error
			if blk, err = parseBlock(c.ch.data, c.ch.dataOff); err != nil {
				return Block{}, err
			}
			found = true
		case IDReferenceBlock:
			ref = true
		}
	}
	if c.err != nil {
		return Block{}, c.err
	}
	if !found {
		return Block{}, invalidf(e.off, "BlockGroup without a Block")
	}
	blk.Keyframe = !ref
	return blk, nil
}
