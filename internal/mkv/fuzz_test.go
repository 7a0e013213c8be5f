package mkv

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"
)

// FuzzReader feeds arbitrary bytes to the Reader. Seeds: the readerCases
// table plus the committed corpus in testdata/fuzz/FuzzReader (truncated
// streams, hostile sizes, small real encoder output). It checks that
// nothing panics, that errors are classified, that every Raw is a verbatim
// slice of the input (so no more bytes come out than went in), that buffers
// stay proportional to the input rather than to size fields, and that
// reading one byte at a time gives the same result.
func FuzzReader(f *testing.F) {
	for _, c := range readerCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in), Limits{})
		var res result
		for {
			ev, err := r.Next()
			if err != nil {
				res.err, res.off = err, r.Offset()
				break
			}
			ev.Raw = bytes.Clone(ev.Raw)
			res.events = append(res.events, ev)
		}
		if !errors.Is(res.err, io.EOF) && !errors.Is(res.err, ErrInvalid) && !errors.Is(res.err, ErrTooLarge) {
			t.Fatalf("unclassified error: %v", res.err)
		}
		require.LessOrEqual(t, res.off, int64(len(in)))
		checkEvents(t, in, res.events)
		require.LessOrEqual(t, cap(r.cbuf)+cap(r.ebuf), 2*len(in)+2*readChunk, "buffers grew ahead of the input")

		require.Equal(t, res, readAll(iotest.OneByteReader(bytes.NewReader(in)), Limits{}))
	})
}
