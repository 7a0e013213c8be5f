package objstore

import (
	"os"

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
