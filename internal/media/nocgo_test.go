//go:build !cgo

package media

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestUnavailableWithoutCgo(t *testing.T) {
	_, err := NewDecoder(CodecH264, nil)
	require.ErrorIs(t, err, ErrUnavailable)
	_, err = NewDecoder("V_VP8", nil)
	require.ErrorIs(t, err, ErrUnsupportedCodec)
	var d *Decoder
	res := d.Render(nil, []time.Duration{time.Second}, Spec{})
	require.ErrorIs(t, res[0].Err, ErrUnavailable)
	d.Close()
	require.Zero(t, d.Stats())
}
