package mkv

import (
	"encoding/binary"
	"math"
)

// AppendTags appends a Tags element holding one Tag with a SimpleTag
// {TagName, TagString} per entry, in the layout the KVS service uses for the
// tags it adds to GetMedia output: every size field is a 4-byte vint
// (0x10 xx xx xx) and there is no Targets element. A size too large for 4
// bytes (over 256 MiB, never the case for tags) is written with 8 bytes.
func AppendTags(dst []byte, tags []SimpleTag) []byte {
	return appendTags(dst, tags, 4)
}

// AppendTags8 is AppendTags with 8-byte size vints (0x01 00 ...), the layout
// the KVS producer SDK writes for fragment metadata and event tags.
func AppendTags8(dst []byte, tags []SimpleTag) []byte {
	return appendTags(dst, tags, 8)
}

// appendTags writes the tree with size fields of width bytes. Fixed-width
// sizes let each field be reserved first and filled in once the children
// are written, so nothing is measured twice.
func appendTags(dst []byte, tags []SimpleTag, width int) []byte {
	dst, tagsAt := openElem(dst, IDTags, width)
	dst, tagAt := openElem(dst, IDTag, width)
	for _, t := range tags {
		var stAt int
		dst, stAt = openElem(dst, IDSimpleTag, width)
		dst = appendString(dst, IDTagName, t.Name, width)
		dst = appendString(dst, IDTagString, t.Value, width)
		dst = closeElem(dst, stAt, width)
	}
	dst = closeElem(dst, tagAt, width)
	return closeElem(dst, tagsAt, width)
}

// appendString appends a string element with a size field of width bytes.
func appendString(dst []byte, id uint32, s string, width int) []byte {
	dst, at := openElem(dst, id, width)
	dst = append(dst, s...)
	return closeElem(dst, at, width)
}

// openElem appends id and a zeroed size field of width bytes and returns
// where the size field starts.
func openElem(dst []byte, id uint32, width int) ([]byte, int) {
	dst = appendID(dst, id)
	at := len(dst)
	var zero [maxSizeLen]byte
	return append(dst, zero[:width]...), at
}

// closeElem fills in the size field at dst[at:] now that the payload is
// complete. A payload too big for width bytes gets an 8-byte field instead,
// moving the payload up.
func closeElem(dst []byte, at, width int) []byte {
	size := uint64(len(dst) - at - width)
	if !sizeFits(size, width) {
		grow := maxSizeLen - width
		dst = append(dst, make([]byte, grow)...)
		copy(dst[at+maxSizeLen:], dst[at+width:len(dst)-grow])
		width = maxSizeLen
	}
	putSize(dst[at:at+width], size)
	return dst
}

// Writer appends Matroska elements to Buf: the one Matroska writer of kvsd,
// for the producer (`kvsd put`) and, through mkvtest, for tests. It writes
// what it is told in the order it is told, so any layout a producer sends
// can be reproduced byte for byte: the width of every size field is chosen
// (Size), Segment and Cluster can be of unknown size, and integers can be
// padded to a fixed number of bytes (UintN).
//
// Master elements are opened with Start and closed with End, which fills in
// the size; leaf elements are written whole. Writing is appending: there are
// no errors, and a Writer must not be copied once an element is open.
type Writer struct {
	Buf []byte
	// Size is the width in bytes (1–8) of the size fields of the elements
	// started or written from now on; 0 means the narrowest that fits. A
	// size too large for its width gets an 8-byte field instead. The KVS
	// producer SDK writes 8-byte sizes for blocks and tags, 4-byte ones for
	// Tracks and CodecPrivate, and 1-byte ones elsewhere.
	Size int
	// UintSize is the width in bytes (1–8) of the unsigned integers Uint
	// writes; 0 means the fewest bytes that hold the value (at least 1).
	UintSize int

	open []opened // the master elements Start opened, innermost last
}

type opened struct {
	at    int // where the size field starts in Buf
	width int // its width; 0: narrowest, shrunk from maxSizeLen at End
}

// Start opens a master element; End closes it.
func (w *Writer) Start(id uint32) {
	width := w.Size
	if width == 0 {
		width = maxSizeLen
	}
	var at int
	w.Buf, at = openElem(w.Buf, id, width)
	w.open = append(w.open, opened{at: at, width: w.Size})
}

// End closes the innermost element Start opened, filling in its size.
func (w *Writer) End() {
	e := w.open[len(w.open)-1]
	w.open = w.open[:len(w.open)-1]
	if e.width != 0 {
		w.Buf = closeElem(w.Buf, e.at, e.width)
		return
	}
	size := uint64(len(w.Buf) - e.at - maxSizeLen)
	n := narrowest(size)
	copy(w.Buf[e.at+n:], w.Buf[e.at+maxSizeLen:])
	w.Buf = w.Buf[:len(w.Buf)-(maxSizeLen-n)]
	putSize(w.Buf[e.at:e.at+n], size)
}

// StartUnknown appends the header of an element of unknown size (a Segment
// or Cluster as live producers write them), its size field Size bytes wide
// (1 when Size is 0). Its content is whatever follows, up to an element
// that cannot be its child; there is nothing to End.
func (w *Writer) StartUnknown(id uint32) {
	width := max(w.Size, 1)
	w.Buf = appendID(w.Buf, id)
	w.Buf = append(w.Buf, 0xFF>>(width-1))
	for range width - 1 {
		w.Buf = append(w.Buf, 0xFF)
	}
}

// Bytes writes a binary element.
func (w *Writer) Bytes(id uint32, b []byte) {
	w.header(id, len(b))
	w.Buf = append(w.Buf, b...)
}

// String writes a string element.
func (w *Writer) String(id uint32, s string) {
	w.header(id, len(s))
	w.Buf = append(w.Buf, s...)
}

// Uint writes an unsigned integer in UintSize bytes.
func (w *Writer) Uint(id uint32, v uint64) {
	n := w.UintSize
	if n == 0 {
		n = 1
		for n < 8 && v>>(8*n) != 0 {
			n++
		}
	}
	w.UintN(id, v, n)
}

// UintN writes an unsigned integer in exactly n bytes (1–8), the value
// truncated to fit.
func (w *Writer) UintN(id uint32, v uint64, n int) {
	w.header(id, n)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	w.Buf = append(w.Buf, b[8-n:]...)
}

// Int writes a signed integer in the fewest bytes that hold it.
func (w *Writer) Int(id uint32, v int64) {
	n := 1
	for n < 8 && (v < -1<<(8*n-1) || v >= 1<<(8*n-1)) {
		n++
	}
	w.UintN(id, uint64(v), n)
}

// Float writes an 8-byte float.
func (w *Writer) Float(id uint32, v float64) {
	w.UintN(id, math.Float64bits(v), 8)
}

// header appends an element ID and a size field for size bytes of payload.
func (w *Writer) header(id uint32, size int) {
	width := w.Size
	if width == 0 {
		width = narrowest(uint64(size))
	} else if !sizeFits(uint64(size), width) {
		width = maxSizeLen
	}
	w.Buf = appendID(w.Buf, id)
	var b [maxSizeLen]byte
	putSize(b[:width], uint64(size))
	w.Buf = append(w.Buf, b[:width]...)
}

// narrowest returns the narrowest size field that holds size.
func narrowest(size uint64) int {
	n := 1
	for !sizeFits(size, n) {
		n++
	}
	return n
}

// EBMLHeader writes the EBML header of §3.5 of the KVS reference, as the
// producer SDK writes it with 1-byte sizes: EBMLVersion 1, EBMLReadVersion
// 1, EBMLMaxIDLength 4, EBMLMaxSizeLength 8, the DocType, DocTypeVersion 2
// and DocTypeReadVersion 2, integers in one byte.
func (w *Writer) EBMLHeader(docType string) {
	w.Start(IDEBML)
	for _, e := range [...]struct {
		id uint32
		v  uint64
	}{{IDEBMLVersion, 1}, {IDEBMLReadVersion, 1}, {IDEBMLMaxIDLength, maxIDLen}, {IDEBMLMaxSizeLength, maxSizeLen}} {
		w.UintN(e.id, e.v, 1)
	}
	w.String(IDDocType, docType)
	w.UintN(IDDocTypeVersion, 2, 1)
	w.UintN(IDDocTypeReadVersion, 2, 1)
	w.End()
}

// TrackEntry is what Writer.TrackEntry writes: a Track, and audio settings
// (which the Reader does not read).
type TrackEntry struct {
	Track
	SamplingFreq float64 // SamplingFrequency in Hz
	Channels     uint64
}

// TrackEntry writes a TrackEntry with the Writer's widths: TrackNumber,
// then TrackUID (8 bytes), TrackType, CodecID, Name, CodecPrivate (nil:
// none; empty: an empty one), Video (PixelWidth, PixelHeight) and Audio
// (SamplingFrequency, Channels), each left out when zero.
func (w *Writer) TrackEntry(t TrackEntry) {
	w.Start(IDTrackEntry)
	w.Uint(IDTrackNumber, t.Number)
	if t.UID != 0 {
		w.UintN(IDTrackUID, t.UID, 8)
	}
	if t.Type != 0 {
		w.Uint(IDTrackType, t.Type)
	}
	if t.CodecID != "" {
		w.String(IDCodecID, t.CodecID)
	}
	if t.Name != "" {
		w.String(IDTrackName, t.Name)
	}
	if t.CodecPrivate != nil {
		w.Bytes(IDCodecPrivate, t.CodecPrivate)
	}
	if t.Width != 0 || t.Height != 0 {
		w.Start(IDVideo)
		w.Uint(IDPixelWidth, t.Width)
		w.Uint(IDPixelHeight, t.Height)
		w.End()
	}
	if t.SamplingFreq != 0 || t.Channels != 0 {
		w.Start(IDAudio)
		w.Float(IDSamplingFrequency, t.SamplingFreq)
		w.Uint(IDChannels, t.Channels)
		w.End()
	}
	w.End()
}

// SimpleBlock writes a SimpleBlock: the track number (below 127), the
// timecode relative to the Cluster's, the flags (0x80: keyframe) and the
// frame.
func (w *Writer) SimpleBlock(track uint64, rel int16, flags byte, frame []byte) {
	w.header(IDSimpleBlock, 4+len(frame))
	w.Buf = appendBlockHeader(w.Buf, track, rel, flags)
	w.Buf = append(w.Buf, frame...)
}

// BlockGroup writes a BlockGroup holding a Block (as SimpleBlock, with
// flags 0: a BlockGroup marks keyframes by having no ReferenceBlock) and a
// ReferenceBlock per entry of refs (timecodes relative to this block's).
func (w *Writer) BlockGroup(track uint64, rel int16, frame []byte, refs ...int64) {
	w.Start(IDBlockGroup)
	w.header(IDBlock, 4+len(frame))
	w.Buf = appendBlockHeader(w.Buf, track, rel, 0)
	w.Buf = append(w.Buf, frame...)
	for _, r := range refs {
		w.Int(IDReferenceBlock, r)
	}
	w.End()
}

func appendBlockHeader(dst []byte, track uint64, rel int16, flags byte) []byte {
	return append(dst, 0x80|byte(track), byte(uint16(rel)>>8), byte(rel), flags)
}

// Tags writes a Tags element holding one Tag with a SimpleTag per entry,
// no Targets (the KVS layout; see AppendTags), with Size-byte size fields
// (8 when Size is 0).
func (w *Writer) Tags(tags []SimpleTag) {
	width := w.Size
	if width == 0 {
		width = maxSizeLen
	}
	w.Buf = appendTags(w.Buf, tags, width)
}
