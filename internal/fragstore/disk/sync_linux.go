package disk

import (
	"os"
	"syscall"
)

// Flags of segment files: writes skip the page cache where the file system allows it, and
// each write is durable (data and the size needed to read it) when it returns.
const (
	oDirect = syscall.O_DIRECT
	oDSync  = syscall.O_DSYNC
)

// datasync is fdatasync: it flushes the data and the metadata needed to read it back (the file
// size), not timestamps, saving a journal write over fsync.
func datasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = syscall.Fdatasync(int(fd))
			if serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}
