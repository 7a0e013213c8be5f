package disk

import (
	"sync"
	"unsafe"
)

// A stage is a blockSize-aligned buffer in which Append assembles a record: O_DIRECT needs
// aligned memory as well as aligned offsets and lengths. Stages are pooled, so their number
// follows the number of appends in flight, not of streams.
type stage struct{ b []byte }

// maxPooledStage keeps the odd 50 MB fragment's stage out of the pool.
const maxPooledStage = 8 << 20

var stages sync.Pool

// getStage returns a stage of at least n bytes.
func getStage(n int) *stage {
	if s, _ := stages.Get().(*stage); s != nil && cap(s.b) >= n {
		return s
	}
	// Round up so that a stream's slightly larger next fragment reuses this one.
	size := (n + 256<<10 - 1) &^ (256<<10 - 1)
	raw := make([]byte, size+blockSize)
	skip := (blockSize - int(uintptr(unsafe.Pointer(unsafe.SliceData(raw)))%blockSize)) % blockSize
	return &stage{b: raw[skip : skip+size : skip+size]}
}

func putStage(s *stage) {
	if cap(s.b) <= maxPooledStage {
		stages.Put(s)
	}
}
