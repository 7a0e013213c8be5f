package playback

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// Fragments come back in order whatever order the workers read them in, an error stays with its
// fragment, and no more than a few fragments are read ahead of the one in use (memory flat in
// the clip's length).
func TestReadAheadOrderErrorsAndBound(t *testing.T) {
	const n = 50
	var inFlight, most atomic.Int64
	var consumed atomic.Int64
	bad := errors.New("damaged")
	read := func(i int, buf []byte) ([]byte, error) {
		// Fragments read but not yet consumed are the memory the read-ahead holds.
		ahead := int64(i) - consumed.Load()
		for {
			m := most.Load()
			if ahead <= m || most.CompareAndSwap(m, ahead) {
				break
			}
		}
		inFlight.Add(1)
		defer inFlight.Add(-1)
		if i == 31 {
			return buf, bad
		}
		return fmt.Appendf(buf, "fragment %d", i), nil
	}
	r := startReadAhead(n, read)
	defer r.Stop()
	for i := range n {
		b, err := r.Fragment(i)
		consumed.Store(int64(i))
		if i == 31 {
			require.ErrorIs(t, err, bad)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("fragment %d", i), string(b))
	}
	require.LessOrEqual(t, most.Load(), int64(readAheadSlots), "read at most a few fragments ahead")
}

// Stopping early (the client went away after a few fragments) ends every worker, including
// those waiting for a buffer.
func TestReadAheadStopsEarly(t *testing.T) {
	var reads atomic.Int64
	r := startReadAhead(1000, func(i int, buf []byte) ([]byte, error) {
		reads.Add(1)
		return append(buf, byte(i)), nil
	})
	b, err := r.Fragment(0)
	require.NoError(t, err)
	require.Equal(t, []byte{0}, b)
	r.Stop()
	require.Less(t, reads.Load(), int64(10))
}
