package h26x

import (
	"bytes"
	"errors"
	"testing"
)

func TestSplitAnnexB(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		want [][]byte
		err  error
	}{
		{"4-byte and 3-byte start codes", []byte{0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3}, [][]byte{{0x67, 1, 2}, {0x68, 3}}, nil},
		{"trailing zeros dropped", []byte{0, 0, 1, 0x65, 9, 0, 0, 0, 0, 1, 0x41, 0, 0}, [][]byte{{0x65, 9}, {0x41}}, nil},
		{"empty units skipped", []byte{0, 0, 1, 0, 0, 1, 0x09, 0xf0}, [][]byte{{0x09, 0xf0}}, nil},
		{"escaped zeros are not start codes", []byte{0, 0, 1, 0x65, 0, 0, 3, 1, 7}, [][]byte{{0x65, 0, 0, 3, 1, 7}}, nil},
		{"leading zeros allowed", []byte{0, 0, 0, 0, 0, 1, 0x67}, [][]byte{{0x67}}, nil},
		{"garbage before the first start code", []byte{7, 0, 0, 1, 0x67}, nil, ErrNotAnnexB},
		{"no start code", []byte{0, 0, 0, 0x17, 0x67}, nil, ErrNotAnnexB},
		{"empty", nil, nil, ErrNotAnnexB},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := SplitAnnexB(c.in)
			if !errors.Is(err, c.err) {
				t.Fatalf("err %v, want %v", err, c.err)
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %x, want %x", got, c.want)
			}
			for i := range got {
				if !bytes.Equal(got[i], c.want[i]) {
					t.Fatalf("unit %d: %x, want %x", i, got[i], c.want[i])
				}
			}
		})
	}
}

func TestAVCCRoundTrip(t *testing.T) {
	units := [][]byte{{0x65, 1, 2, 3}, {0x06, 5}, make([]byte, 70000)}
	units[2][0] = 0x41
	b := AppendAVCC(nil, units...)
	if len(b) != 4*3+4+2+70000 {
		t.Fatalf("AVCC of %d bytes", len(b))
	}
	got, err := SplitAVCC(b, 4)
	if err != nil || len(got) != 3 || !bytes.Equal(got[2], units[2]) || !bytes.Equal(got[0], units[0]) {
		t.Fatalf("SplitAVCC: %v, %d units", err, len(got))
	}
	// A 2-byte-length frame as some MP4 files have it.
	two := []byte{0, 2, 0x65, 1, 0, 1, 0x41}
	got, err = SplitAVCC(two, 2)
	if err != nil || len(got) != 2 || !bytes.Equal(got[1], []byte{0x41}) {
		t.Fatalf("2-byte lengths: %v %x", err, got)
	}
	for _, bad := range [][]byte{{0, 0, 0, 5, 1}, {0, 0, 1}} {
		if _, err := SplitAVCC(bad, 4); err == nil {
			t.Errorf("SplitAVCC(%x) accepted a cut frame", bad)
		}
		if CheckAVCC(bad, 4) == nil {
			t.Errorf("CheckAVCC(%x) accepted a cut frame", bad)
		}
	}
	if err := CheckAVCC(b, 4); err != nil {
		t.Errorf("CheckAVCC: %v", err)
	}
	if _, err := SplitAVCC(b, 5); err == nil {
		t.Error("length size 5 accepted")
	}
}

func TestUnescape(t *testing.T) {
	cases := map[string][2][]byte{
		"none":          {{1, 2, 3}, {1, 2, 3}},
		"one":           {{0, 0, 3, 1}, {0, 0, 1}},
		"two in a row":  {{0, 0, 3, 0, 0, 3, 0}, {0, 0, 0, 0, 0}},
		"at the end":    {{5, 0, 0, 3}, {5, 0, 0}},
		"03 after 00 3": {{0, 3, 3}, {0, 3, 3}},
	}
	for name, c := range cases {
		if got := Unescape(c[0]); !bytes.Equal(got, c[1]) {
			t.Errorf("%s: Unescape(%x) = %x, want %x", name, c[0], got, c[1])
		}
	}
}

func TestKeyframes(t *testing.T) {
	if !IsKeyframe(H264, [][]byte{{0x09, 0xf0}, {0x67}, {0x65, 0x88}}) || IsKeyframe(H264, [][]byte{{0x41, 0x9a}}) {
		t.Error("H.264: IDR is the keyframe, non-IDR slices are not")
	}
	cra := []byte{H265NALCRA << 1, 1}
	trail := []byte{1 << 1, 1}
	if !IsKeyframe(H265, [][]byte{cra}) || IsKeyframe(H265, [][]byte{trail}) {
		t.Error("H.265: CRA is an IRAP keyframe, TRAIL_R is not")
	}
}
