package mkv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// describeFrame renders a frame like describe renders a KindBlock event,
// with the absolute timecode.
func describeFrame(f Frame) string {
	key := ""
	if f.Keyframe {
		key = " key"
	}
	return fmt.Sprintf("frame %d %d%s %d", f.Track, f.Timecode, key, len(f.Data))
}

// within reports whether b lies inside buf's memory (aliasing, not a copy).
func within(b, buf []byte) bool {
	if len(b) == 0 {
		return true
	}
	p, s := uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&buf[0]))
	return p >= s && p+uintptr(len(b)) <= s+uintptr(len(buf))
}

func TestReadFrames(t *testing.T) {
	h := picHeader()
	f1, f2, f3 := []byte("key-frame-1"), []byte("delta-2"), []byte("key-3")
	blockGroup := func(rel int16, ref bool, data []byte) []byte {
		parts := [][]byte{el(IDBlock, []byte{0x81, byte(uint16(rel) >> 8), byte(rel), 0}, data)}
		if ref {
			parts = append(parts, uel(IDReferenceBlock, 1, 1))
		}
		return el(IDBlockGroup, parts...)
	}
	ff, _ := ffmpegStyle()

	cases := []struct {
		name   string
		in     []byte
		want   []string
		data   [][]byte // frame payloads, when checked
		err    error
		errMsg string
	}{
		{
			name: "simple blocks, absolute timecodes",
			in:   cat(h, picCluster(tcEpoch, sblock8(1, 0, 0x80, f1), sblock8(1, 33, 0, f2)), picCluster(tcEpoch+66, sblock(1, 0, 0x80, f3))),
			want: []string{"frame 1 1700000000000 key 11", "frame 1 1700000000033 7", "frame 1 1700000000066 key 5"},
			data: [][]byte{f1, f2, f3},
		},
		{
			name: "negative relative timecode",
			in:   cat(h, picCluster(1000, sblock(1, -40, 0x80, f1))),
			want: []string{"frame 1 960 key 11"},
		},
		{
			name: "block groups: keyframe without ReferenceBlock",
			in:   cat(h, picCluster(500, blockGroup(0, false, f1), blockGroup(40, true, f2))),
			want: []string{"frame 1 500 key 11", "frame 1 540 7"},
			data: [][]byte{f1, f2},
		},
		{
			name: "tags after the cluster, several tracks",
			in:   cat(h, picCluster(7, sblock(1, 0, 0x80, f1), sblock(2, 1, 0x80, f2)), tags8("AWS_KINESISVIDEO_IMAGE_GENERATION", "")),
			want: []string{"frame 1 7 key 11", "frame 2 8 key 7"},
		},
		{
			name: "ffmpeg file layout with cues",
			in:   ff,
			want: []string{"frame 1 0 key 300", "frame 1 40 20", "frame 1 1000 key 200"},
		},
		{name: "header only", in: h},
		{name: "empty", in: nil, err: ErrInvalid, errMsg: "no EBML document"},
		{
			name: "xiph lacing", in: cat(h, picCluster(0, sblock(1, 0, 0x82, f1))),
			err: ErrInvalid, errMsg: "laced block",
		},
		{
			name: "EBML lacing in a block group", in: cat(h, picCluster(0, el(IDBlockGroup, el(IDBlock, []byte{0x81, 0, 0, 0x06}, f1)))),
			err: ErrInvalid, errMsg: "laced block",
		},
		{
			name: "second document", in: cat(h, picGOP(0, 1, 5, 0), h, picGOP(1000, 1, 5, 0)),
			err: ErrInvalid, errMsg: "second EBML document",
		},
		{
			name: "truncated cluster", in: cat(h, picGOP(0, 3, 50, 20))[:len(h)+60],
			err: io.ErrUnexpectedEOF,
		},
		{name: "garbage", in: []byte("this is not matroska at all"), err: ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hdr, frames, err := ReadFrames(c.in, Limits{})
			if c.err != nil {
				require.ErrorIs(t, err, c.err)
				require.ErrorIs(t, err, ErrInvalid)
				require.Contains(t, err.Error(), c.errMsg)
				require.Nil(t, hdr)
				require.Nil(t, frames)
				return
			}
			require.NoError(t, err)
			require.NotNil(t, hdr)
			require.Equal(t, "V_MPEG4/ISO/AVC", hdr.Tracks[0].CodecID)
			var got []string
			for i, f := range frames {
				got = append(got, describeFrame(f))
				require.True(t, within(f.Data, c.in), "frame %d is a copy, not an alias of the input", i)
				if c.data != nil {
					require.Equal(t, c.data[i], f.Data)
				}
			}
			require.Equal(t, c.want, got)
		})
	}
}

// TestReadFramesMatchesReader checks ReadFrames against the streaming
// Reader's KindBlock events on every valid single-document case of the
// Reader's table.
func TestReadFramesMatchesReader(t *testing.T) {
	for _, c := range validCases() {
		res := readAll(bytes.NewReader(c.in), c.lim)
		var want []string
		docs := 0
		for _, ev := range res.events {
			switch ev.Kind {
			case KindHeader:
				docs++
			case KindBlock:
				want = append(want, fmt.Sprintf("frame %d %d%s %d", ev.Block.Track, int64(ev.Timecode)+int64(ev.Block.RelTimecode),
					map[bool]string{true: " key"}[ev.Block.Keyframe], ev.Block.Size))
			}
		}
		t.Run(c.name, func(t *testing.T) {
			_, frames, err := ReadFrames(c.in, c.lim)
			if docs != 1 {
				require.ErrorIs(t, err, ErrInvalid)
				return
			}
			require.NoError(t, err)
			var got []string
			for _, f := range frames {
				got = append(got, describeFrame(f))
			}
			require.Equal(t, want, got)
		})
	}
}

// TestReadFramesRealMedia reads an ffmpeg H.264 stream: 100 frames 40 ms
// apart, a keyframe every 25, every frame a plausible AVCC access unit
// (4-byte NAL lengths that add up to the frame size).
func TestReadFramesRealMedia(t *testing.T) {
	in := generate(t, "ffmpeg", strings.Fields("-v error -f lavfi -i testsrc=size=320x240:rate=25 -t 4 -c:v libx264 -g 25 -bf 0 -f matroska -")...)
	hdr, frames, err := ReadFrames(in, Limits{})
	require.NoError(t, err)
	require.Len(t, hdr.Tracks, 1)
	require.Equal(t, "V_MPEG4/ISO/AVC", hdr.Tracks[0].CodecID)
	require.Len(t, frames, 100)
	for i, f := range frames {
		require.Equal(t, int64(40*i), f.Timecode, "frame %d", i)
		require.Equal(t, i%25 == 0, f.Keyframe, "frame %d", i)
		require.True(t, within(f.Data, in))
		for b := f.Data; len(b) > 0; {
			require.GreaterOrEqual(t, len(b), 4, "frame %d: NAL length cut", i)
			n := int(b[0])<<24 | int(b[1])<<16 | int(b[2])<<8 | int(b[3])
			require.LessOrEqual(t, 4+n, len(b), "frame %d: NAL overruns the frame", i)
			b = b[4+n:]
		}
	}
}

// TestReadFramesTruncatedEverywhere cuts a document at every byte: the
// result is either a clean prefix (cut at an element boundary) or an
// ErrInvalid, never a panic or an alias outside the input.
func TestReadFramesTruncatedEverywhere(t *testing.T) {
	in := cat(picHeader(), picGOP(100, 3, 40, 10), tags8("a", "b"), picGOP(200, 2, 30, 10))
	for n := range len(in) {
		_, frames, err := ReadFrames(in[:n], Limits{})
		if err != nil {
			require.True(t, errors.Is(err, ErrInvalid), "cut at %d: %v", n, err)
			continue
		}
		for _, f := range frames {
			require.True(t, within(f.Data, in[:n]))
		}
	}
}
