package imagegen

import (
	"time"

	"github.com/kvsd/kvsd/internal/imaging"
)

// Decoder turns the compressed video of one fragment into images. The composition root
// (internal/app) wires in *media.Decoder (FFmpeg, cgo); imagegen itself speaks only the
// pure-Go imaging types, so it builds and tests without cgo, and its tests use fakes. A Decoder is used by one goroutine at a
// time; the generator keeps one per stream and reuses it from fragment to fragment.
type Decoder interface {
	// Render returns one Result per entry of at (times from the fragment start, on the
	// packets' PTS clock): the frame on screen at that time, encoded.
	Render(packets []imaging.Packet, at []time.Duration, spec imaging.Spec) []imaging.Result
	Stats() imaging.Stats
	Close()
}

// NewDecoderFunc makes a decoder for a track's codec (Matroska CodecID and CodecPrivate),
// e.g. a wrapper of media.NewDecoder. Errors wrapping imaging.ErrUnsupportedCodec or
// imaging.ErrUnavailable are reported as such by `kvsd doctor`.
type NewDecoderFunc func(codecID string, codecPrivate []byte) (Decoder, error)

func ext(f imaging.Format) string {
	if f == imaging.PNG {
		return "png"
	}
	return "jpg"
}

func contentType(f imaging.Format) string {
	if f == imaging.PNG {
		return "image/png"
	}
	return "image/jpeg"
}
