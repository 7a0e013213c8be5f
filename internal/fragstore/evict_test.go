package fragstore_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEvictOldestSegment: the disk budget removes one whole segment at a time, oldest first,
// with the index entries of exactly the fragments in it, and says what time range it removed.
func TestEvictOldestSegment(t *testing.T) {
	e := openEnv(t, t.TempDir())
	e.append(key, span(1, 40)...) // 2 s apart: 30 s segments start at 1, 16, 31
	before := e.media.Usage()
	oldest, err := e.s.Oldest(ctx, key)
	require.NoError(t, err)
	require.Equal(t, uint64(1), oldest.Seq)

	ev, err := e.s.EvictOldestSegment(ctx, key)
	require.NoError(t, err)
	require.Equal(t, 15, ev.Fragments)
	require.Equal(t, uint64(1), ev.Segment)
	require.Equal(t, frag(key, 1).ServerTime.UnixMilli(), ev.From.UnixMilli())
	require.Equal(t, frag(key, 15).ServerTime.Add(frag(key, 15).Duration).UnixMilli(), ev.To.UnixMilli())
	require.Positive(t, ev.Bytes)
	require.Equal(t, before-ev.Bytes, e.media.Usage(), "the segment's space came back")
	require.NotContains(t, segFiles(e, key), fmt.Sprintf("%020d.seg", 1))
	e.check(key, span(16, 40))

	ev, err = e.s.EvictOldestSegment(ctx, key)
	require.NoError(t, err)
	require.Equal(t, 15, ev.Fragments)
	// The last segment, the one being written, goes too when it is the oldest left.
	ev, err = e.s.EvictOldestSegment(ctx, key)
	require.NoError(t, err)
	require.Equal(t, 10, ev.Fragments)
	e.check(key, nil)
	require.Zero(t, e.media.Usage())
	ev, err = e.s.EvictOldestSegment(ctx, key)
	require.NoError(t, err)
	require.Zero(t, ev.Fragments, "nothing left")

	// Numbering goes on and new fragments are stored.
	e.append(key, 41)
	e = e.reopen()
	e.check(key, []uint64{41})
}
