package imagegen

import (
	"time"

	"github.com/kvsd/kvsd/internal/media"
)

// Decoder turns the compressed video of one fragment into images; *media.Decoder implements
// it (the only cgo in kvsd), and tests use fakes. A Decoder is used by one goroutine at a
// time; the generator keeps one per stream and reuses it from fragment to fragment.
type Decoder interface {
	// Render returns one Result per entry of at (times from the fragment start, on the
	// packets' PTS clock): the frame on screen at that time, encoded.
	Render(packets []media.Packet, at []time.Duration, spec media.Spec) []media.Result
	Stats() media.Stats
	Close()
}

// NewDecoderFunc makes a decoder for a track's codec (Matroska CodecID and CodecPrivate),
// e.g. a wrapper of media.NewDecoder. Errors wrapping media.media.ErrUnsupportedCodec or
// media.media.ErrUnavailable are reported as such by `kvsd doctor`.
type NewDecoderFunc func(codecID string, codecPrivate []byte) (Decoder, error)

func ext(f media.Format) string {
	if f == media.PNG {
		return "png"
	}
	return "jpg"
}

func contentType(f media.Format) string {
	if f == media.PNG {
		return "image/png"
	}
	return "image/jpeg"
}
