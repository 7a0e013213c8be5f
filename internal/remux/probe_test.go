package remux

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// probed is what ffprobe says about a file.
type probed struct {
	Streams []probeStream  `json:"streams"`
	Packets []probePacket  `json:"packets"`
	Format  map[string]any `json:"format"`
}

type probeStream struct {
	Index      int    `json:"index"`
	CodecName  string `json:"codec_name"`
	CodecType  string `json:"codec_type"`
	Profile    string `json:"profile"`
	Level      int    `json:"level"`
	Width      int    `json:"width"`
	Height     int    `json:"height"`
	SampleRate string `json:"sample_rate"`
	Channels   int    `json:"channels"`
	TimeBase   string `json:"time_base"`
}

type probePacket struct {
	StreamIndex int    `json:"stream_index"`
	PTS         *int64 `json:"pts"`
	DTS         *int64 `json:"dts"`
	Flags       string `json:"flags"`
}

// probe runs ffprobe on a file and fails on anything it logs as an error.
func probe(t *testing.T, path string) *probed {
	t.Helper()
	needTool(t, "ffprobe")
	cmd := exec.Command("ffprobe", "-v", "error", "-show_streams", "-show_packets", "-show_format", "-of", "json", path)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "ffprobe: %s", stderr.String())
	require.Empty(t, stderr.String(), "ffprobe logged errors")
	var p probed
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &p))
	return &p
}

// decodes checks that ffmpeg decodes every stream of a file without an error.
func decodes(t *testing.T, path string) {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-v", "error", "-nostdin", "-i", path, "-f", "null", "-").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Empty(t, string(out), "ffmpeg logged decoding errors")
}

// stream returns the stream of a codec type.
func (p *probed) stream(t *testing.T, kind string) probeStream {
	t.Helper()
	for _, s := range p.Streams {
		if s.CodecType == kind {
			return s
		}
	}
	t.Fatalf("no %s stream in %+v", kind, p.Streams)
	return probeStream{}
}

// stamps returns a stream's packets in presentation order.
func (p *probed) stamps(t *testing.T, index int, mask int64) []stamp {
	t.Helper()
	var out []stamp
	for _, pk := range p.Packets {
		if pk.StreamIndex != index {
			continue
		}
		require.NotNil(t, pk.PTS, "packet without a pts")
		out = append(out, stamp{pts: *pk.PTS & mask, key: strings.Contains(pk.Flags, "K")})
	}
	slices.SortFunc(out, func(a, b stamp) int { return cmp.Compare(a.pts, b.pts) })
	return out
}

// checkDecodeOrder checks a stream's decode times: increasing, none after its presentation.
func (p *probed) checkDecodeOrder(t *testing.T, index int) {
	t.Helper()
	prev := int64(-1 << 62)
	for _, pk := range p.Packets {
		if pk.StreamIndex != index {
			continue
		}
		require.NotNil(t, pk.DTS)
		require.Greater(t, *pk.DTS, prev, "decode times go back")
		require.LessOrEqual(t, *pk.DTS, *pk.PTS, "decoded after it is presented")
		prev = *pk.DTS
	}
}

// topBoxes returns the types of an MP4's top-level boxes.
func topBoxes(t *testing.T, b []byte) []string {
	t.Helper()
	var types []string
	for len(b) > 0 {
		require.GreaterOrEqual(t, len(b), 8)
		size := uint64(binary.BigEndian.Uint32(b))
		typ := string(b[4:8])
		if size == 1 {
			size = binary.BigEndian.Uint64(b[8:])
		}
		require.GreaterOrEqual(t, size, uint64(8), "box %s", typ)
		require.LessOrEqual(t, size, uint64(len(b)), "box %s", typ)
		types = append(types, typ)
		b = b[size:]
	}
	return types
}

// requireStamps compares frame times, reporting the first difference instead of both lists.
func requireStamps(t *testing.T, want, got []stamp) {
	t.Helper()
	for i := range min(len(want), len(got)) {
		if want[i] != got[i] {
			lo, hi := max(0, i-2), min(len(want), len(got), i+3)
			t.Fatalf("frame %d of %d (got %d): want %v, got %v", i, len(want), len(got), want[lo:hi], got[lo:hi])
		}
	}
	require.Len(t, got, len(want), "frames")
}
