package remux

import (
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// loop returns a frag function that plays a source's fragments over and over, each round
// later on the timeline by the source's length.
func loop(s *source) func(i int, _ []byte) (Fragment, error) {
	k := len(s.frags)
	last := s.frags[k-1]
	length := last.Start + last.Duration - s.frags[0].Start
	return func(i int, _ []byte) (Fragment, error) {
		f := s.frags[i%k]
		f.Start += time.Duration(i/k) * length
		return f, nil
	}
}

// clipPeak writes a clip of n fragments and returns the most live heap it held while writing
// payloads (the second pass), and the media bytes of its fragments.
func clipPeak(t *testing.T, m *Media, s *source, n int) (peak, media int64) {
	t.Helper()
	var ms runtime.MemStats
	live := func() int64 {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	base := live()
	frag := loop(s)
	calls := make([]int, n)
	written, err := m.WriteClip(io.Discard, n, func(i int, _ []byte) (Fragment, error) {
		if calls[i]++; calls[i] == 2 {
			peak = max(peak, live()-base)
		} else {
			f, _ := frag(i, nil)
			media += int64(len(f.Media))
		}
		return frag(i, nil)
	})
	require.NoError(t, err)
	require.Greater(t, written, media/2)
	return peak, media
}

// A clip of 200 fragments holds little more memory than one of 20: sample tables (about a
// hundred bytes a frame) and two fragments, not the 180 fragments' payloads.
func TestClipMemoryIsFlat(t *testing.T) {
	s := sourceFor(t, mediaCases[0], shapeGOPs)
	m, err := Open(s.header)
	require.NoError(t, err)
	short, shortMedia := clipPeak(t, m, s, 20)
	long, longMedia := clipPeak(t, m, s, 200)
	t.Logf("live heap while writing: %d KiB for 20 fragments (%d KiB of media), %d KiB for 200 (%d KiB)",
		short>>10, shortMedia>>10, long>>10, longMedia>>10)
	require.Less(t, long-short, (longMedia-shortMedia)/4)
}
