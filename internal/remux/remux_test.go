package remux

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/stretchr/testify/require"
)

// checkStreams compares what ffprobe reads of the tracks with the source's parameters.
func checkStreams(t *testing.T, c mediaCase, p *probed, video, audio bool) {
	t.Helper()
	if video {
		v := p.stream(t, "video")
		require.Equal(t, map[bool]string{false: "h264", true: "hevc"}[c.hevc], v.CodecName)
		require.Equal(t, 640, v.Width)
		require.Equal(t, 360, v.Height)
	}
	if audio {
		a := p.stream(t, "audio")
		require.Equal(t, "aac", a.CodecName)
		require.Equal(t, "48000", a.SampleRate)
		require.Equal(t, 1, a.Channels)
	}
}

func TestOpenReadsTracks(t *testing.T) {
	for _, c := range mediaCases {
		t.Run(c.name, func(t *testing.T) {
			m, err := Open(sourceFor(t, c, shapeClusters).header)
			require.NoError(t, err)
			require.EqualValues(t, 1, m.Video.Number)
			require.True(t, m.Video.Video)
			require.Equal(t, 640, m.Video.Width)
			require.Equal(t, 360, m.Video.Height)
			require.NotNil(t, m.Audio)
			require.Equal(t, Track{Number: 2, Codec: "mp4a.40.2", SampleRate: 48000, Channels: 1}, *m.Audio)
		})
	}
}

// TestMP4Fragments plays each track's init segment and fragments, concatenated as an HLS or
// DASH player appends them, through ffprobe and ffmpeg.
func TestMP4Fragments(t *testing.T) {
	forEachSource(t, func(t *testing.T, c mediaCase, s *source) {
		m, err := Open(s.header)
		require.NoError(t, err)
		for _, tr := range []struct {
			number    uint64
			timescale int64
			kind      string
		}{{1, 90000, "video"}, {2, 48000, "audio"}} {
			out, err := m.InitMP4(tr.number)
			require.NoError(t, err)
			for i, f := range s.frags {
				n := len(out)
				out, err = m.AppendMP4Fragment(out, f, tr.number, uint32(i+1))
				require.NoError(t, err)
				checkPart(t, out[n:], uint32(i+1), tr.timescale, s.framesOf(i, tr.number), c.bframes)
			}
			path := writeFile(t, tr.kind+".mp4", out)
			p := probe(t, path)
			require.Len(t, p.Streams, 1)
			checkStreams(t, c, p, tr.kind == "video", tr.kind == "audio")
			require.Equal(t, fmt.Sprintf("1/%d", tr.timescale), p.Streams[0].TimeBase)
			// Every frame, at its time to the tick, keyframes where the source had them.
			requireStamps(t, s.stamps(tr.number, epoch, tr.timescale, -1), p.stamps(t, 0, -1))
			decodes(t, path)
		}
	})
}

// checkPart reads a moof+mdat back with mediacommon: one track, the sequence number, a
// sample per frame, composition offsets that are never negative, and a tfdt that puts the
// earliest presented sample at the fragment's earliest frame time; without B-frames tfdt is
// that time itself.
func checkPart(t *testing.T, b []byte, seq uint32, timescale int64, frames []srcFrame, bframes bool) {
	t.Helper()
	var parts fmp4.Parts
	require.NoError(t, parts.Unmarshal(b))
	require.Len(t, parts, 1)
	require.Equal(t, seq, parts[0].SequenceNumber)
	require.Len(t, parts[0].Tracks, 1)
	pt := parts[0].Tracks[0]
	require.Len(t, pt.Samples, len(frames))
	earliest := frames[0].timecode
	for _, f := range frames {
		earliest = min(earliest, f.timecode)
	}
	want := ticks(int64(epoch)+earliest*int64(time.Millisecond), timescale)
	first, dts := int64(math.MaxInt64), int64(pt.BaseTime)
	for _, s := range pt.Samples {
		require.GreaterOrEqual(t, s.PTSOffset, int32(0))
		first = min(first, dts+int64(s.PTSOffset))
		dts += int64(s.Duration)
	}
	require.Equal(t, want, first)
	if !bframes {
		require.EqualValues(t, want, pt.BaseTime)
	}
}

// TestTS plays the fragments' TS segments, concatenated as an HLS player reads them.
func TestTS(t *testing.T) {
	forEachSource(t, func(t *testing.T, c mediaCase, s *source) {
		m, err := Open(s.header)
		require.NoError(t, err)
		var out []byte
		for _, f := range s.frags {
			n := len(out)
			out, err = m.AppendTS(out, f)
			require.NoError(t, err)
			require.Zero(t, (len(out)-n)%188)
			// Each segment starts with PAT (PID 0) and PMT, so a player can start at any.
			require.Equal(t, []byte{0x47, 0x40, 0x00}, out[n:n+3])
		}
		path := writeFile(t, "segments.ts", out)
		p := probe(t, path)
		require.Len(t, p.Streams, 2)
		checkStreams(t, c, p, true, true)
		v, a := p.stream(t, "video"), p.stream(t, "audio")
		requireStamps(t, s.stamps(1, epoch, 90000, tsMask), p.stamps(t, v.Index, tsMask))
		require.Equal(t, len(s.stamps(2, epoch, 90000, tsMask)), len(p.stamps(t, a.Index, tsMask)))
		requireStamps(t, s.stamps(2, epoch, 90000, tsMask), p.stamps(t, a.Index, tsMask))
		p.checkDecodeOrder(t, v.Index)
		decodes(t, path)
	})
}

// TestClip plays a GetClip MP4 of every fragment.
func TestClip(t *testing.T) {
	testClip(t, (*Media).WriteClip)
}

// The clip plays the same when its payloads are rewritten (as NAL unit lengths other than 4
// bytes need) instead of sent as stored.
func TestClipRewritten(t *testing.T) {
	testClip(t, func(m *Media, w io.Writer, n int, frag func(int, []byte) (Fragment, error)) (int64, error) {
		c, err := m.planClip(n, frag, false)
		if err != nil {
			return 0, err
		}
		require.False(t, c.Verbatim())
		return c.Send(w, nil)
	})
}

func testClip(t *testing.T, write func(m *Media, w io.Writer, n int, frag func(int, []byte) (Fragment, error)) (int64, error)) {
	forEachSource(t, func(t *testing.T, c mediaCase, s *source) {
		m, err := Open(s.header)
		require.NoError(t, err)
		var out bytes.Buffer
		calls := make([]int, len(s.frags))
		n, err := write(m, &out, len(s.frags), func(i int, _ []byte) (Fragment, error) {
			calls[i]++
			return s.frags[i], nil
		})
		require.NoError(t, err)
		require.EqualValues(t, out.Len(), n)
		for i, c := range calls {
			require.Equal(t, 2, c, "fragment %d fetched %d times", i, c)
		}
		require.Equal(t, []string{"ftyp", "moov", "mdat"}, topBoxes(t, out.Bytes()))

		path := writeFile(t, "clip.mp4", out.Bytes())
		p := probe(t, path)
		require.Len(t, p.Streams, 2)
		checkStreams(t, c, p, true, true)
		// The timeline starts at 0 at fragment 0's first frame.
		zero := s.framesOf(0, 0)[0].timecode
		for _, f := range s.framesOf(0, 0) {
			zero = min(zero, f.timecode)
		}
		origin := -time.Duration(zero) * time.Millisecond
		v, a := p.stream(t, "video"), p.stream(t, "audio")
		requireStamps(t, s.stamps(1, origin, 90000, -1), p.stamps(t, v.Index, -1))
		requireStamps(t, s.stamps(2, origin, 48000, -1), p.stamps(t, a.Index, -1))
		decodes(t, path)
	})
}

// forEachSource runs a test on every case in every shape of fragments.
func forEachSource(t *testing.T, test func(t *testing.T, c mediaCase, s *source)) {
	for _, c := range mediaCases {
		for _, shape := range shapes {
			t.Run(c.name+"/"+shape, func(t *testing.T) { test(t, c, sourceFor(t, c, shape)) })
		}
	}
}

// One Media serves concurrent requests, which get what a lone request gets.
func TestMediaIsSafeForConcurrentUse(t *testing.T) {
	s := sourceFor(t, mediaCases[0], shapeGOPs)
	m, err := Open(s.header)
	require.NoError(t, err)
	outputs := func() [][]byte {
		var out [][]byte
		for i, f := range s.frags {
			out = append(out, must(m.AppendMP4Fragment(nil, f, 1, uint32(i))), must(m.AppendMP4Fragment(nil, f, 2, uint32(i))), must(m.AppendTS(nil, f)))
		}
		var clip bytes.Buffer
		must(m.WriteClip(&clip, len(s.frags), func(i int, _ []byte) (Fragment, error) { return s.frags[i], nil }))
		return append(out, clip.Bytes())
	}
	want := outputs()
	var wg sync.WaitGroup
	got := make([][][]byte, 4)
	for g := range got {
		wg.Go(func() { got[g] = outputs() })
	}
	wg.Wait()
	for _, g := range got {
		require.Equal(t, want, g)
	}
}
