package remux

import (
	"fmt"
	"math/bits"
	"strings"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// RFC 6381 codec strings, as HLS CODECS= and DASH codecs= want them.

// avc1 is "avc1." and the SPS's profile_idc, constraint flags and level_idc in hex (ISO/IEC
// 14496-15 Annex E), lowercase as KVS writes them.
func avc1(sps []byte) string {
	return fmt.Sprintf("avc1.%02x%02x%02x", sps[1], sps[2], sps[3])
}

// hvc1 follows ISO/IEC 14496-15 E.3: profile space (none, A, B, C) and profile_idc, the 32
// compatibility flags in reverse bit order, tier (L or H) and level_idc, then the six
// constraint bytes with trailing zero bytes left out. E.g. hvc1.1.6.L93.B0.
func hvc1(sps []byte) (string, error) {
	ptl, err := hevcProfileTierLevel(sps)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("hvc1.")
	if space := ptl[0] >> 6; space > 0 {
		b.WriteByte("ABC"[space-1])
	}
	fmt.Fprintf(&b, "%d", ptl[0]&0x1f)
	compat := uint32(ptl[1])<<24 | uint32(ptl[2])<<16 | uint32(ptl[3])<<8 | uint32(ptl[4])
	fmt.Fprintf(&b, ".%X", bits.Reverse32(compat))
	tier := "L"
	if ptl[0]&0x20 != 0 {
		tier = "H"
	}
	fmt.Fprintf(&b, ".%s%d", tier, ptl[11])
	constraints := ptl[5:11]
	for len(constraints) > 0 && constraints[len(constraints)-1] == 0 {
		constraints = constraints[:len(constraints)-1]
	}
	for _, c := range constraints {
		fmt.Fprintf(&b, ".%X", c)
	}
	return b.String(), nil
}

// mp4a is "mp4a.40." and the audio object type: 2 for AAC-LC, 5 (SBR) or 29 (PS) for HE-AAC
// signalled explicitly.
func mp4a(c *mpeg4audio.AudioSpecificConfig) string {
	aot := c.Type
	if c.ExtensionType != 0 {
		aot = c.ExtensionType
	}
	return fmt.Sprintf("mp4a.40.%d", aot)
}
