package h26x

import "errors"

var errShort = errors.New("ends too early")

// bitReader reads an RBSP (emulation prevention already removed) most
// significant bit first. Reads past the end set err and return zeros, so
// a parser checks err once at the end.
type bitReader struct {
	b   []byte
	pos int // in bits
	err error
}

func (r *bitReader) u(n int) uint64 {
	var v uint64
	for range n {
		if r.pos >= 8*len(r.b) {
			r.err = errShort
			return 0
		}
		v = v<<1 | uint64(r.b[r.pos>>3]>>(7-r.pos&7)&1)
		r.pos++
	}
	return v
}

func (r *bitReader) flag() bool { return r.u(1) == 1 }

// ue reads an Exp-Golomb code; values need at most 32 leading zeros.
func (r *bitReader) ue() uint64 {
	zeros := 0
	for r.u(1) == 0 {
		if r.err != nil {
			return 0
		}
		zeros++
		if zeros > 32 {
			r.err = errors.New("Exp-Golomb code too long")
			return 0
		}
	}
	return 1<<zeros - 1 + r.u(zeros)
}

func (r *bitReader) se() int64 {
	v := r.ue()
	if v&1 == 1 {
		return int64(v+1) / 2
	}
	return -int64(v / 2)
}
