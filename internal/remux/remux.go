// Package remux turns kvsd's stored fragments (a Matroska header and, per fragment, a Cluster
// with its Tags) into what players fetch: fragmented MP4 (an init segment and a moof+mdat per
// fragment and track) for HLS and DASH, MPEG-TS segments with every track for HLS, and a
// progressive MP4 clip (moov before mdat) for GetClip, planned in a first pass over the
// fragments (sample tables only) and sent in a second, so that a clip is never held in memory;
// its mdat is the fragments' stored bytes, which the caller may send from where they lie (see
// Clip). A Media is read-only once opened: one may serve concurrent requests.
//
// The boxes and TS packets are mediacommon's (fmp4, pmp4, mpegts); this package decides the
// timeline. A frame's output time is Start + (timecode − Timecode) × TimecodeScale (the
// Matroska timecode is its presentation time). Matroska stores frames in decode order without
// decode times, so the k-th video frame of a fragment is decoded at the k-th smallest
// presentation time of the fragment: exact for any reordering (B-frames, pyramids, open-GOP
// leading pictures), because a fragment starts at a keyframe, and it needs no slice parsing.
// mediacommon's DTSExtractor is not used: it guesses the reorder depth from the frames seen so
// far, for live streams, and emits placeholder decode times for the first frames after every
// restart, which here would be every fragment.
//
// Where decode times sit then depends on what players make of them (FFmpeg's MP4 demuxer is
// ffprobe's and Chrome's for files):
//   - fMP4 and TS: moved back by the fragment's reorder depth (two frames for x264's
//     defaults, none without B-frames), so that composition offsets are never negative. FFmpeg
//     adds negative offsets of fragmented MP4 to every presentation time, and TS needs
//     decode ≤ presentation anyway. tfdt is Start when the fragment has no B-frames and opens
//     with its keyframe at its Timecode, as KVS fragments do; fMP4 moves decode times back
//     no further than 0 (B-frames then keep negative offsets).
//   - Clip: not moved, so B-frames have negative composition offsets (ctts version 1), which
//     FFmpeg reads right in a non-fragmented MP4; each track starts with an empty edit where
//     its first frame is presented. Moved-back decode times would need an edit that also skips
//     media time, and FFmpeg starts such an edit at the wrong frame.
package remux

import (
	"errors"
	"fmt"

	"github.com/kvsd/kvsd/internal/mkv"
)

// Errors (wrap them with detail; kvsapi maps them to KVS's exceptions).
var (
	// ErrUnsupportedMedia: track 1 is not H.264 (V_MPEG4/ISO/AVC) or H.265 (V_MPEGH/ISO/HEVC).
	ErrUnsupportedMedia = errors.New("remux: unsupported media type")
	// ErrMissingCodecPrivate: a track without CodecPrivate.
	ErrMissingCodecPrivate = errors.New("remux: missing codec private data")
	// ErrInvalidCodecPrivate: CodecPrivate that does not parse (avcC, hvcC, AudioSpecificConfig).
	ErrInvalidCodecPrivate = errors.New("remux: invalid codec private data")
	// ErrInvalidFrame: a frame that cannot be muxed.
	ErrInvalidFrame = errors.New("remux: invalid media frame")
)

// Track numbers KVS uses.
const (
	videoTrack = 1
	audioTrack = 2
)

// Matroska codec IDs.
const (
	codecIDH264 = "V_MPEG4/ISO/AVC"
	codecIDH265 = "V_MPEGH/ISO/HEVC"
	codecIDAAC  = "A_AAC"
)

// Track is one track as players see it.
type Track struct {
	Number     uint64 // Matroska TrackNumber (KVS: 1 video, 2 audio)
	Video      bool
	Codec      string // RFC 6381 string for HLS CODECS= and DASH codecs=: avc1.PPCCLL (SPS bytes 1-3 hex), hvc1.…, mp4a.40.2
	Width      int    // video, from the SPS (not the Matroska PixelWidth)
	Height     int
	SampleRate int // audio; also the track's MP4 timescale (the AudioSpecificConfig's rate, the core rate for HE-AAC)
	Channels   int // 0 when a program config element defines the layout
}

// Media is a stream's tracks, read from a stored fragment's Matroska header
// (fragstore.Store.Header: EBML header … Tracks).
type Media struct {
	Video Track
	Audio *Track // track 2 when it is AAC (A_AAC); nil otherwise (other audio is ignored)

	scale int64 // TimecodeScale, ns per tick
	video *videoCodec
	audio *audioCodec
	inits [2][]byte // InitMP4 of video and audio, built once
}

// Open reads the tracks of a stored header. Track 1 must be H.264 or H.265 with its decoder
// configuration; track 2 is kept when it is AAC. A header that is not Matroska fails with an
// error wrapping mkv.ErrInvalid or mkv.ErrTooLarge.
func Open(header []byte) (*Media, error) {
	// A known Segment size (a file upload) would end the document before the fragment's
	// Cluster that parse appends.
	header = mkv.UnknownSegmentSize(header)
	hdr, _, err := mkv.ReadFrames(header, mkv.Limits{})
	if err != nil {
		return nil, fmt.Errorf("remux: header: %w", err)
	}
	// Timecodes are multiplied by the scale in int64; a scale beyond a second per tick is
	// nothing a producer writes.
	if hdr.TimecodeScale > 1e9 {
		return nil, fmt.Errorf("remux: header: TimecodeScale %d ns: %w", hdr.TimecodeScale, mkv.ErrInvalid)
	}
	m := &Media{scale: int64(hdr.TimecodeScale)}
	if err := m.openVideo(findTrack(hdr, videoTrack)); err != nil {
		return nil, err
	}
	if t := findTrack(hdr, audioTrack); t != nil && isAAC(t.CodecID) {
		if err := m.openAudio(t); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func findTrack(hdr *mkv.Header, n uint64) *mkv.Track {
	for i := range hdr.Tracks {
		if hdr.Tracks[i].Number == n {
			return &hdr.Tracks[i]
		}
	}
	return nil
}

// trackErr wraps a sentinel with the track and codec it concerns.
func trackErr(t *mkv.Track, sentinel error, format string, a ...any) error {
	return fmt.Errorf("track %d (%s): %s: %w", t.Number, t.CodecID, fmt.Sprintf(format, a...), sentinel)
}

// InitMP4 returns ftyp+moov for one track (HLS video playlist or audio rendition; DASH
// AdaptationSet). The track's ID in the MP4 is 1.
func (m *Media) InitMP4(track uint64) ([]byte, error) {
	i, err := m.trackIndex(track)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), m.inits[i]...), nil
}

// trackIndex maps a Matroska track number to 0 (video) or 1 (audio).
func (m *Media) trackIndex(track uint64) (int, error) {
	switch {
	case track == videoTrack:
		return 0, nil
	case track == audioTrack && m.audio != nil:
		return 1, nil
	}
	return 0, fmt.Errorf("remux: no track %d to mux (video is 1, AAC audio 2)", track)
}
