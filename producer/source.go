package producer

import (
	"context"
	"time"
)

// Codec IDs as Matroska and KVS name them.
const (
	CodecH264 = "V_MPEG4/ISO/AVC"
	CodecH265 = "V_MPEGH/ISO/HEVC"
)

// Track describes the one video track a Source produces.
type Track struct {
	CodecID string // CodecH264 or CodecH265
	// CodecPrivate is the decoder configuration record: avcC for H.264,
	// hvcC for H.265. Its lengthSizeMinusOne sets the size of the NAL unit
	// lengths in every Frame (4 bytes is usual).
	CodecPrivate  []byte
	Width, Height int
}

// Frame is one access unit.
type Frame struct {
	// PTS is the presentation time from the source's first frame (which
	// has PTS 0 or more). It never goes backwards between keyframes that
	// start fragments.
	PTS time.Duration
	// Keyframe: decoding can start at this frame (IDR / IRAP).
	Keyframe bool
	// Data holds the NAL units, each prefixed by its big-endian length
	// (AVCC/HVCC, of the size CodecPrivate says). Parameter sets sent in
	// band (SPS/PPS before keyframes) may stay: decoders accept them. The
	// producer owns Data once ReadFrame returns it.
	Data []byte
}

// Source yields the frames of one video track.
type Source interface {
	// Track describes the video. It is called once, before the first
	// ReadFrame, and may block until the source knows (a live source may
	// wait for its first parameter sets).
	Track(ctx context.Context) (Track, error)
	// ReadFrame returns the next frame in decoding order, or io.EOF at the
	// end of a finite source. It must return soon after ctx is done (with
	// ctx's error): that is how the producer stops reading on Ctrl-C
	// before it sends the last fragment.
	ReadFrame(ctx context.Context) (Frame, error)
	// Live reports whether frames arrive in real time (camera, pipe,
	// generator): the producer stamps them with the wall clock and never
	// paces them. A file is not live: it is paced to real time unless the
	// producer is told to send as fast as possible.
	Live() bool
	Close() error
}
