package producer

import (
	"encoding/binary"
	"math"

	"github.com/kvsd/kvsd/internal/mkv"
)

// The hand-written writer kvsd had before mkv.Writer, kept only to prove
// that the new one writes the same bytes (TestWriterMatchesOld).
//
// The writer below produces the byte layout of the KVS producer SDK's MKV
// generator (kvs-protocol.md §3.5), so that kvsd and AWS see exactly what a
// kvssink would send: fixed-width sizes where the SDK uses them, unknown-size
// Segment and Clusters, a 1 ms TimecodeScale and absolute epoch-millisecond
// cluster timecodes.

// oldMuxingApp names the writer in Info (MuxingApp and WritingApp).
const oldMuxingApp = "kvsd producer"

// oldEbmlHeader is the EBML header of §3.5: EBMLVersion 1, ReadVersion 1,
// MaxIDLength 4, MaxSizeLength 8, DocType "matroska", DocTypeVersion 2,
// DocTypeReadVersion 2.
var oldEbmlHeader = []byte{
	0x1A, 0x45, 0xDF, 0xA3, 0xA3,
	0x42, 0x86, 0x81, 0x01,
	0x42, 0xF7, 0x81, 0x01,
	0x42, 0xF2, 0x81, 0x04,
	0x42, 0xF3, 0x81, 0x08,
	0x42, 0x82, 0x88, 'm', 'a', 't', 'r', 'o', 's', 'k', 'a',
	0x42, 0x87, 0x81, 0x02,
	0x42, 0x85, 0x81, 0x02,
}

// oldSegmentUnknown opens a Segment of unknown size.
var oldSegmentUnknown = []byte{0x18, 0x53, 0x80, 0x67, 0xFF}

// oldAppendHeader appends the EBML header, the Segment start, Info and Tracks
// for one PutMedia body. uid is the SegmentUID (16 bytes), trackUID the
// TrackUID.
func oldAppendHeader(dst []byte, t Track, uid [16]byte, trackUID uint64) []byte {
	dst = append(dst, oldEbmlHeader...)
	dst = append(dst, oldSegmentUnknown...)

	// Info, with a 2-byte size as the SDK writes it.
	var info []byte
	info = append(info, 0x73, 0xA4, 0x90)
	info = append(info, uid[:]...)
	info = append(info, 0x2A, 0xD7, 0xB1, 0x88)
	info = binary.BigEndian.AppendUint64(info, 1_000_000) // 1 ms ticks
	info = oldAppendShortString(info, []byte{0x7B, 0xA9}, oldMuxingApp)
	info = oldAppendShortString(info, []byte{0x4D, 0x80}, oldMuxingApp)
	info = oldAppendShortString(info, []byte{0x57, 0x41}, oldMuxingApp)
	dst = append(dst, 0x15, 0x49, 0xA9, 0x66)
	dst = binary.BigEndian.AppendUint16(dst, 0x4000|uint16(len(info)))
	dst = append(dst, info...)

	// Tracks > TrackEntry with 4-byte sizes.
	var entry []byte
	entry = append(entry, 0xD7, 0x81, 0x01)
	entry = append(entry, 0x73, 0xC5, 0x88)
	entry = binary.BigEndian.AppendUint64(entry, trackUID)
	entry = append(entry, 0x83, 0x81, 0x01)
	entry = oldAppendShortString(entry, []byte{0x86}, t.CodecID)
	entry = append(entry, 0x63, 0xA2)
	entry = oldAppendSize4(entry, len(t.CodecPrivate))
	entry = append(entry, t.CodecPrivate...)
	entry = append(entry, 0xE0, 0x10, 0x00, 0x00, 0x08, 0xB0, 0x82)
	entry = binary.BigEndian.AppendUint16(entry, oldClampU16(t.Width))
	entry = append(entry, 0xBA, 0x82)
	entry = binary.BigEndian.AppendUint16(entry, oldClampU16(t.Height))

	dst = append(dst, 0x16, 0x54, 0xAE, 0x6B)
	dst = oldAppendSize4(dst, 1+4+len(entry))
	dst = append(dst, 0xAE)
	dst = oldAppendSize4(dst, len(entry))
	return append(dst, entry...)
}

// oldAppendClusterStart opens an unknown-size Cluster with an 8-byte Timecode
// (epoch milliseconds) and Position 0, as the SDK does.
func oldAppendClusterStart(dst []byte, timecode int64) []byte {
	dst = append(dst, 0x1F, 0x43, 0xB6, 0x75, 0xFF, 0xE7, 0x88)
	dst = binary.BigEndian.AppendUint64(dst, uint64(timecode))
	return append(dst, 0xA7, 0x81, 0x00)
}

// oldAppendSimpleBlock appends a SimpleBlock of track 1 with an 8-byte size,
// the timecode relative to its Cluster and the key flag.
func oldAppendSimpleBlock(dst []byte, rel int16, key bool, data []byte) []byte {
	dst = append(dst, 0xA3)
	dst = oldAppendSize8(dst, 4+len(data))
	dst = append(dst, 0x81)
	dst = binary.BigEndian.AppendUint16(dst, uint16(rel))
	var flags byte
	if key {
		flags = 0x80
	}
	dst = append(dst, flags)
	return append(dst, data...)
}

// oldSimpleBlockOverhead is what oldAppendSimpleBlock adds to a frame.
const oldSimpleBlockOverhead = 1 + 8 + 4

// oldAppendTags appends one Tags element (8-byte sizes, no Targets) holding
// one Tag with the given SimpleTags, the SDK's layout for event and
// fragment metadata (§5.2).
func oldAppendTags(dst []byte, tags []mkv.SimpleTag) []byte {
	return mkv.AppendTags8(dst, tags)
}

// oldAppendShortString appends id, a 1-byte size and s; s is at most 126
// bytes (codec IDs, the muxing app).
func oldAppendShortString(dst, id []byte, s string) []byte {
	dst = append(dst, id...)
	dst = append(dst, 0x80|byte(len(s)))
	return append(dst, s...)
}

// oldAppendSize4 appends a 4-byte EBML size vint (0x10 xx xx xx).
func oldAppendSize4(dst []byte, n int) []byte {
	return binary.BigEndian.AppendUint32(dst, 0x10000000|uint32(n))
}

// oldAppendSize8 appends an 8-byte EBML size vint (0x01 00 … ).
func oldAppendSize8(dst []byte, n int) []byte {
	return binary.BigEndian.AppendUint64(dst, 0x0100000000000000|uint64(n))
}

func oldClampU16(v int) uint16 {
	return uint16(max(0, min(v, math.MaxUint16)))
}
