package mkv

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"
)

// Real media from the encoders cameras and test rigs use. Each test skips
// when its tool is not installed.

// generate runs a command that writes Matroska to stdout, or to a file if
// an argument is "{file}" (ffmpeg writes Cues and a known-size Segment only
// when it can seek).
func generate(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed", name)
	}
	file := filepath.Join(t.TempDir(), "out.mkv")
	args = slices.Clone(args)
	toFile := slices.Contains(args, "{file}")
	if i := slices.Index(args, "{file}"); i >= 0 {
		args[i] = file
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if strings.Contains(stderr.String(), "no element") {
			t.Skipf("GStreamer plugin missing: %s", stderr.String())
		}
		t.Fatalf("%s: %v\n%s", name, err, stderr.String())
	}
	if toFile {
		b, err := os.ReadFile(file)
		require.NoError(t, err)
		return b
	}
	require.NotEmpty(t, stdout.Bytes())
	return stdout.Bytes()
}

// mediaCase describes what a generated stream must look like.
type mediaCase struct {
	name string
	cmd  []string
	// frames is the number of video frames encoded.
	frames int
	// clusterPerKeyframe: the muxer starts a Cluster at every keyframe and
	// only there.
	clusterPerKeyframe bool
	// skipped names the elements the Reader is expected to skip.
	skipped []string
}

var mediaCases = []mediaCase{
	{
		name:               "ffmpeg",
		cmd:                strings.Fields("ffmpeg -v error -f lavfi -i testsrc=size=320x240:rate=25 -t 4 -c:v libx264 -g 25 -f matroska -"),
		frames:             100,
		clusterPerKeyframe: true,
	},
	{
		name:               "ffmpeg file with cues",
		cmd:                strings.Fields("ffmpeg -v error -f lavfi -i testsrc=size=320x240:rate=25 -t 4 -c:v libx264 -g 25 -f matroska {file}"),
		frames:             100,
		clusterPerKeyframe: true,
		skipped:            []string{"Cues"},
	},
	{
		name:               "ffmpeg live",
		cmd:                strings.Fields("ffmpeg -v error -f lavfi -i testsrc=size=320x240:rate=25 -t 4 -c:v libx264 -g 25 -live 1 -f matroska -"),
		frames:             100,
		clusterPerKeyframe: true,
	},
	{
		name:               "gstreamer",
		cmd:                strings.Fields("gst-launch-1.0 -q videotestsrc num-buffers=100 ! x264enc key-int-max=25 ! h264parse ! matroskamux streamable=true min-cluster-duration=0 ! fdsink"),
		frames:             100,
		clusterPerKeyframe: true,
	},
}

func TestRealMedia(t *testing.T) {
	for _, mc := range mediaCases {
		t.Run(mc.name, func(t *testing.T) {
			in := generate(t, mc.cmd[0], mc.cmd[1:]...)
			// A producer that restarts sends a second document on the same
			// connection; a plain copy of the file stands in for it.
			for docs := 1; docs <= 2; docs++ {
				stream := bytes.Repeat(in, docs)
				res := readAll(bytes.NewReader(stream), Limits{})
				require.ErrorIs(t, res.err, io.EOF)
				require.Equal(t, int64(len(stream)), res.off)

				checkEvents(t, stream, res.events)
				var skipped []string
				for range docs {
					skipped = append(skipped, mc.skipped...)
				}
				require.Equal(t, skipped, checkGaps(t, stream, res.events))
				checkMedia(t, mc, docs, res.events)

				slow := readAll(iotest.OneByteReader(bytes.NewReader(stream)), Limits{})
				require.Equal(t, res, slow, "one byte at a time")
			}
		})
	}
}

// checkMedia checks the header, that every Cluster starts with a keyframe,
// and the Cluster count.
func checkMedia(t *testing.T, mc mediaCase, docs int, evs []Event) {
	t.Helper()
	var headers, clusters, keyframes, blocks int
	firstInCluster := false
	for _, ev := range evs {
		switch ev.Kind {
		case KindHeader:
			headers++
			require.Len(t, ev.Header.Tracks, 1)
			tr := ev.Header.Tracks[0]
			require.Equal(t, "V_MPEG4/ISO/AVC", tr.CodecID)
			require.Equal(t, uint64(1), tr.Type)
			require.Equal(t, [2]uint64{320, 240}, [2]uint64{tr.Width, tr.Height})
			require.NotEmpty(t, tr.CodecPrivate)
			require.Equal(t, byte(1), tr.CodecPrivate[0], "avcC version")
			require.Equal(t, uint64(1_000_000), ev.Header.TimecodeScale)
		case KindClusterStart:
			clusters++
			firstInCluster = true
		case KindBlock:
			blocks++
			if ev.Block.Keyframe {
				keyframes++
			}
			if firstInCluster {
				require.True(t, ev.Block.Keyframe, "Cluster %d starts with a keyframe", clusters)
			}
			firstInCluster = false
		}
	}
	require.Equal(t, docs, headers)
	require.Equal(t, docs*mc.frames, blocks)
	require.Equal(t, docs*mc.frames/25, keyframes)
	if mc.clusterPerKeyframe {
		require.Equal(t, keyframes, clusters)
	}
}

// checkGaps checks that the input bytes no Raw carries are whole level-1
// elements the Reader is meant to skip, so that the stored pieces plus the
// skipped elements are the whole input, and returns their names.
// checkEvents already checked that each Raw equals the input at its offset.
func checkGaps(t *testing.T, in []byte, evs []Event) []string {
	t.Helper()
	var skipped []string
	skippable := map[uint32]bool{IDCues: true, IDVoid: true, IDCRC32: true, IDSeekHead: true, IDChapters: true, IDAttachments: true}
	pos := int64(0)
	gap := func(end int64) {
		c := children{b: in[pos:end], off: pos, parent: IDSegment}
		for c.next() {
			require.True(t, skippable[c.ch.id], "%s at %d was dropped", idName(c.ch.id), c.ch.off)
			skipped = append(skipped, idName(c.ch.id))
		}
		require.NoError(t, c.err, "gap %d-%d", pos, end)
		pos = end
	}
	for _, ev := range evs {
		raw := ev.Raw
		if ev.Kind == KindHeader {
			raw = ev.Header.Raw
		}
		if raw == nil {
			continue
		}
		gap(ev.Offset)
		pos = ev.Offset + int64(len(raw))
	}
	gap(int64(len(in)))
	return skipped
}
