package producer

import (
	"bytes"
	"context"
	"testing"
)

// FuzzMKVSource feeds arbitrary bytes to the Matroska source: it must end
// with frames or an error, never a panic or a hang.
func FuzzMKVSource(f *testing.F) {
	tr := Track{CodecID: CodecH264, CodecPrivate: []byte{1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 0}, Width: 16, Height: 16}
	doc := appendHeader(nil, tr, [16]byte{1}, 1)
	doc = appendClusterStart(doc, 1000)
	doc = appendSimpleBlock(doc, 0, true, []byte{0, 0, 0, 1, 0x65})
	doc = appendSimpleBlock(doc, 40, false, []byte{0, 0, 0, 1, 0x41})
	doc = appendTags(doc, nil)
	f.Add(doc)
	f.Add(append(bytes.Clone(doc), doc...)) // two documents
	vp8 := appendHeader(nil, Track{CodecID: "V_VP8", CodecPrivate: []byte{0}}, [16]byte{}, 1)
	f.Add(vp8)
	f.Fuzz(func(t *testing.T, data []byte) {
		src := NewMKVSource(bytes.NewReader(data), false)
		defer src.Close()
		ctx := context.Background()
		if _, err := src.Track(ctx); err != nil {
			return
		}
		for range 10_000 {
			if _, err := src.ReadFrame(ctx); err != nil {
				return
			}
		}
		t.Fatal("more frames than the input can hold")
	})
}
