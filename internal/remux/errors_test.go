package remux

import (
	"bytes"
	"io"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/mkv"
)

// Headers kvsapi must answer with KVS's exceptions, and what the message names.
func TestOpenErrors(t *testing.T) {
	video := trackEntry(1, 1, codecIDH264, testAVCC)
	for _, c := range []struct {
		name   string
		header []byte
		want   error
		says   []string
	}{
		{"VP8 video", mkvHeader(trackEntry(1, 1, "V_VP8", []byte{1})), ErrUnsupportedMedia, []string{"track 1", "V_VP8"}},
		{"audio on track 1", mkvHeader(trackEntry(1, 2, codecIDAAC, testASC)), ErrUnsupportedMedia, []string{"track 1", codecIDAAC}},
		{"no track 1", mkvHeader(trackEntry(2, 2, codecIDAAC, testASC)), ErrUnsupportedMedia, []string{"no track 1"}},
		{"H.264 without CodecPrivate", mkvHeader(trackEntry(1, 1, codecIDH264, nil)), ErrMissingCodecPrivate, []string{"track 1", codecIDH264}},
		{"H.265 without CodecPrivate", mkvHeader(trackEntry(1, 1, codecIDH265, nil)), ErrMissingCodecPrivate, []string{"track 1", codecIDH265}},
		{"avcC garbage", mkvHeader(trackEntry(1, 1, codecIDH264, []byte{1, 2, 3, 4, 5, 6, 7, 8})), ErrInvalidCodecPrivate, []string{"track 1", codecIDH264}},
		{"avcC for H.265", mkvHeader(trackEntry(1, 1, codecIDH265, testAVCC)), ErrInvalidCodecPrivate, []string{"track 1", codecIDH265}},
		{"avcC cut short", mkvHeader(trackEntry(1, 1, codecIDH264, testAVCC[:20])), ErrInvalidCodecPrivate, []string{"track 1"}},
		{"AAC without CodecPrivate", mkvHeader(video, trackEntry(2, 2, codecIDAAC, nil)), ErrMissingCodecPrivate, []string{"track 2", codecIDAAC}},
		{"AAC Main", mkvHeader(video, trackEntry(2, 2, codecIDAAC, []byte{0x09, 0x90})), ErrInvalidCodecPrivate, []string{"track 2", codecIDAAC}},
		{"ASC cut short", mkvHeader(video, trackEntry(2, 2, codecIDAAC, []byte{0x11})), ErrInvalidCodecPrivate, []string{"track 2"}},
		{"not Matroska", []byte("GIF89a"), mkv.ErrInvalid, []string{"header"}},
		{"no Tracks", mkvHeader()[:len(mkvHeader())-12], mkv.ErrInvalid, []string{"header"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := Open(c.header)
			require.Nil(t, m)
			require.ErrorIs(t, err, c.want)
			for _, s := range c.says {
				require.ErrorContains(t, err, s)
			}
		})
	}
}

// Audio that is not AAC is left out; so is anything on other tracks.
func TestOpenIgnoresOtherAudio(t *testing.T) {
	m, err := Open(mkvHeader(
		trackEntry(1, 1, codecIDH264, testAVCC),
		trackEntry(2, 2, "A_OPUS", []byte("OpusHead")),
		trackEntry(3, 2, codecIDAAC, testASC),
	))
	require.NoError(t, err)
	require.Nil(t, m.Audio)
	_, err = m.InitMP4(2)
	require.Error(t, err)
	// Their frames are skipped.
	f := Fragment{Media: mkvCluster(0, block{1, 0, true, testIDR}, block{2, 0, true, []byte{1}}, block{3, 0, true, testAAC})}
	checkAllOutputs(t, m, f)
}

// checkAllOutputs muxes a fragment every way and expects no error.
func checkAllOutputs(t *testing.T, m *Media, f Fragment) {
	t.Helper()
	_, err := m.AppendMP4Fragment(nil, f, 1, 1)
	require.NoError(t, err)
	if m.Audio != nil {
		_, err = m.AppendMP4Fragment(nil, f, 2, 1)
		require.NoError(t, err)
	}
	_, err = m.AppendTS(nil, f)
	require.NoError(t, err)
	_, err = m.WriteClip(io.Discard, 1, func(int, []byte) (Fragment, error) { return f, nil })
	require.NoError(t, err)
}

// Frames that cannot be muxed fail every output with ErrInvalidFrame, saying where.
func TestFrameErrors(t *testing.T) {
	m, err := Open(testHeader())
	require.NoError(t, err)
	for _, c := range []struct {
		name string
		f    Fragment
		says string
	}{
		{"NAL unit overruns its frame", Fragment{Media: mkvCluster(0, block{1, 0, true, []byte{0, 0, 0, 9, 0x65, 1}})}, "track 1"},
		{"empty video frame", Fragment{Media: mkvCluster(0, block{1, 0, true, nil})}, "track 1: empty frame"},
		{"empty audio frame", Fragment{Media: mkvCluster(0, block{1, 0, true, testIDR}, block{2, 0, true, nil})}, "track 2: empty frame"},
		{"not a Cluster", Fragment{Media: []byte("not matroska at all")}, "fragment at timecode"},
		{"Cluster cut short", Fragment{Media: elem(mkv.IDCluster, uintElem(mkv.IDTimecode, 0))[:12]}, "fragment at timecode"},
		{"timecode off the timeline", Fragment{Media: mkvCluster(0, block{1, 0, true, testIDR}), Timecode: math.MinInt64}, "outside the timeline"},
		{"scale overflows", Fragment{Media: mkvCluster(1<<55, block{1, 0, true, testIDR})}, "outside the timeline"},
		{"audio goes back", Fragment{Media: mkvCluster(0, block{1, 0, true, testIDR}, block{2, 20, true, testAAC}, block{2, 0, true, testAAC})}, "track 2"},
		{"decode time before 0", Fragment{Media: mkvCluster(0, block{1, 0, true, testIDR}, block{2, 0, true, testAAC}), Start: -time.Second}, "before 0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := m.AppendMP4Fragment(nil, c.f, 1, 1)
			if c.name == "audio goes back" {
				require.NoError(t, err) // video alone is fine
				_, err = m.AppendMP4Fragment(nil, c.f, 2, 1)
			}
			require.ErrorIs(t, err, ErrInvalidFrame)
			require.ErrorContains(t, err, c.says)
			if c.name == "decode time before 0" {
				return // TS wraps and a clip starts at 0: both fine
			}
			_, err = m.AppendTS(nil, c.f)
			require.ErrorIs(t, err, ErrInvalidFrame)
			_, err = m.WriteClip(io.Discard, 1, func(int, []byte) (Fragment, error) { return c.f, nil })
			require.ErrorIs(t, err, ErrInvalidFrame)
		})
	}
}

// ADTS cannot frame an AAC frame of 8 KiB; MP4 can.
func TestADTSLimit(t *testing.T) {
	m, err := Open(testHeader())
	require.NoError(t, err)
	f := Fragment{Media: mkvCluster(0, block{1, 0, true, testIDR}, block{2, 0, true, make([]byte, 8192)})}
	_, err = m.AppendMP4Fragment(nil, f, 2, 1)
	require.NoError(t, err)
	_, err = m.AppendTS(nil, f)
	require.ErrorIs(t, err, ErrInvalidFrame)
	require.ErrorContains(t, err, "ADTS")
}

func TestNoSuchTrack(t *testing.T) {
	m, err := Open(mkvHeader(trackEntry(1, 1, codecIDH264, testAVCC)))
	require.NoError(t, err)
	for _, n := range []uint64{0, 2, 3} {
		_, err := m.InitMP4(n)
		require.ErrorContains(t, err, "no track")
		dst := []byte("kept")
		out, err := m.AppendMP4Fragment(dst, Fragment{}, n, 1)
		require.ErrorContains(t, err, "no track")
		require.Equal(t, dst, out)
	}
}

// A clip passes on what frag returns, and notices a fragment that changed between passes.
func TestClipFragmentErrors(t *testing.T) {
	m, err := Open(testHeader())
	require.NoError(t, err)
	f := Fragment{Media: mkvCluster(0, block{1, 0, true, testIDR}, block{2, 0, true, testAAC})}
	g := Fragment{Media: mkvCluster(0, block{1, 0, true, testP}, block{2, 0, true, testAAC[:3]})}
	_, err = m.WriteClip(io.Discard, 2, func(i int, _ []byte) (Fragment, error) {
		if i == 1 {
			return Fragment{}, io.ErrUnexpectedEOF
		}
		return f, nil
	})
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	require.ErrorContains(t, err, "clip fragment 1")

	calls := 0
	var out bytes.Buffer
	_, err = m.WriteClip(&out, 1, func(int, []byte) (Fragment, error) {
		calls++
		if calls == 1 {
			return f, nil
		}
		return g, nil
	})
	require.ErrorContains(t, err, "changed between passes")

	_, err = m.WriteClip(io.Discard, 0, nil)
	require.Error(t, err)
	_, err = m.WriteClip(io.Discard, 1, func(int, []byte) (Fragment, error) {
		return Fragment{Media: mkvCluster(0, block{2, 0, true, testAAC})}, nil
	})
	require.ErrorIs(t, err, ErrInvalidFrame)
	require.ErrorContains(t, err, "no video frames")
}
