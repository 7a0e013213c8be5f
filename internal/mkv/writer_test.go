package mkv

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAppendTags8ImageTag pins the 85-byte minimal image-generation tag the
// KVS producer SDK writes (reference §5.2).
func TestAppendTags8ImageTag(t *testing.T) {
	want := cat(hexb("12 54 c3 67 01 00 00 00 00 00 00 49 73 73 01 00 00 00 00 00 00 3f 67 c8 01 00 00 00 00 00 00 35 45 a3 01 00 00 00 00 00 00 21"),
		[]byte("AWS_KINESISVIDEO_IMAGE_GENERATION"), hexb("44 87 01 00 00 00 00 00 00 00"))
	require.Len(t, want, 85)
	got := AppendTags8(nil, []SimpleTag{{Name: "AWS_KINESISVIDEO_IMAGE_GENERATION"}})
	require.Equal(t, want, got)
	require.Equal(t, tags8("AWS_KINESISVIDEO_IMAGE_GENERATION", ""), got)
}

// TestAppendTagsAWSLayout pins the start of the service's own tags (§4.2):
// 4-byte sizes, no Targets.
func TestAppendTagsAWSLayout(t *testing.T) {
	fn := "91343852333181432392682062607743920146159169392"
	got := AppendTags([]byte{0xEE}, []SimpleTag{
		{"AWS_KINESISVIDEO_FRAGMENT_NUMBER", fn},
		{"AWS_KINESISVIDEO_SERVER_TIMESTAMP", "1511852109.126"},
		{"AWS_KINESISVIDEO_PRODUCER_TIMESTAMP", "1511852108.513"},
	})
	prefix := cat([]byte{0xEE}, hexb("12 54 c3 67 10 00 00 eb 73 73 10 00 00 e5 67 c8 10 00 00 5b 45 a3 10 00 00 20"),
		[]byte("AWS_KINESISVIDEO_FRAGMENT_NUMBER"), hexb("44 87 10 00 00 2f"), []byte(fn))
	require.Equal(t, prefix, got[:len(prefix)])
	require.Len(t, got, 1+8+0xeb)
}

// TestAppendTagsRoundTrip reads written Tags back with the Reader.
func TestAppendTagsRoundTrip(t *testing.T) {
	tags := []SimpleTag{
		{"AWS_KINESISVIDEO_MILLIS_BEHIND_NOW", "15858"},
		{"AWS_KINESISVIDEO_CONTINUATION_TOKEN", "9134"},
		{"empty", ""},
		{"", "no name"},
		{"long", strings.Repeat("v", 300)},
	}
	for name, appendFn := range map[string]func([]byte, []SimpleTag) []byte{"AppendTags": AppendTags, "AppendTags8": AppendTags8} {
		t.Run(name, func(t *testing.T) {
			for _, in := range [][]SimpleTag{tags, nil, tags[:1]} {
				written := appendFn(nil, in)
				stream := cat(picHeader(), picGOP(1, 1, 1, 0), written)
				res := readAll(bytes.NewReader(stream), Limits{})
				require.ErrorIs(t, res.err, io.EOF)
				last := res.events[len(res.events)-1]
				require.Equal(t, KindTags, last.Kind)
				require.Equal(t, written, last.Raw)
				require.Equal(t, len(in), len(last.Tags))
				if len(in) > 0 {
					require.Equal(t, in, last.Tags)
				}
			}
		})
	}
}

// TestCloseElemWidens checks the fallback for a payload too big for the
// requested size width; 1-byte fields (at most 126) keep the test cheap,
// the code path is the one a 256 MiB tag would take with 4-byte fields.
func TestCloseElemWidens(t *testing.T) {
	for _, n := range []int{126, 127} {
		got := appendString([]byte{0xEE}, IDTagString, strings.Repeat("x", n), 1)
		size := hexb("FE")
		if n == 127 {
			size = hexb("01 00 00 00 00 00 00 7F")
		}
		require.Equal(t, cat([]byte{0xEE}, hexb("44 87"), size, bytes.Repeat([]byte("x"), n)), got)
	}
}

// TestWriterRoundTrip: a document from Writer, in narrow and in 8-byte
// layouts, reads back with ReadFrames: tracks, SimpleBlocks, BlockGroups
// and Tags.
func TestWriterRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, 4, 8} {
		w := Writer{Size: size}
		w.EBMLHeader("matroska")
		w.StartUnknown(IDSegment)
		w.Start(IDInfo)
		w.Uint(IDTimecodeScale, 1_000_000)
		w.End()
		w.Start(IDTracks)
		w.TrackEntry(TrackEntry{Track: Track{Number: 1, UID: 7, Type: 1, CodecID: "V_MPEG4/ISO/AVC", CodecPrivate: avcc, Name: "v", Width: 640, Height: 480}})
		w.TrackEntry(TrackEntry{Track: Track{Number: 2, Type: 2, CodecID: "A_AAC", CodecPrivate: []byte{0x11, 0x90}}, SamplingFreq: 48000, Channels: 2})
		w.End()
		w.StartUnknown(IDCluster)
		w.Uint(IDTimecode, 1000)
		w.SimpleBlock(1, 0, 0x80, frame(300))
		w.BlockGroup(1, 40, frame(200), -40)
		w.SimpleBlock(2, -3, 0x80, frame(10))
		w.Tags([]SimpleTag{{"a", "b"}})
		hdr, frames, err := ReadFrames(w.Buf, Limits{})
		require.NoError(t, err, "size %d", size)
		require.Len(t, hdr.Tracks, 2)
		require.Equal(t, Track{Number: 1, UID: 7, Type: 1, CodecID: "V_MPEG4/ISO/AVC", CodecPrivate: avcc, Name: "v", Width: 640, Height: 480}, hdr.Tracks[0])
		require.Equal(t, "A_AAC", hdr.Tracks[1].CodecID)
		require.Len(t, frames, 3)
		require.Equal(t, []int64{1000, 1040, 997}, []int64{frames[0].Timecode, frames[1].Timecode, frames[2].Timecode})
		require.Equal(t, []bool{true, false, true}, []bool{frames[0].Keyframe, frames[1].Keyframe, frames[2].Keyframe})
		require.Equal(t, frame(200), frames[1].Data)
	}
}

// TestWriterSizes: Size 0 writes the narrowest size fields, also for
// master elements, and a size too large for its width gets 8 bytes.
func TestWriterSizes(t *testing.T) {
	w := Writer{}
	w.Start(IDTracks)
	w.Bytes(IDCodecPrivate, frame(200))
	w.End()
	require.Equal(t, elw(IDTracks, 2, elw(IDCodecPrivate, 2, frame(200))), w.Buf)

	w = Writer{Size: 1}
	w.Bytes(IDCodecPrivate, frame(200))
	w.Start(IDTags)
	w.Bytes(IDCodecPrivate, nil)
	w.End()
	w.StartUnknown(IDCluster)
	require.Equal(t, cat(elw(IDCodecPrivate, 8, frame(200)), elw(IDTags, 1, elw(IDCodecPrivate, 1)), unk(IDCluster, 1)), w.Buf)

	w = Writer{Size: 8, UintSize: 8}
	w.StartUnknown(IDSegment)
	w.Uint(IDTimecode, 5)
	w.Int(IDReferenceBlock, -200)
	w.Int(IDReferenceBlock, 127)
	require.Equal(t, cat(unk(IDSegment, 8), elw(IDTimecode, 8, hexb("00 00 00 00 00 00 00 05")),
		elw(IDReferenceBlock, 8, hexb("FF 38")), elw(IDReferenceBlock, 8, hexb("7F"))), w.Buf)
}
