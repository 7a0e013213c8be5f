package fragment

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNumberRoundTripAndOrder(t *testing.T) {
	a := FormatNumber(1690000000000, 9)
	b := FormatNumber(1690000000000, 10)
	require.Len(t, a, NumberDigits)
	require.Less(t, a, b, "lexical order is numeric order")
	ms, seq, err := ParseNumber(b)
	require.NoError(t, err)
	require.Equal(t, int64(1690000000000), ms)
	require.Equal(t, uint64(10), seq)

	for _, bad := range []string{"", "123", "8" + b[1:], b[:46] + "x", b + "0"} {
		_, _, err := ParseNumber(bad)
		require.Error(t, err, bad)
	}
}
