package h26x

import (
	"bytes"
	"testing"
)

// The parsers take bytes from files and cameras: whatever they get, they
// return an error or a consistent result, never panic. The committed
// corpus (testdata/fuzz) holds real parameter sets and records from x264
// and x265.

func FuzzSplitAnnexB(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		nalus, err := SplitAnnexB(b)
		if err != nil {
			return
		}
		avcc := AppendAVCC(nil, nalus...)
		back, err := SplitAVCC(avcc, 4)
		if err != nil || len(back) != len(nalus) {
			t.Fatalf("AVCC round trip: %v, %d of %d units", err, len(back), len(nalus))
		}
		for i := range back {
			if !bytes.Equal(back[i], nalus[i]) {
				t.Fatalf("unit %d changed", i)
			}
			if len(Unescape(back[i])) > len(back[i]) {
				t.Fatal("Unescape grew a unit")
			}
		}
	})
}

func FuzzParseSPS(f *testing.F) {
	f.Add([]byte{0x67, 0x64, 0x00, 0x0d, 0xac, 0xb2, 0x02, 0xa1, 0x0f, 0x11, 0x11, 0x80, 0x88})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, c := range []Codec{H264, H265} {
			var s SPS
			var err error
			if c == H264 {
				s, err = ParseH264SPS(b)
			} else {
				s, err = ParseH265SPS(b)
			}
			if err != nil {
				continue
			}
			if s.Width <= 0 || s.Height <= 0 || s.Width > maxPictureSide || s.Height > maxPictureSide {
				t.Fatalf("%v: size %d×%d accepted", c, s.Width, s.Height)
			}
			// A parsable SPS makes a record that parses back to the same size.
			ps := ParamSets{Codec: c, VPS: []byte{H265NALVPS << 1, 1, 0}, SPS: b, PPS: []byte{H264NALPPS, 0}}
			if c == H265 {
				ps.PPS = []byte{H265NALPPS << 1, 1, 0}
			}
			cfg, err := ps.Config()
			if err != nil {
				t.Fatalf("%v: record from a parsable SPS: %v", c, err)
			}
			back, n, err := ConfigFromRecord(c, cfg.Record)
			if err != nil || n != 4 || back.Width != s.Width || back.Height != s.Height {
				t.Fatalf("%v: record does not parse back: %v, %d, %d×%d", c, err, n, back.Width, back.Height)
			}
		}
	})
}

func FuzzConfigFromRecord(f *testing.F) {
	f.Add([]byte{1, 100, 0, 30, 0xff, 0xe1, 0, 4, 0x67, 100, 0, 30, 1, 0, 2, 0x68, 0})
	f.Fuzz(func(t *testing.T, rec []byte) {
		for _, c := range []Codec{H264, H265} {
			orig := bytes.Clone(rec)
			cfg, n, err := ConfigFromRecord(c, rec)
			if !bytes.Equal(orig, rec) {
				t.Fatal("ConfigFromRecord changed its argument")
			}
			if err != nil {
				continue
			}
			if n != 1 && n != 2 && n != 4 || cfg.Width <= 0 || cfg.Height <= 0 {
				t.Fatalf("%v: length size %d, size %d×%d", c, n, cfg.Width, cfg.Height)
			}
			if _, n2, err := ConfigFromRecord(c, cfg.Record); err != nil || n2 != 4 {
				t.Fatalf("%v: normalized record: %v, length size %d", c, err, n2)
			}
		}
	})
}
