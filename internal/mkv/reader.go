// Package mkv is a streaming EBML/Matroska reader and the small writer kvsd
// needs.
//
// The Reader parses a Matroska stream as it arrives (a PutMedia body) and
// reports it as a sequence of events: one KindHeader per EBML document
// (returned when its first Cluster begins, or when the document ends
// without one), then per Cluster a KindClusterStart as soon as its Timecode
// is read, a KindBlock per SimpleBlock or BlockGroup, and a KindClusterEnd
// carrying the Cluster's bytes verbatim. Tags elements that follow a
// Cluster are reported as KindTags. Header.Raw, every ClusterEnd Raw and
// every Tags Raw, concatenated in order, are the input minus the elements
// the Reader skips. The package knows Matroska, not KVS: fragment rules
// (which Tags belong to which fragment, track checks, timecode ordering)
// are the caller's.
//
// Layout rules applied:
//   - Several documents may follow each other; every EBML header starts a
//     new one (a producer restarting its stream).
//   - Segment and Cluster may have unknown size. An unknown-size Cluster
//     ends at the first element that cannot be its child (another Cluster,
//     Tags, Cues, Chapters, Attachments, SeekHead, Info, Tracks, EBML,
//     Segment) or at the end of input; an unknown-size Segment ends at the
//     next EBML header or Segment.
//   - Every level-1 element before the first Cluster goes into Header.Raw
//     unparsed except Info and Tracks. That includes Tags, wherever they
//     sit relative to Info and Tracks: the simple rule, even though KVS
//     itself may treat Tags before Info as first-fragment metadata.
//     After the first Cluster, Info and Tracks are errors, Tags are
//     reported, and anything else at level 1 (Cues, Chapters, SeekHead,
//     Void, ...) is skipped without being buffered.
//   - A SimpleBlock or BlockGroup at level 1 is skipped and reported as
//     KindStrayBlock.
//   - Resume continues a document from an earlier input: the new input
//     starts inside its Segment, or inside a Cluster that the earlier one
//     was cut off in (Cut).
//   - Void and CRC-32 inside a Cluster are kept in its Raw bytes; CRCs are
//     not checked. Lacing is not interpreted.
//
// Memory is bounded by Limits: no buffer is sized from a size field alone;
// buffers grow as bytes arrive, and the Cluster buffer is reused.
package mkv

import (
	"bufio"
	"errors"
	"io"
	"slices"
)

// Default limits.
const (
	DefaultMaxElementSize = 2 << 20
	DefaultMaxClusterSize = 50_000_000
)

// Limits bounds what the Reader holds in memory. Zero fields take defaults.
type Limits struct {
	// MaxElementSize bounds every buffered non-Cluster element (Tags, the
	// EBML header) and the whole of Header.Raw (Tracks with CodecPrivate is
	// usually most of it). Default DefaultMaxElementSize.
	MaxElementSize int64
	// MaxClusterSize bounds a Cluster, header included. Default
	// DefaultMaxClusterSize, the KVS fragment size limit.
	MaxClusterSize int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxElementSize <= 0 {
		l.MaxElementSize = DefaultMaxElementSize
	}
	if l.MaxClusterSize <= 0 {
		l.MaxClusterSize = DefaultMaxClusterSize
	}
	return l
}

// state is where the Reader is in the element tree.
type state uint8

const (
	stTop     state = iota // level 0: between documents
	stSegment              // level 1: inside a Segment
	stCluster              // level 2: inside a Cluster
	stEOF                  // input ended and everything was reported
)

// document is the EBML document being read.
type document struct {
	open    bool    // an EBML header was read
	segment bool    // its Segment began
	emitted bool    // KindHeader was returned
	off     int64   // offset of the EBML header
	hdr     *Header // being filled until emitted
	info    bool    // Info was read
	tracks  bool    // Tracks was read
}

// Reader reads Matroska events from a stream. It is not safe for concurrent
// use.
type Reader struct {
	br    *bufio.Reader
	lim   Limits
	off   int64 // bytes consumed
	state state
	err   error // sticky: returned by every Next after the first failure
	eof   bool  // the input ended cleanly at an element boundary

	pend    elemHeader // an element header read by a child that it ended
	hasPend bool

	doc    document
	segEnd int64 // absolute end of a known-size Segment, or -1
	cl     clusterState

	cbuf []byte // the current Cluster, reused
	ebuf []byte // the current Tags element, reused
}

// bufSize is the bufio buffer; frames larger than this are read straight
// into the Cluster buffer, bypassing it. A server holds one per PutMedia
// session, so it is kept small.
const bufSize = 32 << 10

// NewReader returns a Reader of r with the given limits.
func NewReader(r io.Reader, lim Limits) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, bufSize), lim: lim.withDefaults(), segEnd: -1}
}

// Offset returns the number of input bytes consumed so far.
func (r *Reader) Offset() int64 { return r.off }

// Next returns the next event. It returns io.EOF once the input has ended
// cleanly and every event was returned, and an error wrapping ErrInvalid or
// ErrTooLarge for bad input. After an error every call returns it again.
func (r *Reader) Next() (Event, error) {
	for r.err == nil {
		ev, ok, err := r.step()
		if err != nil {
			r.err = err
			break
		}
		if ok {
			return ev, nil
		}
	}
	return Event{}, r.err
}

// step consumes at most one element and reports whether it produced an
// event.
func (r *Reader) step() (Event, bool, error) {
	switch r.state {
	case stSegment:
		return r.stepSegment()
	case stCluster:
		return r.stepCluster()
	case stEOF:
		return Event{}, false, io.EOF
	}
	return r.stepTop()
}

// nextHeader returns the element header pushed back by unread, or reads
// one.
func (r *Reader) nextHeader() (elemHeader, error) {
	if r.hasPend {
		r.hasPend = false
		return r.pend, nil
	}
	if r.eof {
		return elemHeader{off: r.off}, io.EOF
	}
	h, err := r.readHeader()
	if errors.Is(err, io.EOF) {
		r.eof = true
	}
	return h, err
}

// unread pushes back h, which ended its parent, for the parent's parent.
func (r *Reader) unread(h elemHeader) {
	r.pend, r.hasPend = h, true
}

// stepTop handles a level-0 element.
func (r *Reader) stepTop() (Event, bool, error) {
	h, err := r.nextHeader()
	if errors.Is(err, io.EOF) {
		return r.endDocument(true)
	}
	if err != nil {
		return Event{}, false, err
	}
	switch h.id {
	case IDEBML:
		if r.doc.open && !r.doc.emitted {
			r.unread(h)
			return r.endDocument(false)
		}
		return Event{}, false, r.beginDocument(&h)
	case IDSegment:
		return Event{}, false, r.beginSegment(&h)
	case IDVoid, IDCRC32:
		return Event{}, false, r.skip(&h)
	}
	return Event{}, false, invalidf(h.off, "unexpected %s at level 0", idName(h.id))
}

// endDocument is called when a document ends (end of input, or a new EBML
// header) and returns its KindHeader if no Cluster has done so already.
func (r *Reader) endDocument(eof bool) (Event, bool, error) {
	if eof {
		r.state = stEOF
	}
	if !r.doc.open || r.doc.emitted {
		r.doc = document{}
		if eof {
			return Event{}, false, io.EOF
		}
		return Event{}, false, nil
	}
	if err := r.checkHeader(r.off); err != nil {
		return Event{}, false, err
	}
	ev := r.headerEvent()
	r.doc = document{}
	return ev, true, nil
}

// beginDocument reads an EBML header and starts a new document.
func (r *Reader) beginDocument(h *elemHeader) error {
	if h.size == unknownSize {
		return invalidf(h.off, "EBML header with unknown size")
	}
	if h.total() > r.lim.MaxElementSize {
		return tooLarge(h.off, "EBML header", h.total(), r.lim.MaxElementSize)
	}
	raw, err := r.readElem(nil, h)
	if err != nil {
		return err
	}
	if err := parseEBMLHeader(h.child(raw)); err != nil {
		return err
	}
	r.doc = document{
		open: true,
		off:  h.off,
		hdr:  &Header{Raw: raw, TimecodeScale: defaultTimecodeScale},
	}
	return nil
}

// beginSegment enters the Segment of the current document.
func (r *Reader) beginSegment(h *elemHeader) error {
	if !r.doc.open || r.doc.segment {
		return invalidf(h.off, "Segment without an EBML header")
	}
	r.doc.segment = true
	r.doc.hdr.Raw = append(r.doc.hdr.Raw, h.bytes()...)
	r.segEnd = -1
	if h.size != unknownSize {
		r.segEnd = h.end()
	}
	r.state = stSegment
	return nil
}

// stepSegment handles a level-1 element.
func (r *Reader) stepSegment() (Event, bool, error) {
	if r.segEnd >= 0 && r.off >= r.segEnd {
		r.state = stTop
		return Event{}, false, nil
	}
	h, err := r.nextHeader()
	if errors.Is(err, io.EOF) {
		if r.segEnd >= 0 {
			return Event{}, false, truncated(r.off, "Segment")
		}
		return r.endDocument(true)
	}
	if err != nil {
		return Event{}, false, err
	}
	if endsSegment(h.id) {
		if r.segEnd >= 0 {
			return Event{}, false, invalidf(h.off, "%s inside a Segment", idName(h.id))
		}
		r.unread(h)
		r.state = stTop
		return Event{}, false, nil
	}
	if err := r.checkChild(&h, r.segEnd, IDSegment); err != nil {
		return Event{}, false, err
	}
	switch {
	case h.id == IDCluster:
		return r.beginCluster(&h)
	case !r.doc.emitted:
		return Event{}, false, r.readHeaderElem(&h)
	case h.id == IDInfo || h.id == IDTracks:
		return Event{}, false, invalidf(h.off, "%s after the first Cluster", idName(h.id))
	case h.id == IDTags:
		return r.readTags(&h)
	case h.id == IDSimpleBlock || h.id == IDBlockGroup:
		return Event{Kind: KindStrayBlock, Offset: h.off, Size: h.total()}, true, r.skip(&h)
	}
	return Event{}, false, r.skip(&h)
}

// checkChild checks that h fits its parent, which ends at end (-1 when its
// size is unknown). Only a Cluster may have unknown size at level 1 or
// below; its end is worked out as it is read.
func (r *Reader) checkChild(h *elemHeader, end int64, parent uint32) error {
	if h.size == unknownSize {
		if h.id == IDCluster {
			return nil
		}
		return invalidf(h.off, "%s with unknown size", idName(h.id))
	}
	if end >= 0 && h.end() > end {
		return invalidf(h.off, "%s (%d bytes) is bigger than its parent %s", idName(h.id), h.size, idName(parent))
	}
	return nil
}

// readHeaderElem appends a level-1 element before the first Cluster to
// Header.Raw, decoding Info and Tracks.
func (r *Reader) readHeaderElem(h *elemHeader) error {
	hdr := r.doc.hdr
	if need := int64(len(hdr.Raw)) + h.total(); need > r.lim.MaxElementSize {
		return tooLarge(h.off, "header before the first Cluster", need, r.lim.MaxElementSize)
	}
	if (h.id == IDInfo && r.doc.info) || (h.id == IDTracks && r.doc.tracks) {
		return invalidf(h.off, "second %s", idName(h.id))
	}
	start := len(hdr.Raw)
	var err error
	if hdr.Raw, err = r.readElem(hdr.Raw, h); err != nil {
		return err
	}
	switch h.id {
	case IDInfo:
		r.doc.info = true
		return parseInfo(h.child(hdr.Raw[start:]), hdr)
	case IDTracks:
		r.doc.tracks = true
		return parseTracks(h.child(hdr.Raw[start:]), hdr)
	}
	return nil
}

// checkHeader reports a document whose header lacks Info or Tracks when it
// must be complete (first Cluster or end of document at offset off).
func (r *Reader) checkHeader(off int64) error {
	switch {
	case !r.doc.segment:
		return invalidf(off, "document at offset %d has no Segment", r.doc.off)
	case !r.doc.info:
		return invalidf(off, "document at offset %d has no Info", r.doc.off)
	case !r.doc.tracks:
		return invalidf(off, "document at offset %d has no Tracks", r.doc.off)
	}
	return nil
}

// headerEvent hands the finished Header to the caller.
func (r *Reader) headerEvent() Event {
	r.doc.emitted = true
	hdr := r.doc.hdr
	r.doc.hdr = nil
	// Clipped so that a caller appending to Raw can never write into
	// memory another slice shares.
	hdr.Raw = slices.Clip(hdr.Raw)
	return Event{Kind: KindHeader, Offset: r.doc.off, Header: hdr}
}
