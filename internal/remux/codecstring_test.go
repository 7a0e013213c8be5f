package remux

import (
	"fmt"
	"math/bits"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/h26x"
	"github.com/kvsd/kvsd/internal/mkv"
)

// encodeOne encodes a short 64×64 clip with the given video arguments and opens its header.
func encodeOne(t *testing.T, video ...string) (*Media, *mkv.Header) {
	t.Helper()
	args := append([]string{"-f", "lavfi", "-i", "testsrc2=size=64x64:rate=25", "-frames:v", "2"}, video...)
	file := ffmpeg(t, append(args, "-f", "matroska", "{file}")...)
	hdr, _, err := mkv.ReadFrames(file, mkv.Limits{})
	require.NoError(t, err)
	m, err := Open(hdr.Raw)
	require.NoError(t, err)
	return m, hdr
}

// Codec strings of known profiles and levels, as KVS and Apple's HLS tools write them.
func TestCodecStringsOfKnownProfiles(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-c:v", "libx264", "-profile:v", "high", "-level", "4.0"}, "avc1.640028"},
		{[]string{"-c:v", "libx264", "-profile:v", "baseline", "-level", "3.0"}, "avc1.42c01e"},
		{[]string{"-c:v", "libx264", "-profile:v", "main", "-level", "3.1"}, "avc1.4d401f"},
		// x265 writes Main (compatible with Main and Main 10: flags 1 and 2, reversed 0x6),
		// progressive frames only (constraint byte 0x90), level 1 for 64×64.
		{[]string{"-c:v", "libx265", "-x265-params", "log-level=error"}, "hvc1.1.6.L30.90"},
		// Main 10 is compatible with itself only: flag 2, reversed 0x4.
		{[]string{"-c:v", "libx265", "-pix_fmt", "yuv420p10le", "-x265-params", "log-level=error"}, "hvc1.2.4.L30.90"},
	} {
		t.Run(c.want, func(t *testing.T) {
			m, _ := encodeOne(t, c.args...)
			require.Equal(t, c.want, m.Video.Codec)
			require.Equal(t, 64, m.Video.Width)
			require.Equal(t, 64, m.Video.Height)
		})
	}
}

// The H.265 codec string says what another parser (mediacommon's) reads in the SPS.
func TestHVC1FollowsTheSPS(t *testing.T) {
	s := sourceFor(t, mediaCases[2], shapeClusters)
	m, err := Open(s.header)
	require.NoError(t, err)
	nalus, _, err := h26x.ParseHEVCConfig(codecPrivate(t, s.header, 1))
	require.NoError(t, err)
	var sps h265.SPS
	for _, n := range nalus {
		if h26x.H265Type(n) == h26x.H265NALSPS {
			require.NoError(t, sps.Unmarshal(n))
		}
	}
	ptl := sps.ProfileTierLevel
	var compat uint32
	for i, f := range ptl.GeneralProfileCompatibilityFlag {
		if f {
			compat |= 1 << (31 - i)
		}
	}
	constraint := 0
	for i, f := range []bool{ptl.GeneralProgressiveSourceFlag, ptl.GeneralInterlacedSourceFlag, ptl.GeneralNonPackedConstraintFlag, ptl.GeneralFrameOnlyConstraintFlag} {
		if f {
			constraint |= 0x80 >> i
		}
	}
	tier := map[uint8]string{0: "L", 1: "H"}[ptl.GeneralTierFlag]
	want := fmt.Sprintf("hvc1.%d.%X.%s%d.%X", ptl.GeneralProfileIdc, bits.Reverse32(compat), tier, ptl.GeneralLevelIdc, constraint)
	require.Equal(t, want, m.Video.Codec)
	require.Equal(t, sps.Width(), m.Video.Width)
	require.Equal(t, sps.Height(), m.Video.Height)
}

// The H.264 codec string is the SPS's bytes 1–3, and ffprobe reads the same profile and level.
func TestAVC1FollowsTheSPS(t *testing.T) {
	s := sourceFor(t, mediaCases[0], shapeClusters)
	m, err := Open(s.header)
	require.NoError(t, err)
	sps, _, _, err := h26x.ParseAVCConfig(codecPrivate(t, s.header, 1))
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf("avc1.%x", sps[0][1:4]), m.Video.Codec)
	out := must(m.InitMP4(1))
	for i, f := range s.frags {
		out = must(m.AppendMP4Fragment(out, f, 1, uint32(i+1)))
	}
	file := writeFile(t, "video.mp4", out)
	v := probe(t, file).stream(t, "video")
	// ffprobe's High is profile_idc 100 (0x64); its level is level_idc.
	require.Equal(t, "High", v.Profile)
	require.Equal(t, fmt.Sprintf("avc1.64%02x%02x", sps[0][2], v.Level), m.Video.Codec)
}

// HE-AAC signalled explicitly is mp4a.40.5; its timescale and rate are the core's, and TS
// carries it as AAC-LC ADTS (implicit signalling).
func TestHEAAC(t *testing.T) {
	asc, err := mpeg4audio.AudioSpecificConfig{
		Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 24000, ChannelConfig: 2,
		ExtensionType: mpeg4audio.ObjectTypeSBR, ExtensionSampleRate: 48000,
	}.Marshal()
	require.NoError(t, err)
	m, err := Open(mkvHeader(trackEntry(1, 1, codecIDH264, testAVCC), trackEntry(2, 2, codecIDAAC, asc)))
	require.NoError(t, err)
	require.Equal(t, &Track{Number: 2, Codec: "mp4a.40.5", SampleRate: 24000, Channels: 2}, m.Audio)
	f := Fragment{Media: mkvCluster(0, block{1, 0, true, testIDR}, block{2, 0, true, testAAC})}
	_, err = m.AppendTS(nil, f)
	require.NoError(t, err)
}

// codecPrivate returns a track's CodecPrivate from a stored header.
func codecPrivate(t *testing.T, header []byte, track uint64) []byte {
	t.Helper()
	hdr, _, err := mkv.ReadFrames(mkv.UnknownSegmentSize(header), mkv.Limits{})
	require.NoError(t, err)
	for _, tr := range hdr.Tracks {
		if tr.Number == track {
			return tr.CodecPrivate
		}
	}
	t.Fatalf("no track %d", track)
	return nil
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
