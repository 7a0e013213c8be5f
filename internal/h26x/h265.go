package h26x

import (
	"errors"
	"fmt"
)

// H.265 NAL unit types that matter here.
const (
	H265NALBLAW    = 16 // first IRAP type
	H265NALCRA     = 21
	H265NALIRAPMax = 23 // last (reserved) IRAP type
	H265NALVPS     = 32
	H265NALSPS     = 33
	H265NALPPS     = 34
	H265NALAUD     = 35
)

// H265Type returns the type of an H.265 NAL unit (0 for a unit shorter
// than its two-byte header).
func H265Type(nalu []byte) int {
	if len(nalu) < 2 {
		return 0
	}
	return int(nalu[0] >> 1 & 0x3f)
}

// ParseH265SPS reads an H.265 sequence parameter set NAL unit (with its
// two-byte header).
func ParseH265SPS(nalu []byte) (SPS, error) {
	if H265Type(nalu) != H265NALSPS || len(nalu) < 4 {
		return SPS{}, errors.New("h26x: not an H.265 SPS")
	}
	rbsp := Unescape(nalu[2:])
	r := &bitReader{b: rbsp}
	s := SPS{}
	r.u(4) // sps_video_parameter_set_id
	s.MaxSubLayersMinus1 = int(r.u(3))
	s.TemporalIDNesting = r.flag()
	// general_profile_tier_level: 12 whole bytes, byte-aligned here.
	if len(rbsp) < 13 {
		return SPS{}, errors.New("h26x: H.265 SPS ends too early")
	}
	copy(s.profileTierLevel[:], rbsp[1:13])
	s.ProfileIDC = int(rbsp[1] & 0x1f)
	s.LevelIDC = int(rbsp[12])
	r.pos += 12 * 8
	subProfile := make([]bool, s.MaxSubLayersMinus1)
	subLevel := make([]bool, s.MaxSubLayersMinus1)
	for i := range s.MaxSubLayersMinus1 {
		subProfile[i] = r.flag()
		subLevel[i] = r.flag()
	}
	if s.MaxSubLayersMinus1 > 0 {
		r.u(2 * (8 - s.MaxSubLayersMinus1)) // reserved_zero_2bits
	}
	for i := range s.MaxSubLayersMinus1 {
		if subProfile[i] {
			r.u(88)
		}
		if subLevel[i] {
			r.u(8)
		}
	}
	r.ue() // sps_seq_parameter_set_id
	s.ChromaFormatIDC = int(r.ue())
	if s.ChromaFormatIDC > 3 {
		return SPS{}, fmt.Errorf("h26x: H.265 SPS: chroma_format_idc %d", s.ChromaFormatIDC)
	}
	separatePlanes := false
	if s.ChromaFormatIDC == 3 {
		separatePlanes = r.flag()
	}
	w, h := r.ue(), r.ue()
	var cl, cr, ct, cb uint64
	if r.flag() { // conformance_window_flag
		cl, cr, ct, cb = r.ue(), r.ue(), r.ue(), r.ue()
	}
	s.BitDepthLuma = int(r.ue()) + 8
	s.BitDepthChroma = int(r.ue()) + 8
	if r.err != nil {
		return SPS{}, fmt.Errorf("h26x: H.265 SPS %w", r.err)
	}
	if s.BitDepthLuma > 16 || s.BitDepthChroma > 16 {
		return SPS{}, errors.New("h26x: H.265 SPS: bit depth above 16")
	}
	if w == 0 || h == 0 || w > maxPictureSide || h > maxPictureSide {
		return SPS{}, fmt.Errorf("h26x: H.265 SPS: picture of %d×%d", w, h)
	}
	subW, subH := uint64(1), uint64(1)
	if !separatePlanes && (s.ChromaFormatIDC == 1 || s.ChromaFormatIDC == 2) {
		subW = 2
	}
	if !separatePlanes && s.ChromaFormatIDC == 1 {
		subH = 2
	}
	if cl > w || cr > w || ct > h || cb > h || subW*(cl+cr) >= w || subH*(ct+cb) >= h {
		return SPS{}, fmt.Errorf("h26x: H.265 SPS: conformance window (%d,%d,%d,%d) leaves no picture of %d×%d", cl, cr, ct, cb, w, h)
	}
	s.Width = int(w - subW*(cl+cr))
	s.Height = int(h - subH*(ct+cb))
	return s, nil
}

// HEVCConfig builds an hvcC record (ISO/IEC 14496-15 8.3.3.1) with 4-byte
// NAL unit lengths from VPS, SPS and PPS NAL units; the first SPS gives
// the profile, tier, level, chroma format and bit depths.
func HEVCConfig(vps, sps, pps [][]byte) ([]byte, error) {
	if len(vps) == 0 || len(sps) == 0 || len(pps) == 0 {
		return nil, errors.New("h26x: hvcC needs at least one VPS, SPS and PPS")
	}
	s, err := ParseH265SPS(sps[0])
	if err != nil {
		return nil, err
	}
	rec := make([]byte, 0, 64)
	rec = append(rec, 1)
	rec = append(rec, s.profileTierLevel[:]...)
	rec = append(rec,
		0xf0, 0x00, // min_spatial_segmentation_idc 0 (unknown)
		0xfc, // parallelismType 0 (unknown)
		0xfc|byte(s.ChromaFormatIDC),
		0xf8|byte(s.BitDepthLuma-8),
		0xf8|byte(s.BitDepthChroma-8),
		0, 0, // avgFrameRate unknown
	)
	nesting := byte(0)
	if s.TemporalIDNesting {
		nesting = 1
	}
	rec = append(rec, byte(s.MaxSubLayersMinus1+1)<<3|nesting<<2|3, 3)
	for _, arr := range []struct {
		typ   int
		units [][]byte
	}{{H265NALVPS, vps}, {H265NALSPS, sps}, {H265NALPPS, pps}} {
		if len(arr.units) > 0xffff {
			return nil, errors.New("h26x: too many parameter sets for hvcC")
		}
		// array_completeness 1: all parameter sets of the type are here.
		rec = append(rec, 0x80|byte(arr.typ), byte(len(arr.units)>>8), byte(len(arr.units)))
		for _, n := range arr.units {
			if H265Type(n) != arr.typ {
				return nil, fmt.Errorf("h26x: hvcC: NAL unit of type %d among those of type %d", H265Type(n), arr.typ)
			}
			if rec, err = appendU16Unit(rec, n); err != nil {
				return nil, err
			}
		}
	}
	return rec, nil
}

// ParseHEVCConfig returns the NAL units of an hvcC record's arrays and the
// size of its NAL unit lengths.
func ParseHEVCConfig(rec []byte) (nalus [][]byte, lengthSize int, err error) {
	if len(rec) < 23 || rec[0] != 1 {
		return nil, 0, errors.New("h26x: not an hvcC record")
	}
	lengthSize = int(rec[21]&3) + 1
	if lengthSize == 3 {
		return nil, 0, errors.New("h26x: hvcC: NAL length size 3 is not allowed")
	}
	arrays := int(rec[22])
	b := rec[23:]
	short := errors.New("h26x: hvcC record cut short")
	for range arrays {
		if len(b) < 3 {
			return nil, 0, short
		}
		count := int(b[1])<<8 | int(b[2])
		b = b[3:]
		for range count {
			if len(b) < 2 {
				return nil, 0, short
			}
			n := int(b[0])<<8 | int(b[1])
			if len(b)-2 < n {
				return nil, 0, short
			}
			if n > 0 {
				nalus = append(nalus, b[2:2+n])
			}
			b = b[2+n:]
		}
	}
	return nalus, lengthSize, nil
}
