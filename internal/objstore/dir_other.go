//go:build !linux

package objstore

// syncEach: without syncfs(2), Put fsyncs each file itself (directory entries stay the file
// system's business there).
const syncEach = true

func syncFS(string) error { return nil }

// createNew: only Linux has O_TMPFILE; elsewhere files get a temporary name.
func createNew(string, []byte) error { return errUnsupported }

// putMetadata writes a metadata file; sharing one by hard links needs the Linux calls.
func (d *Dir) putMetadata(path string, data []byte) error { return replace(path, data) }
