//go:build cgo

package h26x_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/kvsd/kvsd/internal/h26x"
	"github.com/kvsd/kvsd/internal/imaging"
	"github.com/kvsd/kvsd/internal/media"
)

// The records and frames h26x makes decode with libavcodec (through
// internal/media, which kvsd's image generation uses): every frame gives a
// picture of the size read from the SPS.
func TestRecordsAndFramesDecode(t *testing.T) {
	for _, c := range []h26x.Codec{h26x.H264, h26x.H265} {
		for _, size := range [][2]int{{322, 242}, {640, 360}} {
			t.Run(fmt.Sprintf("%v/%dx%d", c, size[0], size[1]), func(t *testing.T) {
				const frames, gop = 20, 10
				aus := h26x.AccessUnits(t, c, h26x.Encode(t, c, fmt.Sprintf("%dx%d", size[0], size[1]), frames, gop))
				if len(aus) != frames {
					t.Fatalf("%d access units, want %d", len(aus), frames)
				}
				ps := h26x.ParamSets{Codec: c}
				for _, n := range aus[0] {
					ps.Add(n)
				}
				cfg, err := ps.Config()
				if err != nil {
					t.Fatal(err)
				}
				codecID := imaging.CodecH264
				if c == h26x.H265 {
					codecID = imaging.CodecH265
				}
				dec, err := media.NewDecoder(codecID, cfg.Record)
				if err != nil {
					t.Fatal(err)
				}
				defer dec.Close()
				var packets []imaging.Packet
				var at []time.Duration
				for i, au := range aus {
					data, key := cfg.AppendFrame(nil, au)
					pts := time.Duration(i) * 40 * time.Millisecond
					packets = append(packets, imaging.Packet{Data: data, PTS: pts, Key: key})
					at = append(at, pts)
				}
				for i, r := range dec.Render(packets, at, imaging.Spec{Format: imaging.JPEG}) {
					if r.Err != nil {
						t.Fatalf("frame %d: %v", i, r.Err)
					}
					if r.FramePTS != at[i] || r.Width != size[0] || r.Height != size[1] {
						t.Fatalf("frame %d: picture %d×%d at %v, want %d×%d at %v", i, r.Width, r.Height, r.FramePTS, size[0], size[1], at[i])
					}
				}
			})
		}
	}
}
