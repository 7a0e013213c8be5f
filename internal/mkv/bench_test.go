package mkv

import (
	"bytes"
	"testing"
)

// stream2Mbps is 20 s of a 2 Mbps 1080p camera as the PIC sends it: 25 fps,
// a Cluster per 2 s GOP with a 100 kB keyframe and 49 delta frames of about
// 8 kB, and an end-of-fragment Tags element at the end.
func stream2Mbps() []byte {
	const fps, gop, key, total = 25, 50, 100_000, 2_000_000 / 8 * 2
	delta := (total - key) / (gop - 1)
	var b bytes.Buffer
	b.Write(picHeader())
	for i := range 10 {
		b.Write(picGOP(uint64(tcEpoch+2000*i), gop, key, delta))
	}
	b.Write(tags8("AWS_KINESISVIDEO_END_OF_FRAGMENT", ""))
	return b.Bytes()
}

// streamSmallFrames is 100 Clusters of 250 blocks of 160 bytes (G.711-like
// audio), where per-element cost dominates.
func streamSmallFrames() []byte {
	var b bytes.Buffer
	b.Write(picHeader())
	for i := range 100 {
		b.Write(picGOP(uint64(5000*i), 250, 160, 160))
	}
	return b.Bytes()
}

func BenchmarkReader(b *testing.B) {
	b.Run("2Mbps_1080p", func(b *testing.B) { benchRead(b, stream2Mbps(), Limits{}) })
	b.Run("small_frames", func(b *testing.B) { benchRead(b, streamSmallFrames(), Limits{}) })
	for _, c := range validCases() {
		b.Run(c.name, func(b *testing.B) { benchRead(b, c.in, c.lim) })
	}
}

// benchRead reads in to its end once per iteration with a new Reader, as a
// new PutMedia connection would.
func benchRead(b *testing.B, in []byte, lim Limits) {
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		r := NewReader(bytes.NewReader(in), lim)
		for {
			if _, err := r.Next(); err != nil {
				break
			}
		}
	}
}
