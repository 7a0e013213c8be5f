//go:build cgo

package videosrc

/*
#cgo pkg-config: libavutil
#include "videosrc.h"
*/
import "C"

import "sync"

var quietLogs sync.Once

// avError is a libav error code.
type avError int

func (e avError) Error() string {
	var b [128]C.char
	C.vs_strerror(C.int(e), &b[0], C.size_t(len(b)))
	return "libav: " + C.GoString(&b[0])
}
