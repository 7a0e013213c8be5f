package mkv

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
	dst, tagsAt := openElem(dst, idTags, width)
	dst, tagAt := openElem(dst, idTag, width)
	for _, t := range tags {
		var stAt int
		dst, stAt = openElem(dst, idSimpleTag, width)
		dst = appendString(dst, idTagName, t.Name, width)
		dst = appendString(dst, idTagString, t.Value, width)
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
