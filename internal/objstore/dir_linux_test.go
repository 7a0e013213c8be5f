package objstore

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
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
