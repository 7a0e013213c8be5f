package mkv

import (
	"bytes"
	"testing"
)

func TestUnknownSegmentSize(t *testing.T) {
	ebml := []byte{0x1A, 0x45, 0xDF, 0xA3, 0x84, 0x42, 0x86, 0x81, 0x01}
	info := []byte{0x15, 0x49, 0xA9, 0x66, 0x80}
	cases := []struct {
		name     string
		size     []byte // the Segment's size field as sent
		wantSize []byte
	}{
		{"8-byte known", []byte{0x01, 0, 0, 0, 0, 0x12, 0x34, 0x56}, []byte{0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}},
		{"4-byte known", []byte{0x10, 0x00, 0x10, 0x00}, []byte{0x1F, 0xFF, 0xFF, 0xFF}},
		{"1-byte known", []byte{0x85}, []byte{0xFF}},
		{"already unknown", []byte{0xFF}, []byte{0xFF}},
	}
	for _, tc := range cases {
		in := append(append(append(append([]byte{}, ebml...), 0x18, 0x53, 0x80, 0x67), tc.size...), info...)
		orig := bytes.Clone(in)
		out := UnknownSegmentSize(in)
		want := append(append(append(append([]byte{}, ebml...), 0x18, 0x53, 0x80, 0x67), tc.wantSize...), info...)
		if !bytes.Equal(out, want) {
			t.Errorf("%s: got % x, want % x", tc.name, out, want)
		}
		if !bytes.Equal(in, orig) {
			t.Errorf("%s: input modified", tc.name)
		}
		if decodeSize(out[len(ebml)+4:len(ebml)+4+len(tc.size)]) != unknownSize {
			t.Errorf("%s: size not unknown", tc.name)
		}
	}
	for _, junk := range [][]byte{nil, {0x00}, []byte("not mkv at all"), ebml, append(append([]byte{}, ebml...), 0x1F, 0x43, 0xB6, 0x75, 0x80)} {
		if out := UnknownSegmentSize(junk); !bytes.Equal(out, junk) {
			t.Errorf("junk % x changed to % x", junk, out)
		}
	}
}
