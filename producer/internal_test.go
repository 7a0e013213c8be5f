package producer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/mkv"
)

// framesSource yields prepared frames: test input for the fragmenter.
type framesSource struct {
	frames []Frame
	live   bool
}

func (s *framesSource) Track(context.Context) (Track, error) {
	return Track{CodecID: CodecH264, CodecPrivate: []byte{1, 0x64, 0, 0x1f, 0xff, 0xe0, 0}, Width: 16, Height: 16}, nil
}

func (s *framesSource) ReadFrame(ctx context.Context) (Frame, error) {
	if err := ctx.Err(); err != nil {
		return Frame{}, err
	}
	if len(s.frames) == 0 {
		return Frame{}, io.EOF
	}
	f := s.frames[0]
	s.frames = s.frames[1:]
	return f, nil
}

func (s *framesSource) Live() bool   { return s.live }
func (s *framesSource) Close() error { return nil }

// gopFrames makes n frames at fps with a keyframe every gop frames.
func gopFrames(n, fps, gop int) []Frame {
	var out []Frame
	for i := range n {
		out = append(out, Frame{PTS: time.Duration(i) * time.Second / time.Duration(fps), Keyframe: i%gop == 0, Data: []byte{0, 0, 0, 1, byte(i)}})
	}
	return out
}

// build runs the builder over frames (fast, as a file) and returns the
// fragments it made and the warnings.
func build(t *testing.T, frames []Frame, target time.Duration) ([]*fragment, []error) {
	t.Helper()
	var warns []error
	buf := newBuffer(1<<30, false, func(ev Event) {
		if ev.Kind == EventWarning {
			warns = append(warns, ev.Err)
		}
	})
	b := &builder{src: &framesSource{frames: frames}, buf: buf, target: target, tags: tagPlan{imageEvery: 1},
		fast: true, start: time.UnixMilli(1_700_000_000_000), now: time.Now, sleep: sleepCtx}
	require.NoError(t, b.run(context.Background()))
	return buf.frags, warns
}

// clusterFrames parses one fragment's bytes behind a header.
func clusterFrames(t *testing.T, f *fragment) []mkv.Frame {
	t.Helper()
	uid := [16]byte{1}
	doc := appendHeader(nil, Track{CodecID: CodecH264, CodecPrivate: []byte{1}}, uid, 7)
	hdr, frames, err := mkv.ReadFrames(append(doc, f.data...), mkv.Limits{})
	require.NoError(t, err)
	require.Equal(t, uint64(1_000_000), hdr.TimecodeScale)
	require.Equal(t, uid[:], hdr.SegmentUID)
	return frames
}

// Fragments start on keyframes once the target is reached: with 3-s GOPs
// and a 2-s target every fragment is one GOP.
func TestFragmentsFollowGOPs(t *testing.T) {
	frags, warns := build(t, gopFrames(250, 25, 75), 2*time.Second)
	require.Empty(t, warns)
	require.Len(t, frags, 4)
	for i, f := range frags {
		require.Equal(t, int64(1_700_000_000_000+3000*i), f.timecode)
		fr := clusterFrames(t, f)
		require.True(t, fr[0].Keyframe)
		require.Equal(t, f.timecode, fr[0].Timecode)
		if i < 3 {
			require.Len(t, fr, 75)
			require.Equal(t, 3*time.Second, f.duration(), "fragment %d lasts its GOP", i)
		}
	}
}

// Frames before the first keyframe cannot be decoded and are not sent.
func TestLeadingNonKeyFramesDropped(t *testing.T) {
	frames := gopFrames(60, 25, 25)[10:]
	frags, _ := build(t, frames, time.Second)
	require.Len(t, frags, 2)
	require.Equal(t, int64(1_700_000_000_000+1000), frags[0].timecode)
}

// A GOP longer than the 20 s fragment limit is cut at a non-key frame
// before the limit, with a warning; block timecodes stay in int16.
func TestLongGOPCutBeforeLimit(t *testing.T) {
	frags, warns := build(t, gopFrames(25*45, 25, 25*45), 2*time.Second)
	require.Len(t, warns, 1)
	require.Contains(t, warns[0].Error(), "fragments are limited to 20s")
	require.Len(t, frags, 3)
	for _, f := range frags {
		require.Less(t, f.last-f.first, MaxFragmentDuration.Milliseconds())
		for _, fr := range clusterFrames(t, f) {
			require.Less(t, fr.Timecode-f.timecode, int64(20_000))
		}
	}
	require.False(t, clusterFrames(t, frags[1])[0].Keyframe)
}

// Tags: with both events the notification Tags element comes first, then
// the image one with the prefix; each carries the custom pairs. Without
// events every pair is a Tags element of its own.
func TestTagsLayout(t *testing.T) {
	p := tagPlan{image: true, notify: true, imageEvery: 2, prefix: "front", pairs: []Tag{{"zone", "A"}, {"cam", "7"}}}
	want := mkv.AppendTags8(nil, []mkv.SimpleTag{{Name: tagNotify}, {Name: "zone", Value: "A"}, {Name: "cam", Value: "7"}})
	want = mkv.AppendTags8(want, []mkv.SimpleTag{{Name: tagImage}, {Name: tagImagePrefix, Value: "front"}, {Name: "zone", Value: "A"}, {Name: "cam", Value: "7"}})
	require.Equal(t, want, p.bytes(0))
	// Fragment 1 gets no image.
	require.Equal(t, mkv.AppendTags8(nil, []mkv.SimpleTag{{Name: tagNotify}, {Name: "zone", Value: "A"}, {Name: "cam", Value: "7"}}), p.bytes(1))

	plain := tagPlan{imageEvery: 1, pairs: p.pairs}
	want = mkv.AppendTags8(nil, []mkv.SimpleTag{{Name: "zone", Value: "A"}})
	want = mkv.AppendTags8(want, []mkv.SimpleTag{{Name: "cam", Value: "7"}})
	require.Equal(t, want, plain.bytes(0))
	require.Empty(t, (&tagPlan{imageEvery: 1}).bytes(0))
}

// closed adds a complete fragment of n bytes.
func closed(t *testing.T, b *buffer, tc int64, n int) *fragment {
	f := b.start(tc)
	require.NoError(t, b.add(context.Background(), f, make([]byte, n), tc, true))
	require.NoError(t, b.close(context.Background(), f, nil, 0))
	return f
}

// A live source never waits: when the buffer is full the oldest fragment
// not being sent is dropped and counted.
func TestLiveBufferDropsOldestUnsent(t *testing.T) {
	var dropped []int64
	b := newBuffer(3000, true, func(ev Event) {
		if ev.Kind == EventFragmentDropped {
			dropped = append(dropped, ev.Timecode.UnixMilli())
		}
	})
	f1 := closed(t, b, 1000, 1000)
	f1.sentBy = 1 // in flight
	closed(t, b, 2000, 1000)
	closed(t, b, 3000, 900)
	closed(t, b, 4000, 1000) // over the limit: 2000 goes, not the one in flight
	require.Equal(t, []int64{2000}, dropped)
	require.Equal(t, int64(1), b.snapshot().Dropped)
	require.LessOrEqual(t, b.bytes, int64(3000))
	b.confirm(1, 1000)
	require.Equal(t, int64(1), b.snapshot().Persisted)
	require.Equal(t, int64(2), b.snapshot().Pending)
}

// A file waits for room instead, until a fragment is confirmed.
func TestFileBufferWaitsForRoom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBuffer(2000, false, nil)
		f1 := closed(t, b, 1000, 1500)
		f1.sentBy = 1
		f2 := b.start(2000)
		added := make(chan error, 1)
		go func() { added <- b.add(context.Background(), f2, make([]byte, 1000), 2000, true) }()
		synctest.Wait() // the add has returned or is blocked for good
		select {
		case <-added:
			t.Fatal("the file source did not wait for room")
		default:
		}
		b.confirm(1, 1000)
		require.NoError(t, <-added)

		// A cancelled wait returns the context's error.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		require.ErrorIs(t, b.add(ctx, b.start(3000), make([]byte, 5000), 3000, true), context.Canceled)
	})
}

// The PIC's retry rule (§3.7).
func TestAckErrorRetriable(t *testing.T) {
	for id, want := range map[int]bool{4000: true, 4001: false, 4002: false, 4003: true, 4004: false, 4012: false,
		4500: false, 4507: false, 5000: true, 5001: true, 7777: true} {
		require.Equal(t, want, (&AckError{ID: id}).Retriable(), "ErrorId %d", id)
	}
}

// Writer output parses back with the project's Matroska reader.
func TestHeaderParses(t *testing.T) {
	tr := Track{CodecID: CodecH265, CodecPrivate: bytes.Repeat([]byte{9}, 300), Width: 1920, Height: 1080}
	doc := appendHeader(nil, tr, [16]byte{}, 42)
	doc = appendClusterStart(doc, 1_700_000_000_123)
	doc = appendSimpleBlock(doc, -5, true, []byte("frame"))
	hdr, frames, err := mkv.ReadFrames(doc, mkv.Limits{})
	require.NoError(t, err)
	require.Len(t, hdr.Tracks, 1)
	got := hdr.Tracks[0]
	require.Equal(t, CodecH265, got.CodecID)
	require.Equal(t, tr.CodecPrivate, got.CodecPrivate)
	require.Equal(t, uint64(1920), got.Width)
	require.Equal(t, uint64(1080), got.Height)
	require.Equal(t, uint64(42), got.UID)
	require.Len(t, frames, 1)
	require.Equal(t, int64(1_700_000_000_118), frames[0].Timecode)
	require.True(t, frames[0].Keyframe)
	require.Equal(t, []byte("frame"), frames[0].Data)
	require.True(t, bytes.HasPrefix(doc, ebmlHeader))
	require.False(t, errors.Is(err, io.EOF))
}

// A fragment refused while it is still being built is not sent again and
// leaves the buffer once complete.
func TestSkipWhileBuilding(t *testing.T) {
	b := newBuffer(1<<20, true, nil)
	f := b.start(1000)
	require.NoError(t, b.add(context.Background(), f, make([]byte, 100), 1000, true))
	f.sentBy = 1
	require.True(t, b.skip(1, 1000, errors.New("ERROR 4002")))
	require.NoError(t, b.add(context.Background(), f, make([]byte, 100), 1040, true))
	require.Len(t, b.frags, 1)
	require.NoError(t, b.close(context.Background(), f, nil, 0))
	require.Empty(t, b.frags)
	require.Zero(t, b.bytes)
	st := b.snapshot()
	require.Equal(t, int64(1), st.Skipped)
	require.Zero(t, st.Pending)
}

// ebmlHeader is the EBML header of §3.5 as the KVS producer SDK writes it:
// EBMLVersion 1, ReadVersion 1, MaxIDLength 4, MaxSizeLength 8, DocType
// "matroska", DocTypeVersion 2, DocTypeReadVersion 2.
var ebmlHeader = []byte{
	0x1A, 0x45, 0xDF, 0xA3, 0xA3,
	0x42, 0x86, 0x81, 0x01,
	0x42, 0xF7, 0x81, 0x01,
	0x42, 0xF2, 0x81, 0x04,
	0x42, 0xF3, 0x81, 0x08,
	0x42, 0x82, 0x88, 'm', 'a', 't', 'r', 'o', 's', 'k', 'a',
	0x42, 0x87, 0x81, 0x02,
	0x42, 0x85, 0x81, 0x02,
}
