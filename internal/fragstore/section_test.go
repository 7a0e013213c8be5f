package fragstore_test

import (
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
)

// Sections open each segment once and keep every fragment's media readable, checked and (in
// clear) as file ranges, after retention deleted the segments. Encrypted media is no file
// range: only ReadAppend, which decrypts, gives it.
func TestSections(t *testing.T) {
	for _, plain := range []bool{true, false} {
		t.Run(fmt.Sprintf("plain=%v", plain), func(t *testing.T) { testSections(t, plain) })
	}
}

func testSections(t *testing.T, plain bool) {
	e := openEnvWith(t, t.TempDir(), plain)
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
	require.Equal(t, plain, ss.Verbatim())

	n, err := e.s.Expire(ctx, key, frag(key, 41).ServerTime)
	require.NoError(t, err)
	require.Equal(t, 40, n)
	require.Empty(t, segFiles(e, key))

	var buf []byte
	for i := range 30 {
		want := media(uint64(i + 6))
		buf, err = ss.ReadAppend(ctx, i, buf[:0])
		require.NoError(t, err)
		require.Equal(t, want, buf)
		if !plain {
			continue
		}
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
