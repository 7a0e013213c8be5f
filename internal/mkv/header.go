package mkv

import "bytes"

// Track is one TrackEntry of the Tracks element.
type Track struct {
	Number       uint64
	UID          uint64
	Type         uint64 // 1 video, 2 audio
	CodecID      string
	CodecPrivate []byte
	Name         string
	Width        uint64 // video only
	Height       uint64 // video only
}

// Header describes the part of a document before its first Cluster.
type Header struct {
	// Raw holds, verbatim and in order, the EBML header, the Segment's ID
	// and size field, and every level-1 element before the first Cluster
	// (SeekHead, Void, Info, Tracks, Tags, ...). Replaying Raw in front of a
	// stored Cluster yields a playable document; the Segment size is kept
	// as sent, so for a known-size Segment (file uploads) it no longer
	// matches and a writer may want to make it unknown.
	Raw           []byte
	TimecodeScale uint64 // nanoseconds per tick
	Tracks        []Track
	SegmentUID    []byte
}

// defaultTimecodeScale is Matroska's default: 1 ms ticks.
const defaultTimecodeScale = 1_000_000

// maxTracks caps TrackEntries per document. Matroska sets no limit, but a
// few hundred bytes of input must not turn into a huge []Track; real
// streams carry one to three tracks.
const maxTracks = 64

// parseEBMLHeader checks the EBML header. Only DocType matters: it must
// name a Matroska flavour. Older KVS producers pad it with a NUL
// ("matroska\x00"), which EBML allows for strings. A missing DocType means
// "matroska".
func parseEBMLHeader(e child) error {
	c := childrenOf(e, IDEBML)
	for c.next() {
		if c.ch.id != IDDocType {
			continue
		}
		if dt := parseString(c.ch.data); dt != "matroska" && dt != "webm" {
			return invalidf(c.ch.off, "DocType %q is neither matroska nor webm", dt)
		}
	}
	return c.err
}

// parseInfo reads TimecodeScale and SegmentUID.
func parseInfo(e child, hdr *Header) error {
	c := childrenOf(e, IDInfo)
	for c.next() {
		switch c.ch.id {
		case IDTimecodeScale:
			v, err := parseUint(c.ch)
			if err != nil {
				return err
			}
			if v == 0 {
				return invalidf(c.ch.off, "TimecodeScale 0")
			}
			hdr.TimecodeScale = v
		case IDSegmentUID:
			hdr.SegmentUID = bytes.Clone(c.ch.data)
		}
	}
	return c.err
}

// parseTracks appends every TrackEntry to hdr.Tracks.
func parseTracks(e child, hdr *Header) error {
	c := childrenOf(e, IDTracks)
	for c.next() {
		if c.ch.id != IDTrackEntry {
			continue
		}
		if len(hdr.Tracks) == maxTracks {
			return invalidf(c.ch.off, "more than %d tracks", maxTracks)
		}
		t, err := parseTrackEntry(c.ch)
		if err != nil {
			return err
		}
		hdr.Tracks = append(hdr.Tracks, t)
	}
	return c.err
}

// parseTrackEntry decodes one TrackEntry. Byte slices are copied so a Track
// does not pin the header buffer.
func parseTrackEntry(e child) (Track, error) {
	var t Track
	c := childrenOf(e, IDTrackEntry)
	for c.next() {
		var err error
		switch c.ch.id {
		case IDTrackNumber:
			t.Number, err = parseUint(c.ch)
		case IDTrackUID:
			t.UID, err = parseUint(c.ch)
		case IDTrackType:
			t.Type, err = parseUint(c.ch)
		case IDCodecID:
			t.CodecID = parseString(c.ch.data)
		case IDCodecPrivate:
			t.CodecPrivate = bytes.Clone(c.ch.data)
		case IDTrackName:
			t.Name = parseString(c.ch.data)
		case IDVideo:
			err = parseVideo(c.ch, &t)
		}
		if err != nil {
			return t, err
		}
	}
	if c.err != nil {
		return t, c.err
	}
	if t.Number == 0 {
		return t, invalidf(e.off, "TrackEntry without a TrackNumber")
	}
	return t, nil
}

// parseVideo reads the picture size from a Video element.
func parseVideo(e child, t *Track) error {
	c := childrenOf(e, IDVideo)
	for c.next() {
		var err error
		switch c.ch.id {
		case IDPixelWidth:
			t.Width, err = parseUint(c.ch)
		case IDPixelHeight:
			t.Height, err = parseUint(c.ch)
		}
		if err != nil {
			return err
		}
	}
	return c.err
}

// parseUint decodes an unsigned integer element.
func parseUint(ch child) (uint64, error) {
	v, ok := decodeUint(ch.data)
	if !ok {
		return 0, invalidf(ch.off, "%s has %d bytes, an integer has at most 8", idName(ch.id), len(ch.data))
	}
	return v, nil
}

// parseString decodes an EBML string, which may be padded with NULs.
func parseString(b []byte) string {
	return string(bytes.TrimRight(b, "\x00"))
}
