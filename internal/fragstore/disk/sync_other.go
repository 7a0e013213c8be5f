//go:build !linux

package disk

import "os"

// No O_DIRECT here: segment writes go through the page cache, synced by O_SYNC.
const (
	oDirect = 0
	oDSync  = os.O_SYNC
)

// datasync falls back to fsync where fdatasync is not available.
func datasync(f *os.File) error { return f.Sync() }
