package remux

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/mkv"
)

// table is what a stored frame table holds for a fragment's media: each frame's place.
func table(t *testing.T, media []byte) []mkv.FramePlace {
	t.Helper()
	frames, err := mkv.ClusterFrames(media, nil)
	require.NoError(t, err)
	out := make([]mkv.FramePlace, len(frames))
	for i, f := range frames {
		out[i] = mkv.FramePlace{Track: f.Track, Timecode: f.Timecode, Keyframe: f.Keyframe,
			Offset: int64(cap(media) - cap(f.Data)), Size: int64(len(f.Data))}
	}
	return out
}

// A clip whose first pass reads frame tables instead of the media is byte for byte the clip
// planned from the media, on every source and shape; where payloads must be rewritten (NAL
// unit lengths other than 4), planning from tables answers ErrNeedsMedia.
func TestClipFromFrameTables(t *testing.T) {
	forEachSource(t, func(t *testing.T, c mediaCase, s *source) {
		m, err := Open(s.header)
		require.NoError(t, err)
		var fromMedia bytes.Buffer
		_, err = m.WriteClip(&fromMedia, len(s.frags), func(i int, _ []byte) (Fragment, error) { return s.frags[i], nil })
		require.NoError(t, err)

		pass := 1
		clip, err := m.PlanClip(len(s.frags), func(i int, _ []byte) (Fragment, error) {
			f := s.frags[i]
			if pass == 1 {
				f.Frames, f.Size, f.Media = table(t, f.Media), int64(len(f.Media)), nil
			}
			return f, nil
		})
		if m.video.lengthSize != 4 {
			require.True(t, errors.Is(err, ErrNeedsMedia), "%v", err)
			return
		}
		require.NoError(t, err)
		pass = 2
		var fromTables bytes.Buffer
		n, err := clip.Send(&fromTables, nil)
		require.NoError(t, err)
		require.EqualValues(t, clip.Size(), n)
		require.Equal(t, fromMedia.Bytes(), fromTables.Bytes())
	})
}

// A frame whose NAL unit lengths do not add up, found only when the second pass reads the
// media of a clip planned from tables, fails the clip before that fragment's media is sent.
func TestClipFromFrameTablesChecksFrames(t *testing.T) {
	s := sourceFor(t, mediaCases[0], shapes[0])
	m, err := Open(s.header)
	require.NoError(t, err)
	if m.video.lengthSize != 4 {
		t.Skip("the first case rewrites payloads")
	}
	pass := 1
	clip, err := m.PlanClip(len(s.frags), func(i int, _ []byte) (Fragment, error) {
		f := s.frags[i]
		if pass == 1 {
			f.Frames, f.Size, f.Media = table(t, f.Media), int64(len(f.Media)), nil
			return f, nil
		}
		if i == 1 { // the first video frame's first NAL length now runs past the frame
			f.Media = bytes.Clone(f.Media)
			for _, fp := range table(t, f.Media) {
				if fp.Track == 1 {
					f.Media[fp.Offset] = 0x7f
					break
				}
			}
		}
		return f, nil
	})
	require.NoError(t, err)
	pass = 2
	var out bytes.Buffer
	_, err = clip.Send(&out, nil)
	require.ErrorIs(t, err, ErrInvalidFrame)
}
