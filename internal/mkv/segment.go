package mkv

// UnknownSegmentSize returns header with its Segment's size field set to "unknown" (all value
// bits one, same width), copying only when it was a known size. A header is replayed in front
// of every single fragment on output (GetMedia); a size that counted a whole uploaded file
// would be wrong there. Input that does not start with an EBML header and a Segment is
// returned as is.
func UnknownSegmentSize(header []byte) []byte {
	at, n, ok := segmentSizeField(header)
	if !ok || decodeSize(header[at:at+n]) == unknownSize {
		return header
	}
	out := append([]byte(nil), header...)
	out[at] = byte(0x80>>(n-1)) | 0xFF>>n // marker bit, then all value bits set
	for i := at + 1; i < at+n; i++ {
		out[i] = 0xFF
	}
	return out
}

// segmentSizeField finds the offset and width of the Segment's size vint.
func segmentSizeField(b []byte) (at, n int, ok bool) {
	pos := 0
	for _, want := range []uint32{IDEBML, IDSegment} {
		if pos >= len(b) {
			return 0, 0, false
		}
		il := idLen(b[pos])
		if il == 0 || pos+il >= len(b) || decodeID(b[pos:pos+il]) != want {
			return 0, 0, false
		}
		pos += il
		sl := sizeLen(b[pos])
		if sl == 0 || pos+sl > len(b) {
			return 0, 0, false
		}
		if want == IDSegment {
			return pos, sl, true
		}
		size := decodeSize(b[pos : pos+sl])
		if size < 0 || int64(pos+sl)+size > int64(len(b)) {
			return 0, 0, false
		}
		pos += sl + int(size)
	}
	return 0, 0, false
}
