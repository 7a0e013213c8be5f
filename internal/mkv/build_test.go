package mkv

import (
	"bytes"
	"fmt"
	"strings"
)

// Helpers that build Matroska bytes for the test table on Writer. Every
// size width is chosen by the caller, so layouts (1-, 4-, 8-byte sizes,
// unknown sizes) come out exactly as producers send them.

// cat concatenates byte slices.
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// elw encodes an element whose size field is w bytes wide.
func elw(id uint32, w int, parts ...[]byte) []byte {
	wr := Writer{Size: w}
	wr.Bytes(id, cat(parts...))
	return wr.Buf
}

// el encodes an element with the narrowest size field.
func el(id uint32, parts ...[]byte) []byte { return elw(id, 0, parts...) }

// unk encodes the header of an element of unknown size, size field w bytes.
func unk(id uint32, w int) []byte {
	wr := Writer{Size: w}
	wr.StartUnknown(id)
	return wr.Buf
}

// uel encodes an unsigned integer element with an n-byte payload.
func uel(id uint32, v uint64, n int) []byte {
	var wr Writer
	wr.UintN(id, v, n)
	return wr.Buf
}

// sel encodes a string element.
func sel(id uint32, s string) []byte { return el(id, []byte(s)) }

// hexb decodes space-separated hex.
func hexb(s string) []byte {
	var out []byte
	for _, f := range strings.Fields(s) {
		var v byte
		if _, err := fmt.Sscanf(f, "%02x", &v); err != nil {
			panic(err)
		}
		out = append(out, v)
	}
	return out
}

// ebmlHeader is the EBML header the PIC writes (§3.5), with the given
// DocType.
func ebmlHeader(docType string) []byte {
	var w Writer
	w.EBMLHeader(docType)
	return w.Buf
}

// picEBML is the exact byte string from the reference.
var picEBML = cat(hexb("1A 45 DF A3 A3 42 86 81 01 42 F7 81 01 42 F2 81 04 42 F3 81 08 42 82 88"),
	[]byte("matroska"), hexb("42 87 81 02 42 85 81 02"))

// picInfo is an Info element as the PIC writes it: 2-byte size, 16-byte
// SegmentUID, 8-byte TimecodeScale.
func picInfo(scale uint64) []byte {
	return elw(IDInfo, 2,
		el(IDSegmentUID, bytes.Repeat([]byte{0xAB}, 16)),
		uel(IDTimecodeScale, scale, 8),
		sel(0x7BA9, "Kinesis Video SDK"), sel(0x4D80, "Kinesis Video SDK 1.0"), sel(0x5741, "Kinesis Video SDK 1.0"))
}

// avcc is a stand-in AVCDecoderConfigurationRecord.
var avcc = hexb("01 64 00 1F FF E1 00 04 67 64 00 1F 01 00 04 68 EE 3C 80")

// picTracks is a Tracks element with one H.264 track, 4-byte sizes.
func picTracks(w, h uint64) []byte {
	return elw(IDTracks, 4, elw(IDTrackEntry, 4,
		uel(IDTrackNumber, 1, 1), uel(IDTrackUID, 0x1122334455667788, 8), uel(IDTrackType, 1, 1),
		sel(IDCodecID, "V_MPEG4/ISO/AVC"), sel(IDTrackName, "kinesis_video"),
		el(IDCodecPrivate, avcc),
		elw(IDVideo, 4, uel(IDPixelWidth, w, 2), uel(IDPixelHeight, h, 2))))
}

// picHeader is EBML header, unknown-size Segment, Info and Tracks.
func picHeader() []byte {
	return cat(picEBML, unk(IDSegment, 1), picInfo(1_000_000), picTracks(640, 480))
}

// sblock8 is a SimpleBlock with an 8-byte size, as the PIC writes it.
func sblock8(track byte, rel int16, flags byte, frame []byte) []byte {
	return elw(IDSimpleBlock, 8, []byte{0x80 | track, byte(uint16(rel) >> 8), byte(rel), flags}, frame)
}

// sblock is a SimpleBlock with the narrowest size.
func sblock(track byte, rel int16, flags byte, frame []byte) []byte {
	return el(IDSimpleBlock, []byte{0x80 | track, byte(uint16(rel) >> 8), byte(rel), flags}, frame)
}

// frame returns n bytes of fake frame data.
func frame(n int) []byte { return bytes.Repeat([]byte{0x5A}, n) }

// picCluster is an unknown-size Cluster with an 8-byte Timecode and
// Position 0 followed by blocks, as the PIC writes it.
func picCluster(tc uint64, blocks ...[]byte) []byte {
	return cat(unk(IDCluster, 1), uel(IDTimecode, tc, 8), hexb("A7 81 00"), cat(blocks...))
}

// picGOP is a cluster with a keyframe and n-1 delta frames 33 ticks apart.
func picGOP(tc uint64, n, keySize, deltaSize int) []byte {
	blocks := [][]byte{sblock8(1, 0, 0x80, frame(keySize))}
	for i := 1; i < n; i++ {
		blocks = append(blocks, sblock8(1, int16(33*i), 0, frame(deltaSize)))
	}
	return picCluster(tc, blocks...)
}

// tags8 is a Tags element with 8-byte sizes built without AppendTags8.
func tags8(pairs ...string) []byte {
	var sts [][]byte
	for i := 0; i < len(pairs); i += 2 {
		sts = append(sts, elw(IDSimpleTag, 8, elw(IDTagName, 8, []byte(pairs[i])), elw(IDTagString, 8, []byte(pairs[i+1]))))
	}
	return elw(IDTags, 8, elw(IDTag, 8, sts...))
}
