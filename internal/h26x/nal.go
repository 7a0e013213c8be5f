// Package h26x handles H.264 and H.265 bitstreams in pure Go: it splits
// Annex-B byte streams into NAL units, converts them to the length-prefixed
// form Matroska and MP4 store (AVCC, 4-byte lengths), reads the sequence
// parameter sets for the picture size, builds the avcC and hvcC decoder
// configuration records, and tells keyframes.
//
// The producer's sources (files through libavformat, RTSP cameras) use it
// to turn whatever framing they get into producer.Frame.
package h26x

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Codec is H264 or H265.
type Codec int

// Codecs.
const (
	H264 Codec = iota + 1
	H265
)

func (c Codec) String() string {
	switch c {
	case H264:
		return "H.264"
	case H265:
		return "H.265"
	}
	return fmt.Sprintf("Codec(%d)", int(c))
}

// ErrNotAnnexB is returned by SplitAnnexB for data that does not start
// with a start code.
var ErrNotAnnexB = errors.New("h26x: data does not start with an Annex-B start code")

// SplitAnnexB returns the NAL units of an Annex-B byte stream (each
// preceded by 00 00 01 or 00 00 00 01), without start codes and without
// the zero bytes that may trail a NAL unit. The units share b's memory.
// Empty units (two start codes in a row) are left out.
func SplitAnnexB(b []byte) ([][]byte, error) {
	start := startCode(b, 0)
	if start < 0 || trimZeros(b[:start-3]) != 0 {
		return nil, ErrNotAnnexB
	}
	var nalus [][]byte
	for start < len(b) {
		next := startCode(b, start)
		end := len(b)
		if next >= 0 {
			end = next - 3
		}
		if n := b[start : trimZeros(b[start:end])+start]; len(n) > 0 {
			nalus = append(nalus, n)
		}
		if next < 0 {
			break
		}
		start = next
	}
	return nalus, nil
}

// startCode returns the index just after the first 00 00 01 at or after
// from, or -1.
func startCode(b []byte, from int) int {
	for i := from; i+2 < len(b); {
		switch {
		case b[i+2] > 1:
			i += 3
		case b[i+2] == 1 && b[i+1] == 0 && b[i] == 0:
			return i + 3
		default:
			i++
		}
	}
	return -1
}

// trimZeros returns len(b) less its trailing zero bytes.
func trimZeros(b []byte) int {
	n := len(b)
	for n > 0 && b[n-1] == 0 {
		n--
	}
	return n
}

// AppendAVCC appends each NAL unit to dst preceded by its 4-byte
// big-endian length.
func AppendAVCC(dst []byte, nalus ...[]byte) []byte {
	for _, n := range nalus {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(n)))
		dst = append(dst, n...)
	}
	return dst
}

// SplitAVCC returns the NAL units of a length-prefixed access unit whose
// lengths take lengthSize bytes (1, 2, 3 or 4). The units share b's memory.
func SplitAVCC(b []byte, lengthSize int) ([][]byte, error) {
	var nalus [][]byte
	err := walkAVCC(b, lengthSize, func(n []byte) { nalus = append(nalus, n) })
	if err != nil {
		return nil, err
	}
	return nalus, nil
}

// CheckAVCC checks that the NAL unit lengths of an access unit add up to
// its size exactly, as SplitAVCC does, without collecting the units.
func CheckAVCC(b []byte, lengthSize int) error {
	return walkAVCC(b, lengthSize, func([]byte) {})
}

// walkAVCC calls unit for every non-empty NAL unit of a length-prefixed
// access unit, and fails on a length size outside 1–4 or a unit that does
// not fit.
func walkAVCC(b []byte, lengthSize int, unit func([]byte)) error {
	if lengthSize < 1 || lengthSize > 4 {
		return fmt.Errorf("h26x: NAL length size %d is not 1–4", lengthSize)
	}
	for off := 0; off < len(b); {
		if len(b)-off < lengthSize {
			return fmt.Errorf("h26x: access unit of %d bytes ends inside a NAL unit length at byte %d", len(b), off)
		}
		size := 0
		for _, c := range b[off : off+lengthSize] {
			size = size<<8 | int(c)
		}
		off += lengthSize
		if size > len(b)-off {
			return fmt.Errorf("h26x: access unit of %d bytes is cut short: NAL unit at byte %d needs %d bytes, %d left", len(b), off-lengthSize, size, len(b)-off)
		}
		if size > 0 {
			unit(b[off : off+size])
		}
		off += size
	}
	return nil
}

// Unescape returns the RBSP of a NAL unit: b without its emulation
// prevention bytes (the 03 of each 00 00 03). It returns b itself when
// there are none.
func Unescape(b []byte) []byte {
	var out []byte
	zeros, last := 0, 0
	for i, c := range b {
		if zeros >= 2 && c == 3 {
			if out == nil {
				out = make([]byte, 0, len(b))
			}
			out = append(out, b[last:i]...)
			last = i + 1
			zeros = 0
			continue
		}
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	if out == nil {
		return b
	}
	return append(out, b[last:]...)
}
