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
	if e.id == idBlockGroup {
		c := childrenOf(e, idBlockGroup)
		for c.next() && c.ch.id != idBlock {
		}
		if c.err != nil || c.ch.id != idBlock {
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
	c := children{b: data[off:], off: off, parent: idCluster}
	if !c.next() {
		if c.err == nil {
			c.err = invalidf(off, "no element")
		}
		return child{}, c.err
	}
	return c.ch, nil
}
