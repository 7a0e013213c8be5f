package h26x

import (
	"bytes"
	"fmt"
	"os/exec"
	"testing"
)

// encode makes an Annex-B stream with ffmpeg: frames pictures of size
// (W×H) at 25 fps, a keyframe every gop, no B-frames, an access unit
// delimiter before every access unit and the parameter sets repeated at
// every keyframe, as cameras send them.
func encode(tb testing.TB, c Codec, size string, frames, gop int) []byte {
	tb.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		tb.Skip("ffmpeg not installed (make setup installs it)")
	}
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin",
		"-f", "lavfi", "-i", "testsrc2=s=" + size + ":r=25", "-frames:v", fmt.Sprint(frames)}
	if c == H264 {
		args = append(args, "-c:v", "libx264", "-g", fmt.Sprint(gop), "-bf", "0", "-sc_threshold", "0",
			"-x264-params", "aud=1:repeat-headers=1", "-f", "h264", "-")
	} else {
		args = append(args, "-c:v", "libx265", "-x265-params",
			fmt.Sprintf("keyint=%d:min-keyint=%d:bframes=0:scenecut=0:aud=1:repeat-headers=1:log-level=error", gop, gop),
			"-f", "hevc", "-")
	}
	var out, stderr bytes.Buffer
	cmd := exec.Command("ffmpeg", args...)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("ffmpeg: %v\n%s", err, stderr.String())
	}
	return out.Bytes()
}

// accessUnits splits a stream made by encode at its delimiters.
func accessUnits(tb testing.TB, c Codec, stream []byte) [][][]byte {
	tb.Helper()
	nalus, err := SplitAnnexB(stream)
	if err != nil {
		tb.Fatal(err)
	}
	var aus [][][]byte
	for _, n := range nalus {
		if isAUD(c, n) {
			aus = append(aus, nil)
		}
		if len(aus) == 0 {
			tb.Fatal("stream does not start with an access unit delimiter")
		}
		aus[len(aus)-1] = append(aus[len(aus)-1], n)
	}
	return aus
}

func TestPictureSizeFromSPS(t *testing.T) {
	// Sizes that are not multiples of the coding block need cropping.
	for _, c := range []Codec{H264, H265} {
		for _, size := range [][2]int{{320, 240}, {322, 242}, {1920, 1080}, {98, 66}} {
			t.Run(fmt.Sprintf("%v/%dx%d", c, size[0], size[1]), func(t *testing.T) {
				s := encode(t, c, fmt.Sprintf("%dx%d", size[0], size[1]), 1, 1)
				ps := ParamSets{Codec: c}
				nalus, err := SplitAnnexB(s)
				if err != nil {
					t.Fatal(err)
				}
				for _, n := range nalus {
					ps.Add(n)
				}
				cfg, err := ps.Config()
				if err != nil {
					t.Fatal(err)
				}
				if cfg.Width != size[0] || cfg.Height != size[1] {
					t.Fatalf("size %d×%d from the SPS, want %d×%d", cfg.Width, cfg.Height, size[0], size[1])
				}
				// The record parses back to the same parameter sets and
				// says 4-byte lengths.
				back, n, err := ConfigFromRecord(c, cfg.Record)
				if err != nil || n != 4 || back.Width != size[0] || back.Height != size[1] {
					t.Fatalf("ConfigFromRecord: %v, length size %d, %d×%d", err, n, back.Width, back.Height)
				}
			})
		}
	}
}

func TestConfigFromRecordNormalizesLengthSize(t *testing.T) {
	s := encode(t, H264, "160x120", 1, 1)
	ps := ParamSets{Codec: H264}
	nalus, _ := SplitAnnexB(s)
	for _, n := range nalus {
		ps.Add(n)
	}
	cfg, err := ps.Config()
	if err != nil {
		t.Fatal(err)
	}
	rec := bytes.Clone(cfg.Record)
	rec[4] = 0xfc | 1 // 2-byte lengths, as some MP4 files have
	got, n, err := ConfigFromRecord(H264, rec)
	if err != nil || n != 2 {
		t.Fatalf("length size %d, %v", n, err)
	}
	if !bytes.Equal(got.Record, cfg.Record) {
		t.Fatalf("normalized record %x, want %x", got.Record, cfg.Record)
	}
	if rec[4] != 0xfc|1 {
		t.Fatal("ConfigFromRecord changed its argument")
	}
}

func TestAppendFrameDropsRepeatedParameterSets(t *testing.T) {
	for _, c := range []Codec{H264, H265} {
		t.Run(c.String(), func(t *testing.T) {
			aus := accessUnits(t, c, encode(t, c, "160x120", 6, 3))
			ps := ParamSets{Codec: c}
			for _, n := range aus[0] {
				ps.Add(n)
			}
			cfg, err := ps.Config()
			if err != nil {
				t.Fatal(err)
			}
			for i, au := range aus {
				data, key := cfg.AppendFrame(nil, au)
				if key != (i%3 == 0) {
					t.Errorf("frame %d: keyframe %v", i, key)
				}
				out, err := SplitAVCC(data, 4)
				if err != nil {
					t.Fatal(err)
				}
				for _, n := range out {
					if IsParamSet(c, n) || isAUD(c, n) {
						t.Errorf("frame %d keeps NAL unit type %x", i, n[0])
					}
				}
				if len(out) == 0 {
					t.Errorf("frame %d has no NAL units", i)
				}
			}
			// A parameter set that differs from the record's stays in.
			changed := append(bytes.Clone(ps.PPS), 0x80)
			data, _ := cfg.AppendFrame(nil, [][]byte{changed, aus[0][len(aus[0])-1]})
			if out, _ := SplitAVCC(data, 4); len(out) != 2 || !bytes.Equal(out[0], changed) {
				t.Error("a changed PPS was dropped")
			}
		})
	}
}

func TestBadSPSIsAnError(t *testing.T) {
	for _, b := range [][]byte{nil, {0x67}, {0x67, 100, 0, 40}, {0x67, 66, 0, 30, 0, 0, 0, 0, 0, 0}, {0x42, 1, 1}, {0x42, 1, 1, 0x60, 0, 0, 0}} {
		if _, err := ParseH264SPS(b); err == nil {
			t.Errorf("ParseH264SPS(%x) accepted", b)
		}
		if _, err := ParseH265SPS(b); err == nil {
			t.Errorf("ParseH265SPS(%x) accepted", b)
		}
	}
	if _, err := AVCConfig(nil, nil); err == nil {
		t.Error("AVCConfig without parameter sets")
	}
	if _, err := HEVCConfig([][]byte{{0x40, 1}}, nil, nil); err == nil {
		t.Error("HEVCConfig without SPS")
	}
	for _, rec := range [][]byte{nil, {1, 100, 0, 30, 0xff, 0xe1, 0, 9, 0x67}, {0, 0, 0, 1, 0x67}} {
		if _, _, err := ConfigFromRecord(H264, rec); err == nil {
			t.Errorf("ConfigFromRecord(H264, %x) accepted", rec)
		}
		if _, _, err := ConfigFromRecord(H265, rec); err == nil {
			t.Errorf("ConfigFromRecord(H265, %x) accepted", rec)
		}
	}
}
