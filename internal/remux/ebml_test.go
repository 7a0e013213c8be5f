package remux

import (
	"encoding/binary"
	"encoding/hex"

	"github.com/kvsd/kvsd/internal/h26x"
)

// A small Matroska writer for tests: headers with chosen tracks, and Clusters the way KVS
// producers write them (unknown size, one per GOP).

// Element IDs used by the tests.
const (
	eEBML          = 0x1A45DFA3
	eDocType       = 0x4282
	eSegment       = 0x18538067
	eInfo          = 0x1549A966
	eTimecodeScale = 0x2AD7B1
	eTracks        = 0x1654AE6B
	eTrackEntry    = 0xAE
	eTrackNumber   = 0xD7
	eTrackType     = 0x83
	eCodecID       = 0x86
	eCodecPrivate  = 0x63A2
	eCluster       = 0x1F43B675
	eTimecode      = 0xE7
	eSimpleBlock   = 0xA3
)

// unknownSize is an 8-byte EBML size with every value bit set.
var unknownSize = []byte{0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}

func appendID(b []byte, id uint32) []byte {
	switch {
	case id >= 1<<24:
		return binary.BigEndian.AppendUint32(b, id)
	case id >= 1<<16:
		return append(b, byte(id>>16), byte(id>>8), byte(id))
	case id >= 1<<8:
		return append(b, byte(id>>8), byte(id))
	}
	return append(b, byte(id))
}

// elem encodes an element with an 8-byte size.
func elem(id uint32, payload ...[]byte) []byte {
	n := 0
	for _, p := range payload {
		n += len(p)
	}
	b := appendID(nil, id)
	b = binary.BigEndian.AppendUint64(b, uint64(n)|1<<56)
	for _, p := range payload {
		b = append(b, p...)
	}
	return b
}

func uintElem(id uint32, v uint64) []byte {
	return elem(id, binary.BigEndian.AppendUint64(nil, v))
}

// trackEntry is a TrackEntry; a nil codecPrivate leaves the element out.
func trackEntry(number, typ uint64, codecID string, codecPrivate []byte) []byte {
	parts := [][]byte{uintElem(eTrackNumber, number), uintElem(eTrackType, typ), elem(eCodecID, []byte(codecID))}
	if codecPrivate != nil {
		parts = append(parts, elem(eCodecPrivate, codecPrivate))
	}
	return elem(eTrackEntry, parts...)
}

// mkvHeader is an EBML header, an unknown-size Segment, Info (1 ms ticks) and Tracks.
func mkvHeader(entries ...[]byte) []byte { return mkvHeaderScale(1_000_000, entries...) }

// mkvHeaderScale is mkvHeader with another TimecodeScale (ns per tick).
func mkvHeaderScale(scale uint64, entries ...[]byte) []byte {
	b := elem(eEBML, elem(eDocType, []byte("matroska")))
	b = append(appendID(b, eSegment), unknownSize...)
	b = append(b, elem(eInfo, uintElem(eTimecodeScale, scale))...)
	return append(b, elem(eTracks, entries...)...)
}

// block is one frame of a synthetic Cluster.
type block struct {
	track uint64
	rel   int16 // timecode relative to the Cluster's
	key   bool
	data  []byte
}

// mkvCluster is an unknown-size Cluster with SimpleBlocks.
func mkvCluster(timecode uint64, blocks ...block) []byte {
	b := append(appendID(nil, eCluster), unknownSize...)
	b = append(b, uintElem(eTimecode, timecode)...)
	for _, bl := range blocks {
		p := []byte{0x80 | byte(bl.track), byte(uint16(bl.rel) >> 8), byte(bl.rel), 0}
		if bl.key {
			p[3] = 0x80
		}
		b = append(b, elem(eSimpleBlock, p, bl.data)...)
	}
	return b
}

func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// Decoder configurations of real streams: libx264 High 3.0 640×360, x265 Main 64×64, and
// AAC-LC 48 kHz stereo.
var (
	testAVCC = unhex("0164001effe1001a6764001eacd940a02ff97011000003000100000300320f162d9601000668ebe3cb22c0fdf8f800")
	testHVCC = must(h26x.HEVCConfig(
		[][]byte{unhex("40010c01ffff01600000030090000003000003001e959409")},
		[][]byte{unhex("42010101600000030090000003000003001ea0208105965654a4c2f0168080000003008000000c84")},
		[][]byte{unhex("4401c073c089")},
	))
	testASC = unhex("1190")
)

// Synthetic H.264 access units with 4-byte NAL unit lengths: the muxers do not decode slices.
var (
	testIDR = []byte{0, 0, 0, 4, 0x65, 0x88, 0x84, 0x00}
	testP   = []byte{0, 0, 0, 4, 0x41, 0x9a, 0x21, 0x00}
	testAAC = []byte{0x21, 0x10, 0x04, 0x60, 0x8c, 0x1c}
)

// testHeader is a KVS header with H.264 video and AAC audio.
func testHeader() []byte {
	return mkvHeader(
		trackEntry(1, 1, codecIDH264, testAVCC),
		trackEntry(2, 2, codecIDAAC, testASC),
	)
}
