package remux

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/abema/go-mp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/pmp4"
)

// clipMoov returns pres's ftyp and moov as mediacommon writes them (track headers, edit lists,
// codec boxes), with the sample tables of tracks[t] in the t-th track: every sample in a chunk
// of its own, stco giving each sample's offset, offs[t], counted from the start of the mdat's
// payload. So the mdat can hold the samples wherever the clip puts them (the fragments' stored
// bytes, Matroska framing included). pres has one sample a track (see presentation): go-mp4
// marshals tables by reflection, some microseconds an entry, which made the sample tables of
// a 200-fragment clip cost more than reading its media. The tables here are plain arrays of
// big-endian integers (ISO/IEC 14496-12 §8.6-8.7). The mdat starts right after what clipMoov
// returns.
func clipMoov(pres *pmp4.Presentation, tracks []*clipTrack, offs [][]uint32) ([]byte, error) {
	var cw captureWriter
	if err := pres.Marshal(&cw); !errors.Is(err, errCaptured) {
		return nil, fmt.Errorf("marshal moov: %w", err)
	}
	in := bytes.NewReader(cw.b)
	var out appendBuffer // the io.WriteSeeker mp4.Writer needs: it goes back to fix box sizes
	w := mp4.NewWriter(&out)
	var stcos []int // where each stco's entries start in out
	trak := -1
	var table []byte // reused for each table
	_, err := mp4.ReadBoxStructure(in, func(h *mp4.ReadHandle) (any, error) {
		typ := h.BoxInfo.Type
		switch typ {
		case mp4.BoxTypeMoov(), mp4.BoxTypeTrak(), mp4.BoxTypeMdia(), mp4.BoxTypeMinf(), mp4.BoxTypeStbl():
			if typ == mp4.BoxTypeTrak() {
				if trak++; trak >= len(tracks) || trak >= len(offs) {
					return nil, fmt.Errorf("track %d of %d", trak+1, len(tracks))
				}
			}
			if _, err := w.StartBox(&mp4.BoxInfo{Type: typ}); err != nil {
				return nil, err
			}
			if _, err := h.Expand(); err != nil {
				return nil, err
			}
			_, err := w.EndBox()
			return nil, err
		case mp4.BoxTypeStts():
			ss := tracks[trak].samples
			table = stts(table[:0], ss)
			if err := rawBox(w, typ, table); err != nil {
				return nil, err
			}
			if table = stss(table[:0], ss); table == nil {
				return nil, nil // every sample is a sync sample: no stss (§8.6.2)
			}
			return nil, rawBox(w, mp4.BoxTypeStss(), table)
		case mp4.BoxTypeStss():
			return nil, nil // written after stts
		case mp4.BoxTypeCtts():
			table = ctts(table[:0], tracks[trak].samples)
			return nil, rawBox(w, typ, table)
		case mp4.BoxTypeStsc():
			// One entry: from chunk 1 on, 1 sample a chunk, sample description 1.
			return nil, rawBox(w, typ, []byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1})
		case mp4.BoxTypeStsz():
			table = stsz(table[:0], tracks[trak].samples)
			return nil, rawBox(w, typ, table)
		case mp4.BoxTypeStco():
			stcos = append(stcos, out.pos+16) // box header 8, version and flags 4, count 4
			table = binary.BigEndian.AppendUint32(append(table[:0], 0, 0, 0, 0), uint32(len(offs[trak])))
			for _, o := range offs[trak] {
				table = binary.BigEndian.AppendUint32(table, o)
			}
			return nil, rawBox(w, typ, table)
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

// rawBox writes a box of type typ around payload.
func rawBox(w *mp4.Writer, typ mp4.BoxType, payload []byte) error {
	if _, err := w.StartBox(&mp4.BoxInfo{Type: typ}); err != nil {
		return err
	}
	if _, err := w.Write(payload); err != nil {
		return err
	}
	_, err := w.EndBox()
	return err
}

// stts appends the decoding time-to-sample table: runs of equal durations.
func stts(b []byte, ss []*pmp4.Sample) []byte {
	return runs(append(b, 0, 0, 0, 0), ss, func(s *pmp4.Sample) uint32 { return s.Duration })
}

// stss appends the sync sample table (1-based sample numbers), or returns nil when every
// sample is a sync sample.
func stss(b []byte, ss []*pmp4.Sample) []byte {
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
	n := uint32(0)
	for k, s := range ss {
		if !s.IsNonSyncSample {
			b = binary.BigEndian.AppendUint32(b, uint32(k+1))
			n++
		}
	}
	if int(n) == len(ss) {
		return nil
	}
	binary.BigEndian.PutUint32(b[4:], n)
	return b
}

// ctts appends the composition offset table, version 1 (signed offsets): runs of equal offsets.
func ctts(b []byte, ss []*pmp4.Sample) []byte {
	return runs(append(b, 1, 0, 0, 0), ss, func(s *pmp4.Sample) uint32 { return uint32(s.PTSOffset) })
}

// runs appends a run-length table (entry count, then count and value per run) of value over
// ss to b, which already holds the box's version and flags.
func runs(b []byte, ss []*pmp4.Sample, value func(*pmp4.Sample) uint32) []byte {
	at := len(b)
	b = append(b, 0, 0, 0, 0) // the count, set below
	n := uint32(0)
	for k := 0; k < len(ss); {
		v, run := value(ss[k]), 1
		for k+run < len(ss) && value(ss[k+run]) == v {
			run++
		}
		b = binary.BigEndian.AppendUint32(b, uint32(run))
		b = binary.BigEndian.AppendUint32(b, v)
		n++
		k += run
	}
	binary.BigEndian.PutUint32(b[at:], n)
	return b
}

// stsz appends the sample size table, a size for every sample.
func stsz(b []byte, ss []*pmp4.Sample) []byte {
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0) // version and flags; sample_size 0: sizes follow
	b = binary.BigEndian.AppendUint32(b, uint32(len(ss)))
	for _, s := range ss {
		b = binary.BigEndian.AppendUint32(b, s.PayloadSize)
	}
	return b
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
