package h26x

import (
	"bytes"
	"errors"
	"fmt"
)

// IsParamSet reports whether nalu is a VPS, SPS or PPS.
func IsParamSet(c Codec, nalu []byte) bool {
	switch c {
	case H264:
		t := H264Type(nalu)
		return t == H264NALSPS || t == H264NALPPS
	case H265:
		t := H265Type(nalu)
		return t == H265NALVPS || t == H265NALSPS || t == H265NALPPS
	}
	return false
}

func isAUD(c Codec, nalu []byte) bool {
	if c == H264 {
		return H264Type(nalu) == H264NALAUD
	}
	return H265Type(nalu) == H265NALAUD
}

// IsKeyframe reports whether decoding can start at the access unit: it
// holds an IDR picture (H.264) or an IRAP picture (H.265: BLA, IDR, CRA).
func IsKeyframe(c Codec, nalus [][]byte) bool {
	for _, n := range nalus {
		switch c {
		case H264:
			if H264Type(n) == H264NALIDR {
				return true
			}
		case H265:
			if t := H265Type(n); t >= H265NALBLAW && t <= H265NALIRAPMax {
				return true
			}
		}
	}
	return false
}

// ParamSets holds the latest parameter set of each kind seen in a stream
// (one of each: cameras and encoders use a single set).
type ParamSets struct {
	Codec         Codec
	VPS, SPS, PPS []byte
}

// Add keeps a copy of nalu when it is a parameter set and reports whether
// it was one.
func (p *ParamSets) Add(nalu []byte) bool {
	if !IsParamSet(p.Codec, nalu) {
		return false
	}
	var t int
	if p.Codec == H264 {
		t = H264Type(nalu)
	} else {
		t = H265Type(nalu)
	}
	switch t {
	case H265NALVPS:
		p.VPS = bytes.Clone(nalu)
	case H264NALSPS, H265NALSPS:
		p.SPS = bytes.Clone(nalu)
	case H264NALPPS, H265NALPPS:
		p.PPS = bytes.Clone(nalu)
	}
	return true
}

// Ready reports whether every parameter set the codec needs is there.
func (p *ParamSets) Ready() bool {
	return p.SPS != nil && p.PPS != nil && (p.Codec == H264 || p.VPS != nil)
}

// Config builds the decoder configuration from the parameter sets.
func (p *ParamSets) Config() (Config, error) {
	if !p.Ready() {
		return Config{}, fmt.Errorf("h26x: %v parameter sets incomplete", p.Codec)
	}
	c := Config{Codec: p.Codec}
	var err error
	var s SPS
	if p.Codec == H264 {
		c.params = [][]byte{p.SPS, p.PPS}
		if c.Record, err = AVCConfig([][]byte{p.SPS}, [][]byte{p.PPS}); err == nil {
			s, err = ParseH264SPS(p.SPS)
		}
	} else {
		c.params = [][]byte{p.VPS, p.SPS, p.PPS}
		if c.Record, err = HEVCConfig([][]byte{p.VPS}, [][]byte{p.SPS}, [][]byte{p.PPS}); err == nil {
			s, err = ParseH265SPS(p.SPS)
		}
	}
	if err != nil {
		return Config{}, err
	}
	c.Width, c.Height = s.Width, s.Height
	return c, nil
}

// Config is a stream's decoder configuration.
type Config struct {
	Codec Codec
	// Record is the avcC or hvcC record with 4-byte NAL unit lengths.
	Record        []byte
	Width, Height int
	params        [][]byte // the parameter sets in Record
}

// ConfigFromRecord takes an avcC or hvcC record as a container stores it
// and returns it with 4-byte NAL unit lengths, and the length size that
// the container's frames use.
func ConfigFromRecord(c Codec, rec []byte) (Config, int, error) {
	cfg := Config{Codec: c, Record: bytes.Clone(rec)}
	var lengthSize int
	var sps SPS
	var err error
	switch c {
	case H264:
		var spss, ppss [][]byte
		if spss, ppss, lengthSize, err = ParseAVCConfig(cfg.Record); err != nil {
			return Config{}, 0, err
		}
		if len(spss) == 0 {
			return Config{}, 0, errors.New("h26x: avcC record without an SPS")
		}
		if sps, err = ParseH264SPS(spss[0]); err != nil {
			return Config{}, 0, err
		}
		cfg.Record[4] |= 3
		cfg.params = append(spss, ppss...) // they point into cfg.Record
	case H265:
		var nalus [][]byte
		if nalus, lengthSize, err = ParseHEVCConfig(cfg.Record); err != nil {
			return Config{}, 0, err
		}
		found := false
		for _, n := range nalus {
			if H265Type(n) == H265NALSPS {
				if sps, err = ParseH265SPS(n); err != nil {
					return Config{}, 0, err
				}
				found = true
				break
			}
		}
		if !found {
			return Config{}, 0, errors.New("h26x: hvcC record without an SPS")
		}
		cfg.Record[21] |= 3
		cfg.params = nalus
	default:
		return Config{}, 0, fmt.Errorf("h26x: unknown codec %v", c)
	}
	cfg.Width, cfg.Height = sps.Width, sps.Height
	return cfg, lengthSize, nil
}

// AppendFrame appends the access unit's NAL units to dst with 4-byte
// lengths and reports whether it is a keyframe. It leaves out access unit
// delimiters (length prefixes delimit already) and parameter sets that
// repeat those of the record; parameter sets that differ stay in.
func (c *Config) AppendFrame(dst []byte, nalus [][]byte) ([]byte, bool) {
	for _, n := range nalus {
		if isAUD(c.Codec, n) || c.repeats(n) {
			continue
		}
		dst = AppendAVCC(dst, n)
	}
	return dst, IsKeyframe(c.Codec, nalus)
}

func (c *Config) repeats(nalu []byte) bool {
	if !IsParamSet(c.Codec, nalu) {
		return false
	}
	for _, p := range c.params {
		if bytes.Equal(p, nalu) {
			return true
		}
	}
	return false
}
