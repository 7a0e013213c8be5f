package remux

import (
	"bytes"
	"encoding/hex"

	"github.com/kvsd/kvsd/internal/h26x"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/mkv/mkvtest"
)

// Matroska for tests, on mkv.Writer: headers with chosen tracks, and Clusters the way KVS
// producers write them (unknown size, one per GOP), with 8-byte sizes and integers.

// elem encodes an element with an 8-byte size.
func elem(id uint32, payload ...[]byte) []byte {
	w := mkv.Writer{Size: 8}
	w.Bytes(id, bytes.Join(payload, nil))
	return w.Buf
}

func uintElem(id uint32, v uint64) []byte {
	w := mkv.Writer{Size: 8, UintSize: 8}
	w.Uint(id, v)
	return w.Buf
}

// trackEntry is a TrackEntry; a nil codecPrivate leaves the element out.
func trackEntry(number, typ uint64, codecID string, codecPrivate []byte) mkv.TrackEntry {
	return mkv.TrackEntry{Track: mkv.Track{Number: number, Type: typ, CodecID: codecID, CodecPrivate: codecPrivate}}
}

// mkvHeader is an EBML header, an unknown-size Segment, Info (1 ms ticks) and Tracks.
func mkvHeader(entries ...mkv.TrackEntry) []byte { return mkvHeaderScale(1_000_000, entries...) }

// mkvHeaderScale is mkvHeader with another TimecodeScale (ns per tick).
func mkvHeaderScale(scale uint64, entries ...mkv.TrackEntry) []byte {
	return mkvtest.Wide.Header(scale, entries...)
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
	bs := make([]mkvtest.Block, len(blocks))
	for i, b := range blocks {
		bs[i] = mkvtest.Block{Track: b.track, Rel: b.rel, Key: b.key, Data: b.data}
	}
	return mkvtest.Wide.Cluster(timecode, bs...)
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
