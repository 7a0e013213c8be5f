package h26x

import (
	"errors"
	"fmt"
)

// H.264 NAL unit types that matter here.
const (
	H264NALIDR = 5
	H264NALSEI = 6
	H264NALSPS = 7
	H264NALPPS = 8
	H264NALAUD = 9
)

// H264Type returns the type of an H.264 NAL unit (0 for an empty one).
func H264Type(nalu []byte) int {
	if len(nalu) == 0 {
		return 0
	}
	return int(nalu[0] & 0x1f)
}

// SPS is what the producer needs from a sequence parameter set.
type SPS struct {
	Width, Height int // displayed size: cropping applied
	// For the configuration records.
	ProfileIDC, LevelIDC  int
	ChromaFormatIDC       int
	BitDepthLuma          int
	BitDepthChroma        int
	MaxSubLayersMinus1    int  // H.265
	TemporalIDNesting     bool // H.265
	profileTierLevel      [12]byte
	h264Compat, h264Level byte
	h264Profile           byte
}

// maxPictureSide bounds the sizes accepted from an SPS: H.264 level 6.2
// and H.265 level 6.2 stay below 8192×4320, and anything larger is a
// damaged parameter set rather than a picture.
const maxPictureSide = 16384

// highProfiles are the H.264 profile_idc values whose SPS carries
// chroma_format_idc, bit depths and scaling matrices (7.3.2.1.1).
var highProfiles = map[int]bool{100: true, 110: true, 122: true, 244: true, 44: true, 83: true, 86: true, 118: true, 128: true, 138: true, 139: true, 134: true, 135: true}

// ParseH264SPS reads an H.264 sequence parameter set NAL unit (with its
// one-byte header).
func ParseH264SPS(nalu []byte) (SPS, error) {
	if H264Type(nalu) != H264NALSPS || len(nalu) < 4 {
		return SPS{}, errors.New("h26x: not an H.264 SPS")
	}
	r := &bitReader{b: Unescape(nalu[1:])}
	s := SPS{ChromaFormatIDC: 1, BitDepthLuma: 8, BitDepthChroma: 8}
	s.ProfileIDC = int(r.u(8))
	s.h264Profile = byte(s.ProfileIDC)
	s.h264Compat = byte(r.u(8))
	s.LevelIDC = int(r.u(8))
	s.h264Level = byte(s.LevelIDC)
	r.ue() // seq_parameter_set_id
	separatePlanes := false
	if highProfiles[s.ProfileIDC] {
		s.ChromaFormatIDC = int(r.ue())
		if s.ChromaFormatIDC > 3 {
			return SPS{}, fmt.Errorf("h26x: H.264 SPS: chroma_format_idc %d", s.ChromaFormatIDC)
		}
		if s.ChromaFormatIDC == 3 {
			separatePlanes = r.flag()
		}
		s.BitDepthLuma = int(r.ue()) + 8
		s.BitDepthChroma = int(r.ue()) + 8
		if s.BitDepthLuma > 14 || s.BitDepthChroma > 14 {
			return SPS{}, errors.New("h26x: H.264 SPS: bit depth above 14")
		}
		r.u(1)        // qpprime_y_zero_transform_bypass_flag
		if r.flag() { // seq_scaling_matrix_present_flag
			lists := 8
			if s.ChromaFormatIDC == 3 {
				lists = 12
			}
			for i := range lists {
				if r.flag() {
					size := 16
					if i >= 6 {
						size = 64
					}
					skipScalingList(r, size)
				}
			}
		}
	}
	r.ue()          // log2_max_frame_num_minus4
	switch r.ue() { // pic_order_cnt_type
	case 0:
		r.ue() // log2_max_pic_order_cnt_lsb_minus4
	case 1:
		r.u(1) // delta_pic_order_always_zero_flag
		r.se() // offset_for_non_ref_pic
		r.se() // offset_for_top_to_bottom_field
		n := r.ue()
		if n > 255 {
			return SPS{}, errors.New("h26x: H.264 SPS: num_ref_frames_in_pic_order_cnt_cycle above 255")
		}
		for range n {
			r.se()
		}
	}
	r.ue() // max_num_ref_frames
	r.u(1) // gaps_in_frame_num_value_allowed_flag
	wMBs := r.ue() + 1
	hMapUnits := r.ue() + 1
	frameMBsOnly := r.u(1)
	if frameMBsOnly == 0 {
		r.u(1) // mb_adaptive_frame_field_flag
	}
	r.u(1) // direct_8x8_inference_flag
	var cl, cr, ct, cb uint64
	if r.flag() {
		cl, cr, ct, cb = r.ue(), r.ue(), r.ue(), r.ue()
	}
	if r.err != nil {
		return SPS{}, fmt.Errorf("h26x: H.264 SPS %w", r.err)
	}
	if wMBs > maxPictureSide/16 || hMapUnits > maxPictureSide/16 {
		return SPS{}, fmt.Errorf("h26x: H.264 SPS: picture of %d×%d macroblocks is too large", wMBs, hMapUnits)
	}
	cropX, cropY := uint64(1), 2-frameMBsOnly
	if !separatePlanes && s.ChromaFormatIDC != 0 {
		subW, subH := uint64(2), uint64(2)
		if s.ChromaFormatIDC == 2 {
			subH = 1
		}
		if s.ChromaFormatIDC == 3 {
			subW, subH = 1, 1
		}
		cropX, cropY = subW, subH*(2-frameMBsOnly)
	}
	w := wMBs * 16
	h := hMapUnits * 16 * (2 - frameMBsOnly)
	if h > maxPictureSide {
		return SPS{}, fmt.Errorf("h26x: H.264 SPS: picture height %d is too large", h)
	}
	// Compare before subtracting: the offsets come from the stream.
	if cl > w || cr > w || ct > h || cb > h || cropX*(cl+cr) >= w || cropY*(ct+cb) >= h {
		return SPS{}, fmt.Errorf("h26x: H.264 SPS: cropping (%d,%d,%d,%d) leaves no picture of %d×%d", cl, cr, ct, cb, w, h)
	}
	s.Width = int(w - cropX*(cl+cr))
	s.Height = int(h - cropY*(ct+cb))
	return s, nil
}

func skipScalingList(r *bitReader, size int) {
	last, next := int64(8), int64(8)
	for range size {
		if next != 0 {
			next = (last + r.se() + 256) % 256
		}
		if next != 0 {
			last = next
		}
		if r.err != nil {
			return
		}
	}
}

// AVCConfig builds an avcC record (ISO/IEC 14496-15 5.3.3.1) with 4-byte
// NAL unit lengths from SPS and PPS NAL units; the first SPS gives the
// profile and level.
func AVCConfig(sps, pps [][]byte) ([]byte, error) {
	if len(sps) == 0 || len(pps) == 0 {
		return nil, errors.New("h26x: avcC needs at least one SPS and one PPS")
	}
	if len(sps) > 31 || len(pps) > 255 {
		return nil, errors.New("h26x: too many parameter sets for avcC")
	}
	s, err := ParseH264SPS(sps[0])
	if err != nil {
		return nil, err
	}
	rec := []byte{1, s.h264Profile, s.h264Compat, s.h264Level, 0xfc | 3, 0xe0 | byte(len(sps))}
	for _, n := range sps {
		if rec, err = appendU16Unit(rec, n); err != nil {
			return nil, err
		}
	}
	rec = append(rec, byte(len(pps)))
	for _, n := range pps {
		if H264Type(n) != H264NALPPS {
			return nil, errors.New("h26x: avcC: not a PPS")
		}
		if rec, err = appendU16Unit(rec, n); err != nil {
			return nil, err
		}
	}
	if s.ProfileIDC == 100 || s.ProfileIDC == 110 || s.ProfileIDC == 122 || s.ProfileIDC == 144 {
		rec = append(rec, 0xfc|byte(s.ChromaFormatIDC), 0xf8|byte(s.BitDepthLuma-8), 0xf8|byte(s.BitDepthChroma-8), 0)
	}
	return rec, nil
}

func appendU16Unit(rec, n []byte) ([]byte, error) {
	if len(n) == 0 || len(n) > 0xffff {
		return nil, fmt.Errorf("h26x: parameter set of %d bytes", len(n))
	}
	rec = append(rec, byte(len(n)>>8), byte(len(n)))
	return append(rec, n...), nil
}

// ParseAVCConfig returns the parameter sets of an avcC record and the size
// of its NAL unit lengths.
func ParseAVCConfig(rec []byte) (sps, pps [][]byte, lengthSize int, err error) {
	if len(rec) < 7 || rec[0] != 1 {
		return nil, nil, 0, errors.New("h26x: not an avcC record")
	}
	lengthSize = int(rec[4]&3) + 1
	if lengthSize == 3 {
		return nil, nil, 0, errors.New("h26x: avcC: NAL length size 3 is not allowed")
	}
	b := rec[5:]
	read := func(count int) ([][]byte, bool) {
		var out [][]byte
		for range count {
			if len(b) < 2 {
				return nil, false
			}
			n := int(b[0])<<8 | int(b[1])
			if n == 0 || len(b)-2 < n {
				return nil, false
			}
			out = append(out, b[2:2+n])
			b = b[2+n:]
		}
		return out, true
	}
	nsps := int(b[0] & 0x1f)
	b = b[1:]
	sps, ok := read(nsps)
	if !ok || len(b) < 1 {
		return nil, nil, 0, errors.New("h26x: avcC record cut short")
	}
	npps := int(b[0])
	b = b[1:]
	if pps, ok = read(npps); !ok {
		return nil, nil, 0, errors.New("h26x: avcC record cut short")
	}
	return sps, pps, lengthSize, nil
}
