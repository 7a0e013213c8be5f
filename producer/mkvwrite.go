package producer

import (
	"math"

	"github.com/kvsd/kvsd/internal/mkv"
)

// The writer below produces the byte layout of the KVS producer SDK's MKV
// generator (kvs-protocol.md §3.5), so that kvsd and AWS see exactly what a
// kvssink would send: fixed-width sizes where the SDK uses them (1 byte
// mostly, 2 for Info, 4 for Tracks and CodecPrivate, 8 for blocks and
// tags), unknown-size Segment and Clusters, a 1 ms TimecodeScale and
// absolute epoch-millisecond cluster timecodes.

// muxingApp names the writer in Info (Title, MuxingApp and WritingApp).
const muxingApp = "kvsd producer"

// appendHeader appends the EBML header (§3.5: EBMLVersion 1, ReadVersion
// 1, MaxIDLength 4, MaxSizeLength 8, DocType "matroska", DocTypeVersion 2,
// DocTypeReadVersion 2), the Segment start, Info and Tracks for one
// PutMedia body. uid is the SegmentUID (16 bytes), trackUID the TrackUID.
func appendHeader(dst []byte, t Track, uid [16]byte, trackUID uint64) []byte {
	w := mkv.Writer{Buf: dst, Size: 1}
	w.EBMLHeader("matroska")
	w.StartUnknown(mkv.IDSegment)

	w.Size = 2
	w.Start(mkv.IDInfo)
	w.Size = 1
	w.Bytes(mkv.IDSegmentUID, uid[:])
	w.UintN(mkv.IDTimecodeScale, 1_000_000, 8) // 1 ms ticks
	w.String(mkv.IDTitle, muxingApp)
	w.String(mkv.IDMuxingApp, muxingApp)
	w.String(mkv.IDWritingApp, muxingApp)
	w.End()

	w.Size = 4
	w.Start(mkv.IDTracks)
	w.Start(mkv.IDTrackEntry)
	w.Size = 1
	w.UintN(mkv.IDTrackNumber, 1, 1)
	w.UintN(mkv.IDTrackUID, trackUID, 8)
	w.UintN(mkv.IDTrackType, 1, 1)
	w.String(mkv.IDCodecID, t.CodecID)
	w.Size = 4
	w.Bytes(mkv.IDCodecPrivate, t.CodecPrivate)
	w.Start(mkv.IDVideo)
	w.Size = 1
	w.UintN(mkv.IDPixelWidth, clampU16(t.Width), 2)
	w.UintN(mkv.IDPixelHeight, clampU16(t.Height), 2)
	w.End()
	w.End()
	w.End()
	return w.Buf
}

// appendClusterStart opens an unknown-size Cluster with an 8-byte Timecode
// (epoch milliseconds) and Position 0, as the SDK does.
func appendClusterStart(dst []byte, timecode int64) []byte {
	w := mkv.Writer{Buf: dst, Size: 1}
	w.StartUnknown(mkv.IDCluster)
	w.UintN(mkv.IDTimecode, uint64(timecode), 8)
	w.UintN(mkv.IDPosition, 0, 1)
	return w.Buf
}

// appendSimpleBlock appends a SimpleBlock of track 1 with an 8-byte size,
// the timecode relative to its Cluster and the key flag.
func appendSimpleBlock(dst []byte, rel int16, key bool, data []byte) []byte {
	w := mkv.Writer{Buf: dst, Size: 8}
	var flags byte
	if key {
		flags = 0x80
	}
	w.SimpleBlock(1, rel, flags, data)
	return w.Buf
}

// simpleBlockOverhead is what appendSimpleBlock adds to a frame.
const simpleBlockOverhead = 1 + 8 + 4

// appendTags appends one Tags element (8-byte sizes, no Targets) holding
// one Tag with the given SimpleTags, the SDK's layout for event and
// fragment metadata (§5.2).
func appendTags(dst []byte, tags []mkv.SimpleTag) []byte {
	return mkv.AppendTags8(dst, tags)
}

func clampU16(v int) uint64 {
	return uint64(max(0, min(v, math.MaxUint16)))
}
