//go:build !cgo

package media

import (
	"fmt"
	"time"
)

// Decoder is a placeholder in builds without cgo; NewDecoder never returns
// one.
type Decoder struct{}

// NewDecoder returns ErrUnavailable: decoding needs cgo. Unsupported codecs
// are still reported as such, so callers classify them the same way.
func NewDecoder(codecID string, codecPrivate []byte) (*Decoder, error) {
	if codecID != CodecH264 && codecID != CodecH265 {
		return nil, fmt.Errorf("%w %q (kvsd decodes %s and %s)", ErrUnsupportedCodec, codecID, CodecH264, CodecH265)
	}
	return nil, ErrUnavailable
}

// Render reports ErrUnavailable for every sample.
func (d *Decoder) Render(packets []Packet, at []time.Duration, spec Spec) []Result {
	res := make([]Result, len(at))
	for i, t := range at {
		res[i] = Result{At: t, Err: ErrUnavailable}
	}
	return res
}

// Close does nothing.
func (d *Decoder) Close() {}

// Stats returns zeros.
func (d *Decoder) Stats() Stats { return Stats{} }
