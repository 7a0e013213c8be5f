package mkv

import (
	"errors"
	"io"
)

// Cut is a Cluster that its input ended inside of: its bytes up to the end of a child, and
// what another Reader needs to go on reading the Cluster from the next input (Resume). A
// producer whose connection breaks mid-Cluster may send the rest of it on its next one.
type Cut struct {
	Raw      []byte // the Cluster's ID, size field and children so far, verbatim
	Timecode uint64
	rest     int64 // bytes still to come of a known-size Cluster; -1 for unknown size
}

// Cut returns the Cluster being read, cut at input offset at: the end of a child the caller
// has seen (Offset after the KindClusterStart or KindBlock that reported it). It returns nil
// when no Cluster with a Timecode is open or at is not inside it. The Reader must not be used
// afterwards: the Cut shares its buffer.
func (r *Reader) Cut(at int64) *Cut {
	n := at - r.cl.off
	if r.state != stCluster || !r.cl.hasTC || n <= 0 || n > int64(len(r.cbuf)) {
		return nil
	}
	c := &Cut{Raw: r.cbuf[:n], Timecode: r.cl.tc, rest: -1}
	if !r.cl.unknown {
		c.rest = r.cl.end - at
	}
	return c
}

// StartsDocument reports whether the input begins with an EBML header, reading only the four
// bytes that takes. Call it before the first Next. On an empty input it returns false, io.EOF.
func (r *Reader) StartsDocument() (bool, error) {
	b, err := r.br.Peek(4)
	if len(b) < 4 {
		if errors.Is(err, io.EOF) && len(b) == 0 {
			return false, io.EOF
		}
		return false, readError(err, 0, "first element")
	}
	return decodeID(b) == IDEBML, nil
}

// Resume makes the Reader continue a document whose header an earlier input carried: the input
// starts inside its Segment, or inside the Cluster c when c is not nil (its remaining children
// are appended to c.Raw, which the Reader takes over). No KindHeader is reported for that
// document; a later EBML header starts a new one as usual. Call it before the first Next.
func (r *Reader) Resume(c *Cut) {
	r.doc = document{open: true, segment: true, emitted: true, info: true, tracks: true}
	r.state, r.segEnd = stSegment, -1
	if c == nil {
		return
	}
	// Offsets count from the new input; the Cluster began before it.
	r.cl = clusterState{off: -int64(len(c.Raw)), end: -1, unknown: c.rest < 0, hasTC: true, tc: c.Timecode}
	if c.rest >= 0 {
		r.cl.end = c.rest
	}
	r.cbuf = c.Raw
	r.state = stCluster
}
