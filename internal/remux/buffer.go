package remux

import (
	"errors"
	"io"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
)

// appendBuffer is the io.WriteSeeker mediacommon's MP4 writers need (they go back to patch
// sizes and offsets), writing into the caller's dst so that Append* functions append in place.
// Offsets count from the start of the slice, dst's earlier bytes included: the writers only
// use differences and their own seeks.
type appendBuffer struct {
	b   []byte
	pos int
}

func (w *appendBuffer) Write(p []byte) (int, error) {
	// Seek keeps pos within b: overwrite what is there, append the rest.
	n := copy(w.b[w.pos:], p)
	w.b = append(w.b, p[n:]...)
	w.pos += len(p)
	return len(p), nil
}

func (w *appendBuffer) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += int64(w.pos)
	case io.SeekEnd:
		offset += int64(len(w.b))
	}
	if offset < 0 || offset > int64(len(w.b)) {
		return 0, errors.New("remux: seek outside the buffer")
	}
	w.pos = int(offset)
	return offset, nil
}

// initMP4 marshals an init segment with one track of ID 1.
func initMP4(timescale uint32, c fmp4.Codec) ([]byte, error) {
	init := fmp4.Init{Tracks: []*fmp4.InitTrack{{ID: 1, TimeScale: timescale, Codec: c}}}
	var w appendBuffer
	if err := init.Marshal(&w); err != nil {
		return nil, err
	}
	return w.b, nil
}
