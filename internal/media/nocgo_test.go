//go:build !cgo

package media

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/imaging"
)

func TestUnavailableWithoutCgo(t *testing.T) {
	_, err := NewDecoder(imaging.CodecH264, nil)
	require.ErrorIs(t, err, imaging.ErrUnavailable)
	_, err = NewDecoder("V_VP8", nil)
	require.ErrorIs(t, err, imaging.ErrUnsupportedCodec)
	var d *Decoder
	res := d.Render(nil, []time.Duration{time.Second}, imaging.Spec{})
	require.ErrorIs(t, res[0].Err, imaging.ErrUnavailable)
	d.Close()
	require.Zero(t, d.Stats())
}
