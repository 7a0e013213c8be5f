package remux

import (
	"errors"
	"fmt"
	"strings"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"

	"github.com/kvsd/kvsd/internal/h26x"
	"github.com/kvsd/kvsd/internal/mkv"
)

// Timescales of the MP4 tracks; audio uses its sample rate.
const videoTimescale = 90000

// videoCodec is track 1's decoder configuration.
type videoCodec struct {
	codec      h26x.Codec
	lengthSize int      // NAL unit length size of the stored frames
	params     [][]byte // VPS, SPS, PPS in that order: sent in band before TS keyframes
	mp4        fmp4.Codec
}

// audioCodec is track 2's AAC configuration.
type audioCodec struct {
	config    mpeg4audio.AudioSpecificConfig
	timescale int64
	frameNs   int64 // an AAC frame's duration (1024 or 960 samples), the last frame's duration
}

func (m *Media) openVideo(t *mkv.Track) error {
	if t == nil {
		return fmt.Errorf("remux: no track %d; playback needs H.264 or H.265 there: %w", videoTrack, ErrUnsupportedMedia)
	}
	var c h26x.Codec
	switch t.CodecID {
	case codecIDH264:
		c = h26x.H264
	case codecIDH265:
		c = h26x.H265
	default:
		return trackErr(t, ErrUnsupportedMedia, "playback needs %s or %s", codecIDH264, codecIDH265)
	}
	if len(t.CodecPrivate) == 0 {
		return trackErr(t, ErrMissingCodecPrivate, "no CodecPrivate")
	}
	v, info, err := parseVideoConfig(c, t.CodecPrivate)
	if err != nil {
		return trackErr(t, ErrInvalidCodecPrivate, "%v", err)
	}
	info.Number = t.Number
	init, err := initMP4(videoTimescale, v.mp4)
	if err != nil {
		return trackErr(t, ErrInvalidCodecPrivate, "%v", err)
	}
	m.Video, m.video, m.inits[0] = info, v, init
	return nil
}

// parseVideoConfig reads an avcC or hvcC record: the repo's h26x gives the length size and the
// picture size, mediacommon's SPS parser must accept it too because it writes the sample entry.
func parseVideoConfig(c h26x.Codec, rec []byte) (*videoCodec, Track, error) {
	cfg, lengthSize, err := h26x.ConfigFromRecord(c, rec)
	if err != nil {
		return nil, Track{}, err
	}
	v := &videoCodec{codec: c, lengthSize: lengthSize}
	info := Track{Video: true, Width: cfg.Width, Height: cfg.Height}
	if c == h26x.H264 {
		sps, pps, _, err := h26x.ParseAVCConfig(rec)
		if err != nil {
			return nil, Track{}, err
		}
		if len(pps) == 0 {
			return nil, Track{}, errors.New("avcC record without a PPS")
		}
		v.params = append(append(v.params, sps...), pps...)
		v.mp4 = &fmp4.CodecH264{SPS: sps[0], PPS: pps[0]}
		info.Codec = avc1(sps[0])
		return v, info, nil
	}
	nalus, _, err := h26x.ParseHEVCConfig(rec)
	if err != nil {
		return nil, Track{}, err
	}
	var byType [3][][]byte // VPS, SPS, PPS
	for _, n := range nalus {
		if t := h26x.H265Type(n); t >= h26x.H265NALVPS && t <= h26x.H265NALPPS {
			byType[t-h26x.H265NALVPS] = append(byType[t-h26x.H265NALVPS], n)
		}
	}
	for i, name := range []string{"VPS", "SPS", "PPS"} {
		if len(byType[i]) == 0 {
			return nil, Track{}, errors.New("hvcC record without a " + name)
		}
		v.params = append(v.params, byType[i]...)
	}
	v.mp4 = &fmp4.CodecH265{VPS: byType[0][0], SPS: byType[1][0], PPS: byType[2][0]}
	if info.Codec, err = hvc1(byType[1][0]); err != nil {
		return nil, Track{}, err
	}
	return v, info, nil
}

func (m *Media) openAudio(t *mkv.Track) error {
	if len(t.CodecPrivate) == 0 {
		return trackErr(t, ErrMissingCodecPrivate, "no AudioSpecificConfig")
	}
	var a audioCodec
	if err := a.config.Unmarshal(t.CodecPrivate); err != nil {
		return trackErr(t, ErrInvalidCodecPrivate, "AudioSpecificConfig %x: %v", t.CodecPrivate, err)
	}
	// TS carries AAC as ADTS, which has a table of rates. (mediacommon's mp4a box holds the
	// rate in 16 bits: 88.2 and 96 kHz come out wrong there, and players read the
	// AudioSpecificConfig in esds.)
	if !adtsRate(a.config.SampleRate) {
		return trackErr(t, ErrInvalidCodecPrivate, "sample rate %d Hz has no ADTS index", a.config.SampleRate)
	}
	a.timescale = int64(a.config.SampleRate)
	samples := int64(1024)
	if a.config.FrameLengthFlag {
		samples = 960
	}
	a.frameNs = samples * 1e9 / a.timescale
	init, err := initMP4(uint32(a.timescale), &fmp4.CodecMPEG4Audio{Config: a.config})
	if err != nil {
		return trackErr(t, ErrInvalidCodecPrivate, "%v", err)
	}
	m.audio, m.inits[1] = &a, init
	m.Audio = &Track{
		Number:     t.Number,
		Codec:      mp4a(&a.config),
		SampleRate: a.config.SampleRate,
		Channels:   channels(a.config.ChannelConfig),
	}
	return nil
}

// isAAC accepts A_AAC and the older A_AAC/MPEG4/LC style IDs (which still need CodecPrivate).
func isAAC(id string) bool {
	return id == codecIDAAC || strings.HasPrefix(id, codecIDAAC+"/")
}

func adtsRate(r int) bool {
	switch r {
	case 96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350:
		return true
	}
	return false
}

// channels is the channel count of an AudioSpecificConfig channelConfiguration.
func channels(cfg uint8) int {
	if cfg == 7 {
		return 8
	}
	return int(cfg)
}

// hevcProfileTierLevel returns the 12 bytes of general_profile_tier_level from an SPS NAL unit.
func hevcProfileTierLevel(sps []byte) ([]byte, error) {
	// mediacommon's SPS parser must accept it: it writes hvcC from it.
	var s h265.SPS
	if err := s.Unmarshal(sps); err != nil {
		return nil, err
	}
	rbsp := h26x.Unescape(sps[2:])
	if len(rbsp) < 13 {
		return nil, errors.New("H.265 SPS ends before its profile_tier_level")
	}
	return rbsp[1:13], nil
}
