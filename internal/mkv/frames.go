package mkv

import (
	"bytes"
	"errors"
	"io"
)

// Frame is one frame of a document held in memory, as ReadFrames returns it.
type Frame struct {
	Track uint64
	// Timecode is absolute, in TimecodeScale ticks: the Cluster's Timecode
	// plus the block's relative timecode (which may be negative).
	Timecode int64
	// Keyframe is the SimpleBlock key flag; for a BlockGroup, the group has
	// no ReferenceBlock.
	Keyframe bool
	// Data is the frame as stored, aliasing the input of ReadFrames.
	Data []byte
}

// FramePlace is a Frame by where it lies in its fragment's media instead of its bytes: Offset
// and Size bytes from the start of the media ClusterFrames read (a stored frame table).
type FramePlace struct {
	Track        uint64
	Timecode     int64
	Keyframe     bool
	Offset, Size int64
}

// Block header lacing bits (Matroska: 00 none, 01 Xiph, 11 EBML, 10 fixed).
const flagLacing = 0x06

// ReadFrames parses one Matroska document held in memory (its header,
// Clusters and any Tags, e.g. a stored fragment's header bytes followed by
// its media bytes) and returns its header and every SimpleBlock or Block
// frame in file order. Frame data aliases data; nothing is copied but the
// header fields.
//
// The layout rules are the Reader's (it does the walking, with lim). Laced
// blocks are rejected with ErrInvalid: KVS producers never lace, and one
// frame per block is what callers rely on. A second EBML document in data
// is rejected too, because its Tracks could differ from the Header returned.
func ReadFrames(data []byte, lim Limits) (*Header, []Frame, error) {
	r := NewReader(bytes.NewReader(data), lim)
	var (
		hdr    *Header
		frames []Frame
	)
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		switch ev.Kind {
		case KindHeader:
			if hdr != nil {
				return nil, nil, invalidf(ev.Offset, "second EBML document; ReadFrames reads one")
			}
			hdr = ev.Header
		case KindBlock:
			f, err := frameAt(data, ev)
			if err != nil {
				return nil, nil, err
			}
			frames = append(frames, f)
		}
	}
	if hdr == nil {
		return nil, nil, invalidf(0, "no EBML document")
	}
	return hdr, frames, nil
}

// frameAt locates the frame of a KindBlock event in data. The Reader has
// already checked the element's framing and block header, so this only
// finds the bytes again: the event gives the element's offset, and the
// frame is the last Block.Size bytes of the (Simple)Block payload.
func frameAt(data []byte, ev Event) (Frame, error) {
	e, err := elementAt(data, ev.Offset)
	if err != nil {
		return Frame{}, err
	}
	if e.id == IDBlockGroup {
		c := childrenOf(e, IDBlockGroup)
		for c.next() && c.ch.id != IDBlock {
		}
		if c.err != nil || c.ch.id != IDBlock {
			return Frame{}, invalidf(ev.Offset, "BlockGroup without a Block")
		}
		e = c.ch
	}
	b := ev.Block
	// Flags sit just before the frame data.
	if flags := e.data[len(e.data)-b.Size-1]; flags&flagLacing != 0 {
		return Frame{}, invalidf(e.off, "laced block (flags 0x%02X); KVS frames are never laced", flags)
	}
	return Frame{
		Track:    b.Track,
		Timecode: int64(ev.Timecode) + int64(b.RelTimecode),
		Keyframe: b.Keyframe,
		Data:     e.data[len(e.data)-b.Size:],
	}, nil
}

// elementAt decodes the known-size element starting at data[off].
func elementAt(data []byte, off int64) (child, error) {
	if off < 0 || off >= int64(len(data)) {
		return child{}, invalidf(off, "element outside the input")
	}
	c := children{b: data[off:], off: off, parent: IDCluster}
	if !c.next() {
		if c.err == nil {
			c.err = invalidf(off, "no element")
		}
		return child{}, c.err
	}
	return c.ch, nil
}

// ClusterFrames returns the frames of a fragment as the fragment store keeps it: one Cluster
// (known or unknown size), optionally followed by other level-1 elements such as Tags, which
// are not read. It walks media in place: Frame data aliases media and nothing is copied, which
// is what serving fragments per request needs (ReadFrames streams through a Reader, which
// copies every byte). The rules are the Reader's: a Timecode before the first block, no
// lacing, no unknown sizes inside the Cluster, sizes within their parents. dst is reused.
func ClusterFrames(media []byte, dst []Frame) ([]Frame, error) {
	body, off, unknown, err := clusterBody(media)
	if err != nil {
		return nil, err
	}
	c := children{b: body, off: off, parent: IDCluster}
	var tc int64
	hasTC := false
	frames := dst[:0]
	for {
		if id, ok := peekID(c.b); ok && unknown && endsCluster(id) {
			break // what follows the Cluster (Tags), or a second one: not this fragment's frames
		}
		if !c.next() {
			break
		}
		e := c.ch
		switch e.id {
		case IDTimecode:
			if hasTC {
				return nil, invalidf(e.off, "second Timecode in Cluster")
			}
			if len(e.data) > 8 {
				return nil, invalidf(e.off, "Timecode has %d bytes, an integer has at most 8", len(e.data))
			}
			v, _ := decodeUint(e.data)
			tc, hasTC = int64(v), true
		case IDSimpleBlock, IDBlockGroup:
			if !hasTC {
				return nil, invalidf(e.off, "%s before the Timecode of the Cluster", idName(e.id))
			}
			f, err := blockFrame(e)
			if err != nil {
				return nil, err
			}
			f.Timecode += tc
			frames = append(frames, f)
		}
	}
	if c.err != nil {
		return nil, c.err
	}
	if !hasTC {
		return nil, invalidf(0, "Cluster without a Timecode")
	}
	return frames, nil
}

// peekID reads the element ID at the start of b.
func peekID(b []byte) (uint32, bool) {
	if len(b) == 0 {
		return 0, false
	}
	il := idLen(b[0])
	if il == 0 || len(b) < il {
		return 0, false
	}
	return decodeID(b[:il]), true
}

// clusterBody finds the Cluster at the start of media and returns its payload (to the end of
// media when its size is unknown), the payload's offset and whether the size is unknown.
func clusterBody(b []byte) (body []byte, off int64, unknown bool, err error) {
	il := 0
	if len(b) > 0 {
		il = idLen(b[0])
	}
	if il == 0 || len(b) < il+1 || decodeID(b[:il]) != IDCluster {
		return nil, 0, false, invalidf(0, "a stored fragment starts with a Cluster")
	}
	sl := sizeLen(b[il])
	if sl == 0 || len(b) < il+sl {
		return nil, 0, false, invalidf(0, "bad Cluster size")
	}
	n := il + sl
	size := decodeSize(b[il:n])
	if size == unknownSize {
		return b[n:], int64(n), true, nil
	}
	if size > int64(len(b)-n) {
		return nil, 0, false, truncated(0, "Cluster")
	}
	return b[n : n+int(size)], int64(n), false, nil
}

// blockFrame is the frame of a SimpleBlock or BlockGroup element e; its Timecode is relative.
func blockFrame(e child) (Frame, error) {
	var b Block
	var err error
	data := e
	if e.id == IDSimpleBlock {
		b, err = parseBlock(e.data, e.dataOff)
	} else {
		b, err = parseBlockGroup(e)
		c := childrenOf(e, IDBlockGroup)
		for c.next() && c.ch.id != IDBlock {
		}
		data = c.ch
	}
	if err != nil {
		return Frame{}, err
	}
	if flags := data.data[len(data.data)-b.Size-1]; flags&flagLacing != 0 {
		return Frame{}, invalidf(e.off, "laced block (flags 0x%02X); KVS frames are never laced", flags)
	}
	return Frame{Track: b.Track, Timecode: int64(b.RelTimecode), Keyframe: b.Keyframe, Data: data.data[len(data.data)-b.Size:]}, nil
}
