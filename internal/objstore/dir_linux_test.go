package objstore

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCreateNew: a new file appears whole under its name with the usual mode, an existing
// name is left alone (ErrExist: Put then renames over it), a missing directory is
// ErrNotExist.
func TestCreateNew(t *testing.T) {
	if noTmpfile.Load() {
		t.Skip("no O_TMPFILE here")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "a.jpg")
	err := createNew(p, []byte("image"))
	if err == errUnsupported {
		t.Skip("this file system has no O_TMPFILE")
	}
	require.NoError(t, err)
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "image", string(b))
	fi, err := os.Stat(p)
	require.NoError(t, err)
	ref := filepath.Join(t.TempDir(), "ref")
	require.NoError(t, os.WriteFile(ref, nil, 0o644))
	want, err := os.Stat(ref)
	require.NoError(t, err)
	require.Equal(t, want.Mode(), fi.Mode(), "the mode os.WriteFile gives (0644 less the umask)")

	require.ErrorIs(t, createNew(p, []byte("other")), fs.ErrExist)
	b, _ = os.ReadFile(p)
	require.Equal(t, "image", string(b), "an existing file is not touched")
	require.ErrorIs(t, createNew(filepath.Join(dir, "missing", "b.jpg"), []byte("x")), fs.ErrNotExist)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "nothing else is left in the directory")
}

// TestPutWithoutTmpfile: where O_TMPFILE is missing, Put writes through temporary names, with
// the same result.
func TestPutWithoutTmpfile(t *testing.T) {
	was := noTmpfile.Load()
	noTmpfile.Store(true)
	t.Cleanup(func() { noTmpfile.Store(was) })
	root := t.TempDir()
	d := &Dir{Root: root}
	ctx := context.Background()
	meta := map[string]string{"zone": "A"}
	for _, body := range []string{"one", "two"} {
		require.NoError(t, d.Put(ctx, "images", "cam/x.jpg", []byte(body), "image/jpeg", meta))
		b, err := os.ReadFile(filepath.Join(root, "images", "cam", "x.jpg"))
		require.NoError(t, err)
		require.Equal(t, body, string(b))
	}
	m, err := d.ReadMetadata("images", "cam/x.jpg")
	require.NoError(t, err)
	require.Equal(t, Metadata{ContentType: "image/jpeg", Metadata: meta}, m)
	entries, err := os.ReadDir(filepath.Join(root, "images", "cam"))
	require.NoError(t, err)
	require.Len(t, entries, 2, "image and metadata, no temporary files")
}

// TestPutSharesMetadata: objects put one after another in a directory with the same metadata
// (one fragment's images) get one metadata file under their names; other metadata, another
// directory or a put again of a key get files of their own, and the names shared before keep
// their content.
func TestPutSharesMetadata(t *testing.T) {
	if noTmpfile.Load() {
		t.Skip("no O_TMPFILE here")
	}
	root := t.TempDir()
	d := &Dir{Root: root}
	ctx := context.Background()
	frag1 := map[string]string{"aws_kinesisvideo_fragment_number": "1"}
	frag2 := map[string]string{"aws_kinesisvideo_fragment_number": "2"}
	put := func(key string, meta map[string]string) {
		t.Helper()
		require.NoError(t, d.Put(ctx, "images", key, []byte("jpeg "+key), "image/jpeg", meta))
	}
	ino := func(key string) (uint64, uint64) {
		t.Helper()
		fi, err := os.Stat(filepath.Join(root, "images", filepath.FromSlash(key)+MetadataSuffix))
		require.NoError(t, err)
		st := fi.Sys().(*syscall.Stat_t)
		return st.Ino, uint64(st.Nlink)
	}
	check := func(key string, meta map[string]string) {
		t.Helper()
		m, err := d.ReadMetadata("images", key)
		require.NoError(t, err)
		require.Equal(t, Metadata{ContentType: "image/jpeg", Metadata: meta}, m, key)
		b, err := os.ReadFile(filepath.Join(root, "images", filepath.FromSlash(key)))
		require.NoError(t, err)
		require.Equal(t, "jpeg "+key, string(b))
	}
	put("cam/a.jpg", frag1)
	put("cam/b.jpg", frag1)
	put("cam/c.jpg", frag1)
	put("other/a.jpg", frag1)
	put("cam/d.jpg", frag2)
	put("cam/e.jpg", frag2)
	a, n := ino("cam/a.jpg")
	require.Equal(t, uint64(3), n, "a, b and c share one file")
	for _, k := range []string{"cam/b.jpg", "cam/c.jpg"} {
		i, _ := ino(k)
		require.Equal(t, a, i, k)
	}
	o, _ := ino("other/a.jpg")
	require.NotEqual(t, a, o, "another directory has its own")
	dd, n := ino("cam/d.jpg")
	require.NotEqual(t, a, dd, "other metadata has its own")
	require.Equal(t, uint64(2), n, "d and e share one")

	// A put again of b replaces b's name only.
	put("cam/b.jpg", frag2)
	check("cam/b.jpg", frag2)
	check("cam/a.jpg", frag1)
	check("cam/c.jpg", frag1)
	_, n = ino("cam/a.jpg")
	require.Equal(t, uint64(2), n)

	// Names removed: the next object with that metadata gets a file of its own.
	put("cam/f.jpg", frag2)
	for _, k := range []string{"cam/b.jpg", "cam/d.jpg", "cam/e.jpg", "cam/f.jpg"} {
		require.NoError(t, os.Remove(filepath.Join(root, "images", filepath.FromSlash(k)+MetadataSuffix)))
	}
	put("cam/g.jpg", frag2)
	check("cam/g.jpg", frag2)
	_, n = ino("cam/g.jpg")
	require.Equal(t, uint64(1), n)
	check("cam/a.jpg", frag1)
	check("cam/c.jpg", frag1)
}
