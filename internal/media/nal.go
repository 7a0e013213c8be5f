package media

import (
	"fmt"

	"github.com/kvsd/kvsd/internal/h26x"

	"github.com/kvsd/kvsd/internal/imaging"
)

// nalLengthSize returns how many bytes prefix each NAL unit in a packet,
// from the codec private data: avcC (first byte 1) and hvcC records give it
// as lengthSizeMinusOne; anything else (empty, or Annex B parameter sets as
// some producers send them) means Annex B packets, which have no prefix (0).
// The tests for "is this hvcC" follow libavcodec's.
func nalLengthSize(codecID string, cp []byte) (int, error) {
	switch {
	case codecID == imaging.CodecH264 && len(cp) > 0 && cp[0] == 1:
		if len(cp) < 7 {
			return 0, fmt.Errorf("media: avcC codec private data of %d bytes is too short", len(cp))
		}
		return int(cp[4]&3) + 1, nil
	case codecID == imaging.CodecH265 && len(cp) > 3 && (cp[0] != 0 || cp[1] != 0 || cp[2] > 1):
		if len(cp) < 23 {
			return 0, fmt.Errorf("media: hvcC codec private data of %d bytes is too short", len(cp))
		}
		return int(cp[21]&3) + 1, nil
	}
	return 0, nil
}

// checkNALs checks that the NAL length prefixes of a packet add up to its
// size exactly, so that a truncated or damaged frame is reported as such
// rather than half-decoded. Annex B packets (n == 0) are only checked for
// being non-empty.
func checkNALs(b []byte, n int) error {
	if len(b) == 0 {
		return fmt.Errorf("empty frame")
	}
	if n == 0 {
		return nil
	}
	return h26x.CheckAVCC(b, n)
}

// disposable reports whether an H.264 packet is a picture that no other picture references:
// every slice has nal_ref_idc 0, as B-frames have unless the encoder keeps them as references
// (x264's B-pyramid). A decode pass leaves such a packet out when no sample shows it: skipping
// it changes no other picture (frame_num counts reference pictures only). H.265 is not judged:
// a sub-layer non-reference picture may still be referenced by a higher temporal sub-layer.
func disposable(codecID string, b []byte, nalSize int) bool {
	if codecID != imaging.CodecH264 {
		return false
	}
	vcl := false
	check := func(nalu []byte) bool {
		if t := h26x.H264Type(nalu); t >= 1 && t <= 5 {
			if nalu[0]&0x60 != 0 {
				return false
			}
			vcl = true
		}
		return true
	}
	if nalSize == 0 {
		nalus, err := h26x.SplitAnnexB(b)
		if err != nil {
			return false
		}
		for _, n := range nalus {
			if !check(n) {
				return false
			}
		}
		return vcl
	}
	for len(b) >= nalSize { // length-prefixed, walked without allocating
		n := 0
		for _, c := range b[:nalSize] {
			n = n<<8 | int(c)
		}
		b = b[nalSize:]
		if n <= 0 || n > len(b) || !check(b[:n]) {
			return false
		}
		b = b[n:]
	}
	return vcl && len(b) == 0
}
