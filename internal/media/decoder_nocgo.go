//go:build !cgo

package media

import (
	"fmt"
	"time"

	"github.com/kvsd/kvsd/internal/imaging"
)

// Decoder is a placeholder in builds without cgo; NewDecoder never returns
// one.
type Decoder struct{}

// NewDecoder returns ErrUnavailable: decoding needs cgo. Unsupported codecs
// are still reported as such, so callers classify them the same way.
func NewDecoder(codecID string, codecPrivate []byte) (*Decoder, error) {
	if codecID != imaging.CodecH264 && codecID != imaging.CodecH265 {
		return nil, fmt.Errorf("%w %q (kvsd decodes %s and %s)", imaging.ErrUnsupportedCodec, codecID, imaging.CodecH264, imaging.CodecH265)
	}
	return nil, imaging.ErrUnavailable
}

// Render reports ErrUnavailable for every sample.
func (d *Decoder) Render(packets []imaging.Packet, at []time.Duration, spec imaging.Spec) []imaging.Result {
	res := make([]imaging.Result, len(at))
	for i, t := range at {
		res[i] = imaging.Result{At: t, Err: imaging.ErrUnavailable}
	}
	return res
}

// Close does nothing.
func (d *Decoder) Close() {}

// Stats returns zeros.
func (d *Decoder) Stats() imaging.Stats { return imaging.Stats{} }
