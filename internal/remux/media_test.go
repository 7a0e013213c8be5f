package remux

import (
	"bytes"
	"cmp"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/mkv"
)

// Real media: ffmpeg encodes it in the tests, the tests split it into kvsd's stored form (the
// header before the first Cluster, then each Cluster with any Tags after it as a fragment) and
// ffprobe checks what the package makes of it.

// source is a generated stream in stored form, with the frames it holds.
type source struct {
	header []byte
	frags  []Fragment
	frames []srcFrame // every frame, in file order
}

// srcFrame is a frame as the Matroska file has it: ffprobe's pts for Matroska is the timecode.
type srcFrame struct {
	frag     int
	track    uint64
	timecode int64 // ms (ffmpeg's TimecodeScale)
	key      bool
}

// epoch is where timecode 0 sits on the output timeline: a producer clock since the Unix
// epoch, so that 90 kHz times need 48 bits and the 33-bit TS wrap is crossed.
const epoch = 1_700_000_000*time.Second + 123*time.Millisecond

// mediaCase is a stream the end-to-end tests run.
type mediaCase struct {
	name    string
	video   []string // encoder arguments
	bframes bool     // the encoder reorders frames
	hevc    bool
}

var mediaCases = []mediaCase{
	{name: "h264", video: []string{"-c:v", "libx264", "-g", "25", "-preset", "veryfast"}, bframes: true},
	{name: "h264-bf0", video: []string{"-c:v", "libx264", "-g", "25", "-bf", "0", "-preset", "veryfast"}},
	{name: "h265", video: []string{"-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "keyint=25:min-keyint=25:log-level=error"}, bframes: true, hevc: true},
}

// Shapes of stored fragments.
const (
	// ffmpeg's own Clusters: each starts a little before a video keyframe, with audio.
	shapeClusters = "clusters"
	// What KVS producers write: a Cluster per GOP, its Timecode the keyframe's, audio from
	// that keyframe on.
	shapeGOPs = "gops"
)

var shapes = []string{shapeClusters, shapeGOPs}

var (
	sourcesMu sync.Mutex
	encoded   = map[string][]byte{}
	sources   = map[string]*source{}
)

// sourceFor encodes a case once per test binary, four seconds of 640×360 at 25 fps (keyframe
// every second) and a 48 kHz AAC sine, and splits it into a shape of fragments.
func sourceFor(t *testing.T, c mediaCase, shape string) *source {
	t.Helper()
	sourcesMu.Lock()
	defer sourcesMu.Unlock()
	if s := sources[c.name+"/"+shape]; s != nil {
		return s
	}
	file := encoded[c.name]
	if file == nil {
		args := []string{"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "4"}
		file = ffmpeg(t, append(append(args, c.video...), "-c:a", "aac", "-f", "matroska", "{file}")...)
		encoded[c.name] = file
	}
	s := split(t, file)
	if shape == shapeGOPs {
		s = regroup(t, file)
	}
	sources[c.name+"/"+shape] = s
	return s
}

// ffmpeg runs ffmpeg with "{file}" as its output and returns what it wrote.
func ffmpeg(t *testing.T, args ...string) []byte {
	t.Helper()
	needTool(t, "ffmpeg")
	file := filepath.Join(t.TempDir(), "out")
	args = slices.Clone(args)
	args[slices.Index(args, "{file}")] = file
	args = append([]string{"-v", "error", "-nostdin", "-y"}, args...)
	out, err := exec.Command("ffmpeg", args...).CombinedOutput()
	require.NoError(t, err, "ffmpeg %v: %s", args, out)
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	return b
}

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed", name)
	}
}

// split cuts a Matroska file into kvsd's stored form. A fragment's Start puts its Timecode at
// epoch + Timecode ms and its Duration is what ingest computes: from the earliest frame to
// the end of the last one, a frame lasting its track's mean frame interval.
func split(t *testing.T, file []byte) *source {
	t.Helper()
	s := &source{}
	r := mkv.NewReader(bytes.NewReader(file), mkv.Limits{})
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		switch ev.Kind {
		case mkv.KindHeader:
			s.header = ev.Header.Raw
			require.EqualValues(t, time.Millisecond, ev.Header.TimecodeScale)
		case mkv.KindBlock:
			s.frames = append(s.frames, srcFrame{
				frag:     len(s.frags),
				track:    ev.Block.Track,
				timecode: int64(ev.Timecode) + int64(ev.Block.RelTimecode),
				key:      ev.Block.Keyframe,
			})
		case mkv.KindClusterEnd:
			tc := int64(ev.Timecode)
			s.frags = append(s.frags, Fragment{
				Media:    bytes.Clone(ev.Raw),
				Timecode: tc,
				Start:    epoch + time.Duration(tc)*time.Millisecond,
			})
		case mkv.KindTags:
			last := &s.frags[len(s.frags)-1]
			last.Media = append(last.Media, ev.Raw...)
		}
	}
	s.finish(t)
	return s
}

// finish gives each fragment the Duration ingest would.
func (s *source) finish(t *testing.T) {
	require.NotEmpty(t, s.frags)
	for i := range s.frags {
		s.frags[i].Duration = ingestDuration(s.framesOf(i, 0))
	}
}

// regroup rewrites a Matroska file's frames as KVS fragments: a new Cluster at each video
// keyframe (in decode order), with that keyframe's timecode; frames before the first keyframe
// join the first fragment.
func regroup(t *testing.T, file []byte) *source {
	t.Helper()
	hdr, frames, err := mkv.ReadFrames(file, mkv.Limits{})
	require.NoError(t, err)
	s := &source{header: hdr.Raw}
	var tcs []int64 // each group's keyframe timecode
	var groups [][]mkv.Frame
	for _, f := range frames {
		key := f.Track == 1 && f.Keyframe
		// The first group also takes what comes before its keyframe.
		if len(groups) == 0 || key && tcs[len(tcs)-1] >= 0 {
			tcs, groups = append(tcs, -1), append(groups, nil)
		}
		if key {
			tcs[len(tcs)-1] = f.Timecode
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], f)
	}
	for i, g := range groups {
		var blocks []block
		for _, f := range g {
			blocks = append(blocks, block{track: f.Track, rel: int16(f.Timecode - tcs[i]), key: f.Keyframe, data: f.Data})
			s.frames = append(s.frames, srcFrame{frag: i, track: f.Track, timecode: f.Timecode, key: f.Keyframe})
		}
		s.frags = append(s.frags, Fragment{
			Media:    mkvCluster(uint64(tcs[i]), blocks...),
			Timecode: tcs[i],
			Start:    epoch + time.Duration(tcs[i])*time.Millisecond,
		})
	}
	s.finish(t)
	return s
}

// framesOf returns fragment i's frames of a track (0: all tracks).
func (s *source) framesOf(i int, track uint64) []srcFrame {
	var out []srcFrame
	for _, f := range s.frames {
		if f.frag == i && (track == 0 || f.track == track) {
			out = append(out, f)
		}
	}
	return out
}

// ingestDuration is internal/ingest's fragment Duration.
func ingestDuration(fs []srcFrame) time.Duration {
	type span struct{ first, last, n int64 }
	spans := map[uint64]*span{}
	first := fs[0].timecode
	for _, f := range fs {
		s := spans[f.track]
		if s == nil {
			s = &span{first: f.timecode, last: f.timecode}
			spans[f.track] = s
		}
		s.first, s.last, s.n = min(s.first, f.timecode), max(s.last, f.timecode), s.n+1
		first = min(first, f.timecode)
	}
	end := first
	for _, s := range spans {
		frame := int64(0)
		if s.n > 1 {
			frame = (s.last - s.first) / (s.n - 1)
		}
		end = max(end, s.last+frame)
	}
	return time.Duration(end-first) * time.Millisecond
}

// stamp is a frame's presentation time in a timescale and its key flag.
type stamp struct {
	pts int64
	key bool
}

// stamps returns a track's frames in presentation order, a frame of timecode tc at
// origin + tc ms, in a timescale, masked (for TS's 33 bits).
func (s *source) stamps(track uint64, origin time.Duration, timescale, mask int64) []stamp {
	var out []stamp
	for _, f := range s.frames {
		if f.track == track {
			ns := int64(origin) + f.timecode*int64(time.Millisecond)
			out = append(out, stamp{pts: ticks(ns, timescale) & mask, key: f.key})
		}
	}
	slices.SortFunc(out, func(a, b stamp) int { return cmp.Compare(a.pts, b.pts) })
	return out
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, b, 0o644))
	return path
}
