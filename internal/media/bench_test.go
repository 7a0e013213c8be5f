//go:build cgo

package media_test

import (
	"testing"
	"time"

	"github.com/kvsd/kvsd/internal/imaging"
)

// hdClip is the benchmark video of image-pipeline.md: 1080p30 H.264 at
// 2 Mbit/s, a keyframe every 30 frames, no B-frames; 10 s, made once per
// process (about 3 s of ffmpeg on 2 cores).
func hdClip(b *testing.B) *clip {
	return loadClip(b, "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30", "-t", "10",
		"-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-bf", "0",
		"-b:v", "2M", "-maxrate", "2M", "-bufsize", "4M", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0")
}

// BenchmarkRender renders one image per 1-second fragment (30 packets), as
// kvsd does for SamplingInterval 1000 ms: each op is one fragment and one
// image. The main case is the issue's: keyframe samples, 320×240 JPEG q80.
// Per image-pipeline.md expect about 7.8 ms (≈ 128 images/s per core).
func BenchmarkRender(b *testing.B) {
	c := hdClip(b)
	var frags [][]imaging.Packet
	for i := 0; i < len(c.packets); i++ {
		if c.packets[i].Key {
			frags = append(frags, nil)
		}
		frags[len(frags)-1] = append(frags[len(frags)-1], c.packets[i])
	}
	cases := []struct {
		name   string
		spec   imaging.Spec
		offset int // frame index within the fragment
	}{
		{"key-320x240-jpeg-q80", imaging.Spec{Format: imaging.JPEG, Quality: 80, Width: 320, Height: 240}, 0},
		{"key-320x240-jpeg-q80-exact", imaging.Spec{Format: imaging.JPEG, Quality: 80, Width: 320, Height: 240, Exact: true}, 0},
		{"key-1080p-jpeg-q80", imaging.Spec{Format: imaging.JPEG, Quality: 80}, 0},
		{"key-320x240-png", imaging.Spec{Format: imaging.PNG, Width: 320, Height: 240}, 0},
		{"frame15-320x240-jpeg-q80", imaging.Spec{Format: imaging.JPEG, Quality: 80, Width: 320, Height: 240}, 15},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			d := c.newDecoder(b)
			at := make([]time.Duration, 1)
			b.ReportAllocs()
			b.ResetTimer()
			n := 0
			for b.Loop() {
				frag := frags[n%len(frags)]
				n++
				at[0] = frag[tc.offset].PTS
				if r := d.Render(frag, at, tc.spec)[0]; r.Err != nil {
					b.Fatal(r.Err)
				}
			}
			st := d.Stats()
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "images/s")
			b.ReportMetric(st.Decode.Seconds()*1e3/float64(n), "decode-ms/img")
			b.ReportMetric(st.Scale.Seconds()*1e3/float64(n), "scale-ms/img")
			b.ReportMetric(st.Encode.Seconds()*1e3/float64(n), "encode-ms/img")
		})
	}
}
