package mkv

import "math/bits"

// EBML variable-length integers. IDs keep their length-marker bits (the
// Matroska specs list them that way), sizes drop them. A size whose value
// bits are all ones means "unknown size".

// maxIDLen and maxSizeLen are what Matroska allows (EBMLMaxIDLength 4,
// EBMLMaxSizeLength 8); a longer vint is malformed input.
const (
	maxIDLen   = 4
	maxSizeLen = 8
)

// unknownSize marks an element whose size field is all ones.
const unknownSize = -1

// vintLen returns the length of a vint from its first byte: the number of
// leading zero bits plus one. A zero byte has no marker and returns 9.
func vintLen(b0 byte) int {
	return bits.LeadingZeros8(b0) + 1
}

// idLen returns the length of an element ID from its first byte, or 0 when
// the byte cannot start an ID.
func idLen(b0 byte) int {
	n := vintLen(b0)
	if n > maxIDLen {
		return 0
	}
	return n
}

// sizeLen returns the length of a size vint from its first byte, or 0 when
// the byte cannot start one (0x00).
func sizeLen(b0 byte) int {
	n := vintLen(b0)
	if n > maxSizeLen {
		return 0
	}
	return n
}

// decodeID reads an ID of len(b) bytes, marker bits included.
func decodeID(b []byte) uint32 {
	var id uint32
	for _, c := range b {
		id = id<<8 | uint32(c)
	}
	return id
}

// decodeSize reads a size vint of len(b) bytes and returns unknownSize when
// every value bit is set.
func decodeSize(b []byte) int64 {
	n := len(b)
	v := uint64(b[0]) & (0xFF >> n)
	for _, c := range b[1:] {
		v = v<<8 | uint64(c)
	}
	if v == 1<<(7*n)-1 {
		return unknownSize
	}
	// At most 56 value bits, so the value always fits an int64.
	return int64(v)
}

// decodeUint reads a big-endian unsigned integer element payload (0 to 8
// bytes; an empty payload means 0).
func decodeUint(b []byte) (uint64, bool) {
	if len(b) > 8 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v, true
}

// appendID appends an element ID in its minimal byte form; since IDs keep
// their marker bits, that is the value's significant bytes.
func appendID(dst []byte, id uint32) []byte {
	switch {
	case id > 0xFFFFFF:
		return append(dst, byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
	case id > 0xFFFF:
		return append(dst, byte(id>>16), byte(id>>8), byte(id))
	case id > 0xFF:
		return append(dst, byte(id>>8), byte(id))
	}
	return append(dst, byte(id))
}

// putSize writes v as a size vint filling exactly len(b) bytes; the caller
// checks that v fits (v < 2^(7*len(b))-1, the all-ones value being reserved).
func putSize(b []byte, v uint64) {
	n := len(b)
	for i := n - 1; i > 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
	b[0] = byte(v) | 0x80>>(n-1)
}

// sizeFits reports whether v can be written as a size vint of n bytes.
func sizeFits(v uint64, n int) bool {
	return v < 1<<(7*n)-1
}
