package remux

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/abema/go-mp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/pmp4"
)

// clipMoov returns pres's ftyp and moov as mediacommon writes them, with every sample in a
// chunk of its own: stsc says one sample per chunk and stco gives each sample's offset, offs[t]
// for the t-th track, counted from the start of the mdat's payload. So the mdat can hold the
// samples wherever the clip puts them (the fragments' stored bytes, Matroska framing included),
// while mediacommon keeps writing everything else (sample sizes and times, edit lists, codec
// boxes). The mdat starts right after what clipMoov returns.
func clipMoov(pres *pmp4.Presentation, offs [][]uint32) ([]byte, error) {
	var cw captureWriter
	if err := pres.Marshal(&cw); !errors.Is(err, errCaptured) {
		return nil, fmt.Errorf("marshal moov: %w", err)
	}
	in := bytes.NewReader(cw.b)
	var out seekBuffer
	w := mp4.NewWriter(&out)
	var stcos []int // where each stco's entries start in out
	trak := -1
	_, err := mp4.ReadBoxStructure(in, func(h *mp4.ReadHandle) (any, error) {
		switch h.BoxInfo.Type {
		case mp4.BoxTypeMoov(), mp4.BoxTypeTrak(), mp4.BoxTypeMdia(), mp4.BoxTypeMinf(), mp4.BoxTypeStbl():
			if h.BoxInfo.Type == mp4.BoxTypeTrak() {
				trak++
			}
			if _, err := w.StartBox(&mp4.BoxInfo{Type: h.BoxInfo.Type}); err != nil {
				return nil, err
			}
			if _, err := h.Expand(); err != nil {
				return nil, err
			}
			_, err := w.EndBox()
			return nil, err
		case mp4.BoxTypeStsc():
			return nil, writeBox(w, &mp4.Stsc{EntryCount: 1, Entries: []mp4.StscEntry{{FirstChunk: 1, SamplesPerChunk: 1, SampleDescriptionIndex: 1}}})
		case mp4.BoxTypeStco():
			if trak < 0 || trak >= len(offs) {
				return nil, fmt.Errorf("stco of track %d of %d", trak+1, len(offs))
			}
			stcos = append(stcos, out.off+16) // box header 8, version and flags 4, count 4
			return nil, writeBox(w, &mp4.Stco{EntryCount: uint32(len(offs[trak])), ChunkOffset: offs[trak]})
		default:
			return nil, w.CopyBox(in, &h.BoxInfo)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("rewrite moov: %w", err)
	}
	if len(stcos) != len(offs) {
		return nil, fmt.Errorf("rewrite moov: %d stco boxes for %d tracks", len(stcos), len(offs))
	}
	base := uint64(len(out.b)) + 8 // the mdat header
	for t, at := range stcos {
		for k := range offs[t] {
			p := out.b[at+4*k:]
			v := base + uint64(binary.BigEndian.Uint32(p))
			if v > math.MaxUint32 {
				return nil, errClipTooBig
			}
			binary.BigEndian.PutUint32(p, uint32(v))
		}
	}
	return out.b, nil
}

func writeBox(w *mp4.Writer, box mp4.IImmutableBox) error {
	if _, err := w.StartBox(&mp4.BoxInfo{Type: box.GetType()}); err != nil {
		return err
	}
	if _, err := mp4.Marshal(w, box, mp4.Context{}); err != nil {
		return err
	}
	_, err := w.EndBox()
	return err
}

// errCaptured stops pmp4's Marshal once it has written ftyp and moov.
var errCaptured = errors.New("moov captured")

// captureWriter keeps the first Write (pmp4 writes ftyp and moov in one) and refuses the next
// (the mdat).
type captureWriter struct{ b []byte }

func (w *captureWriter) Write(p []byte) (int, error) {
	if w.b != nil {
		return 0, errCaptured
	}
	w.b = append([]byte{}, p...)
	return len(p), nil
}

// seekBuffer is the io.WriteSeeker mp4.Writer needs: it goes back to fix box sizes.
type seekBuffer struct {
	b   []byte
	off int
}

func (s *seekBuffer) Write(p []byte) (int, error) {
	if end := s.off + len(p); end > len(s.b) {
		s.b = append(s.b, make([]byte, end-len(s.b))...)
	}
	s.off += copy(s.b[s.off:], p)
	return len(p), nil
}

func (s *seekBuffer) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += int64(s.off)
	case io.SeekEnd:
		offset += int64(len(s.b))
	}
	if offset < 0 || offset > int64(len(s.b)) {
		return 0, fmt.Errorf("seek to %d of %d bytes", offset, len(s.b))
	}
	s.off = int(offset)
	return offset, nil
}
