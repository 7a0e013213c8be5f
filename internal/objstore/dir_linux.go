package objstore

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// syncEach: Linux has syncfs(2), so Put does not fsync file by file.
const syncEach = false

// syncFS flushes the whole file system holding dir: written files, their names, directories.
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if os.IsNotExist(err) {
		return nil // nothing was ever put
	}
	if err != nil {
		return err
	}
	defer f.Close()
	for {
		err = unix.Syncfs(int(f.Fd()))
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return &os.PathError{Op: "syncfs", Path: dir, Err: err}
	}
	return nil
}

// noTmpfile is set once O_TMPFILE or linking it by /proc/self/fd failed for a reason other
// than the path (a file system or a sandbox without them): from then on createNew reports
// errUnsupported at once.
var noTmpfile atomic.Bool

// createNew writes data to a file at path that does not exist yet, visible only once whole:
// an unnamed file in path's directory (O_TMPFILE), linked in under path when written. That is
// one directory entry made, where a temporary name renamed into place makes one, removes it
// and makes another: a third less CPU per file on ext4 (the local folder creates two small
// files per image). It returns an error wrapping fs.ErrExist when path exists and
// fs.ErrNotExist when its directory does not, errUnsupported where the file system cannot;
// the caller then takes the temporary-name way. Nothing is left behind on failure.
func createNew(path string, data []byte) error {
	fd, err := createOpen(path, data)
	if err == nil {
		unix.Close(fd)
	}
	return err
}

// createOpen is createNew, returning the new file's descriptor open (the caller closes it).
func createOpen(path string, data []byte) (int, error) {
	if noTmpfile.Load() {
		return -1, errUnsupported
	}
	fd, err := openTmpfile(filepath.Dir(path))
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return -1, &os.PathError{Op: "open", Path: filepath.Dir(path), Err: err}
	case errors.Is(err, unix.EISDIR), errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EINVAL):
		noTmpfile.Store(true)
		return -1, errUnsupported
	case err != nil:
		return -1, &os.PathError{Op: "open", Path: filepath.Dir(path), Err: err}
	}
	for b := data; len(b) > 0; {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			unix.Close(fd)
			return -1, &os.PathError{Op: "write", Path: path, Err: err}
		}
		b = b[n:]
	}
	// linkat(AT_EMPTY_PATH) would need CAP_DAC_READ_SEARCH; the /proc link needs nothing.
	err = linkFD(fd, path)
	if err == nil {
		return fd, nil
	}
	unix.Close(fd)
	switch {
	case errors.Is(err, unix.EEXIST):
		return -1, &os.PathError{Op: "link", Path: path, Err: fs.ErrExist}
	case errors.Is(err, unix.ENOENT) && !procMounted():
		noTmpfile.Store(true)
		return -1, errUnsupported
	}
	return -1, &os.PathError{Op: "link", Path: path, Err: err}
}

// linkFD gives the open file fd the name path.
func linkFD(fd int, path string) error {
	return unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
}

// putMetadata writes the metadata file path: a new name for the metadata file Put created
// last in the same directory when its content is the same (see Dir), else a file of its own
// (replace), which is kept open for the next.
func (d *Dir) putMetadata(path string, data []byte) error {
	dir := filepath.Dir(path)
	d.mu.Lock()
	if k, ok := d.kept[dir]; ok && bytes.Equal(k.data, data) {
		// The kept file is the one created here, never written since: linking it cannot
		// give the name other content. It fails when the name exists (a put again) or the
		// file has no name left (removed): then it is written as usual.
		err := linkFD(k.fd, path)
		d.mu.Unlock()
		if err == nil {
			return nil
		}
		return replace(path, data)
	}
	d.mu.Unlock()
	var fd int
	err := inDir(path, func() (err error) {
		fd, err = createOpen(path, data)
		return err
	})
	if err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, errUnsupported) {
			return replace(path, data)
		}
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.kept[dir]; ok {
		unix.Close(old.fd)
		delete(d.kept, dir)
	}
	if d.kept == nil {
		d.kept = map[string]keptFile{}
	}
	for k, f := range d.kept {
		if len(d.kept) < maxKept {
			break
		}
		unix.Close(f.fd)
		delete(d.kept, k)
	}
	d.kept[dir] = keptFile{fd: fd, data: bytes.Clone(data)}
	return nil
}

func openTmpfile(dir string) (int, error) {
	for {
		fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func procMounted() bool {
	_, err := os.Stat("/proc/self/fd")
	return err == nil
}
