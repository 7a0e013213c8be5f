package mkv

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

// readFrom runs r to the end of its input.
func readFrom(r *Reader) result {
	var res result
	for {
		ev, err := r.Next()
		if err != nil {
			res.err, res.off = err, r.Offset()
			return res
		}
		ev.Raw = bytes.Clone(ev.Raw)
		res.events = append(res.events, ev)
	}
}

// An input cut after any element of a Cluster, then resumed from the Cut on a second Reader,
// gives the events the uncut input gives (the Cluster's start once) and the same Cluster
// bytes: what a producer's next connection sends completes the fragment byte for byte.
func TestCutAndResume(t *testing.T) {
	for _, known := range []bool{false, true} {
		c1 := picGOP(tcEpoch, 4, 300, 100)
		if known {
			c1 = el(IDCluster, uel(IDTimecode, tcEpoch, 8), sblock(1, 0, 0x80, frame(300)), sblock(1, 33, 0, frame(100)),
				sblock(1, 66, 0, frame(100)), sblock(1, 99, 0, frame(100)))
		}
		in := cat(picHeader(), c1, tags8("k", "v"), picGOP(tcEpoch+1000, 2, 300, 100))
		whole := readAll(bytes.NewReader(in), Limits{})
		require.ErrorIs(t, whole.err, io.EOF)

		// Cut at the end of the Timecode and of each block of the first Cluster.
		var ends []int64
		r := NewReader(bytes.NewReader(in), Limits{})
		for {
			ev, err := r.Next()
			require.NoError(t, err)
			if ev.Kind == KindClusterEnd {
				break
			}
			if ev.Kind == KindClusterStart || ev.Kind == KindBlock {
				ends = append(ends, r.Offset())
			}
		}
		for _, at := range ends {
			first := NewReader(io.MultiReader(bytes.NewReader(in[:at]), errReader{}), Limits{})
			before := readFrom(first)
			require.Error(t, before.err)
			cut := first.Cut(at)
			if cut == nil {
				// Only where the Cluster was complete: a known size says so.
				require.True(t, known)
				require.Equal(t, KindClusterEnd, before.events[len(before.events)-1].Kind, "cut at %d", at)
			} else {
				require.Equal(t, uint64(tcEpoch), cut.Timecode)
			}

			second := NewReader(bytes.NewReader(in[at:]), Limits{})
			doc, err := second.StartsDocument()
			require.NoError(t, err)
			require.False(t, doc)
			second.Resume(cut)
			after := readFrom(second)
			require.ErrorIs(t, after.err, io.EOF)
			require.Equal(t, describeAll(whole.events), describeAll(append(before.events, after.events...)), "cut at %d (known size %v)", at, known)
			for _, ev := range after.events {
				if ev.Kind == KindClusterEnd && ev.Timecode == tcEpoch {
					require.Equal(t, c1, ev.Raw)
				}
			}
		}
	}
}

// A continuation that starts with blocks of a Cluster the Reader has no Cut of reports them as
// stray and skips them; Tags and the next Cluster are read as usual.
func TestStrayBlocks(t *testing.T) {
	rest := cat(sblock8(1, 33, 0, frame(100)), sblock(1, 66, 0, frame(7)), tags8("k", "v"), picGOP(tcEpoch, 2, 300, 100))
	r := NewReader(bytes.NewReader(rest), Limits{})
	doc, err := r.StartsDocument()
	require.NoError(t, err)
	require.False(t, doc)
	r.Resume(nil)
	res := readFrom(r)
	require.ErrorIs(t, res.err, io.EOF)
	require.Equal(t, []string{"stray 113", "stray 13", "tags k=v", "start 1700000000000", "block 1 +0 key 300", "block 1 +33 100", "end 1700000000000"},
		describeAll(res.events))

	doc, err = NewReader(bytes.NewReader(picHeader()), Limits{}).StartsDocument()
	require.NoError(t, err)
	require.True(t, doc)
	_, err = NewReader(bytes.NewReader(nil), Limits{}).StartsDocument()
	require.ErrorIs(t, err, io.EOF)
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

// FuzzResume cuts arbitrary input at an arbitrary point, as a broken connection would, and
// resumes it on a second Reader, with the first one's Cut when it has one: nothing panics,
// errors are classified, and Cluster bytes come out verbatim from the two inputs.
func FuzzResume(f *testing.F) {
	for _, c := range readerCases {
		f.Add(c.in, uint16(len(c.in)/2))
	}
	f.Fuzz(func(t *testing.T, in []byte, at uint16) {
		k := min(int(at), len(in))
		first := NewReader(io.MultiReader(bytes.NewReader(in[:k]), errReader{}), Limits{})
		var last int64
		for {
			ev, err := first.Next()
			if err != nil {
				break
			}
			if ev.Kind == KindClusterStart || ev.Kind == KindBlock {
				last = first.Offset()
			}
		}
		cut := first.Cut(last)
		var prefix []byte
		if cut != nil {
			prefix = bytes.Clone(cut.Raw)
		}
		second := NewReader(bytes.NewReader(in[k:]), Limits{})
		if doc, err := second.StartsDocument(); err == nil && !doc {
			second.Resume(cut)
		}
		for {
			ev, err := second.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
					t.Fatalf("unclassified error: %v", err)
				}
				return
			}
			if ev.Kind == KindClusterEnd && prefix != nil {
				require.True(t, bytes.HasPrefix(ev.Raw, prefix), "a resumed Cluster starts with the cut bytes")
				require.True(t, bytes.Contains(in, ev.Raw[len(prefix):]), "the rest comes from the input")
				prefix = nil
			}
		}
	})
}
