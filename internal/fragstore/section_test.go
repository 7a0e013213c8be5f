package fragstore_test

import (
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
)

// Sections open each segment once and keep every fragment's media readable, checked and as
// file ranges, after retention deleted the segments.
func TestSections(t *testing.T) {
	e := openEnv(t, t.TempDir())
	e.append(key, span(1, 40)...) // segments start at 1, 16, 31
	frags, err := e.s.After(ctx, key, 0, 100)
	require.NoError(t, err)
	ss, err := e.s.Sections(ctx, key, frags[5:35])
	require.NoError(t, err)
	files := map[any]bool{}
	for i := range 30 {
		files[ss.Section(i).File] = true
	}
	require.Len(t, files, 3, "one file per segment")

	n, err := e.s.Expire(ctx, key, frag(key, 41).ServerTime)
	require.NoError(t, err)
	require.Equal(t, 40, n)
	require.Empty(t, segFiles(e, key))

	var buf []byte
	for i := range 30 {
		want := media(uint64(i + 6))
		buf, err = ss.ReadAppend(i, buf[:0])
		require.NoError(t, err)
		require.Equal(t, want, buf)
		sec := ss.Section(i)
		require.Equal(t, int64(len(want)), sec.Length)
		got, err := io.ReadAll(io.NewSectionReader(sec.File, sec.Offset, sec.Length))
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	require.NoError(t, ss.Close())

	_, err = e.s.Sections(ctx, key, frags[:1])
	require.ErrorIs(t, err, fragstore.ErrNotFound)
	_, err = e.s.Sections(ctx, key, []*fragment.Fragment{{Seq: 99}})
	require.ErrorIs(t, err, fragstore.ErrNotFound)
}

// A backend that keeps no files has no sections.
func TestSectionsNeedFiles(t *testing.T) {
	e := openEnv(t, t.TempDir())
	e.append(key, 1)
	s, err := fragstore.Open(fragstore.Config{Media: plainMedia{e.media}, Index: e.db})
	require.NoError(t, err)
	f, err := s.Fragment(ctx, key, 1)
	require.NoError(t, err)
	_, err = s.Sections(ctx, key, []*fragment.Fragment{f})
	require.ErrorIs(t, err, fragstore.ErrNoSections)
}
