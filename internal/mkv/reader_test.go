package mkv

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"
)

// result is everything a Reader produced for an input, with Raw copied
// because it is only valid until the next call to Next.
type result struct {
	events []Event
	err    error // the final error (io.EOF when clean)
	off    int64 // Offset() at the end
}

// readAll runs a Reader to its end.
func readAll(in io.Reader, lim Limits) result {
	return readFrom(NewReader(in, lim))
}

// describeAll renders events with describe.
func describeAll(evs []Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, describe(ev))
	}
	return out
}

// readers wraps an input in the chunkings a network reader may deliver.
var readers = []struct {
	name string
	wrap func([]byte) io.Reader
}{
	{"whole", func(b []byte) io.Reader { return bytes.NewReader(b) }},
	{"one byte", func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) }},
	{"half", func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) }},
	{"data with EOF", func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) }},
}

func TestReader(t *testing.T) {
	for _, c := range readerCases {
		t.Run(c.name, func(t *testing.T) {
			want := readAll(bytes.NewReader(c.in), c.lim)
			require.Equal(t, c.want, describeAll(want.events))
			if c.err == nil {
				require.ErrorIs(t, want.err, io.EOF)
				require.Equal(t, int64(len(c.in)), want.off)
				require.Equal(t, len(c.in)-c.skipped, rawTotal(want.events), "bytes carried by Raw")
			} else {
				require.ErrorIs(t, want.err, c.err)
				require.ErrorContains(t, want.err, c.msg)
			}
			checkEvents(t, c.in, want.events)

			for _, rd := range readers[1:] {
				got := readAll(rd.wrap(c.in), c.lim)
				require.Equal(t, want, got, rd.name)
			}
		})
	}
}

// rawTotal sums the bytes handed out in Header.Raw and Raw.
func rawTotal(evs []Event) int {
	n := 0
	for _, ev := range evs {
		n += len(ev.Raw)
		if ev.Header != nil {
			n += len(ev.Header.Raw)
		}
	}
	return n
}

// checkEvents checks what every input must satisfy: each Raw is the input
// at its Offset (so concatenating them reproduces the input minus skipped
// elements), blocks point at a block element, and no more bytes are handed
// out than came in.
func checkEvents(t testing.TB, in []byte, evs []Event) {
	t.Helper()
	require.LessOrEqual(t, rawTotal(evs), len(in))
	last := int64(-1)
	for i, ev := range evs {
		raw := ev.Raw
		if ev.Kind == KindHeader {
			raw = ev.Header.Raw
		}
		if raw != nil {
			require.GreaterOrEqual(t, ev.Offset, last, "event %d (%s) overlaps the previous one", i, ev.Kind)
			require.LessOrEqual(t, ev.Offset+int64(len(raw)), int64(len(in)))
			require.Equal(t, in[ev.Offset:ev.Offset+int64(len(raw))], raw, "event %d (%s)", i, ev.Kind)
			last = ev.Offset + int64(len(raw))
		}
		if ev.Kind == KindBlock {
			require.Contains(t, []byte{IDSimpleBlock, IDBlockGroup}, in[ev.Offset])
		}
	}
}

// TestEventsBeforeData checks that ClusterStart and Block events come out as
// soon as their bytes are in: the server acknowledges a fragment when its
// Timecode arrives, long before the Cluster is complete.
func TestEventsBeforeData(t *testing.T) {
	pr, pw := io.Pipe()
	r := NewReader(pr, Limits{})
	next := func(data []byte, want string) {
		t.Helper()
		go func() { _, _ = pw.Write(data) }()
		ev, err := r.Next()
		require.NoError(t, err)
		require.Equal(t, want, describe(ev))
	}
	next(cat(picHeader(), unk(IDCluster, 1)), hdrEv)
	next(uel(IDTimecode, 42, 8), "start 42")
	next(sblock8(1, 0, 0x80, frame(1000)), "block 1 +0 key 1000")
	next(sblock8(1, 33, 0, frame(10)), "block 1 +33 10")
	go func() { _ = pw.Close() }()
	ev, err := r.Next()
	require.NoError(t, err)
	require.Equal(t, "end 42", describe(ev))
	_, err = r.Next()
	require.ErrorIs(t, err, io.EOF)
}

// TestStickyError checks that a failed Reader keeps failing.
func TestStickyError(t *testing.T) {
	r := NewReader(bytes.NewReader(hexb("A3 81 00")), Limits{})
	_, err1 := r.Next()
	_, err2 := r.Next()
	require.ErrorIs(t, err1, ErrInvalid)
	require.Equal(t, err1, err2)
}

// TestReadError checks that a failing source is reported as such, not as
// malformed input.
func TestReadError(t *testing.T) {
	boom := errors.New("boom")
	in := io.MultiReader(bytes.NewReader(picHeader()[:30]), iotest.ErrReader(boom))
	_, err := NewReader(in, Limits{}).Next()
	require.ErrorIs(t, err, boom)
	require.NotErrorIs(t, err, ErrInvalid)
}

// TestHostileSizesAllocateLittle checks that size fields alone never make
// the Reader allocate: each input declares a large element, within the
// limits, and then ends.
func TestHostileSizesAllocateLittle(t *testing.T) {
	h := picHeader()
	cases := map[string][]byte{
		"block":  cat(h, picCluster(1), hexb("A3 01 00 00 00 02 00 00 00")),
		"tags":   cat(h, picGOP(1, 1, 1, 0), hexb("12 54 C3 67 01 00 00 00 00 1F 00 00")),
		"tracks": cat(picEBML, unk(IDSegment, 1), hexb("16 54 AE 6B 01 00 00 00 00 1F 00 00")),
		"ebml":   hexb("1A 45 DF A3 01 00 00 00 00 1F 00 00"),
		"cues":   cat(h, picGOP(1, 1, 1, 0), hexb("1C 53 BB 6B 01 00 00 7F 00 00 00 00")),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			const runs = 20
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range runs {
				readAll(bytes.NewReader(in), Limits{})
			}
			runtime.ReadMemStats(&after)
			perRun := (after.TotalAlloc - before.TotalAlloc) / runs
			require.ErrorIs(t, readAll(bytes.NewReader(in), Limits{}).err, io.ErrUnexpectedEOF)
			require.Less(t, perRun, uint64(bufSize+2*readChunk+16<<10), "bytes allocated per read")
		})
	}
}

// TestKindString covers Kind.String.
func TestKindString(t *testing.T) {
	require.Equal(t, "ClusterEnd", KindClusterEnd.String())
	require.Equal(t, "Kind(?)", Kind(0).String())
}

// TestRawReuse pins the Raw lifetime contract: the Cluster buffer is reused
// by the next Cluster, and Raw is clipped so appending to it copies.
func TestRawReuse(t *testing.T) {
	in := cat(picHeader(), picGOP(1, 1, 4, 0), tags8("a", "b"), picGOP(2, 1, 4, 0))
	r := NewReader(bytes.NewReader(in), Limits{})
	var first []byte
	for {
		ev, err := r.Next()
		require.NoError(t, err)
		if ev.Kind == KindClusterEnd {
			first = ev.Raw
			break
		}
	}
	want := bytes.Clone(first)
	require.Equal(t, len(first), cap(first))
	_ = append(first, 0xEE) // must not write into the Reader's buffer
	for range 4 {           // Tags, start 2, block, end 2
		_, err := r.Next()
		require.NoError(t, err)
	}
	require.NotEqual(t, want, first, "the second Cluster reused the buffer")
}

// TestSteadyStateAllocs checks that once its buffer has grown, reading a
// Cluster allocates nothing: its bytes are copied once, into the reused
// buffer.
func TestSteadyStateAllocs(t *testing.T) {
	gop := picGOP(1, 50, 100_000, 8_000)
	in := cat(picHeader(), bytes.Repeat(gop, 110))
	r := NewReader(bytes.NewReader(in), Limits{})
	nextCluster := func() {
		for {
			ev, err := r.Next()
			require.NoError(t, err)
			if ev.Kind == KindClusterEnd {
				return
			}
		}
	}
	nextCluster()
	require.Zero(t, testing.AllocsPerRun(100, nextCluster))
}

// SwapCluster hands a Cluster's bytes to the caller, who keeps them intact while the Reader
// goes on in the buffer given in exchange; during a Cluster it takes nothing.
func TestSwapCluster(t *testing.T) {
	c1, c2, c3 := picGOP(1000, 5, 70_000, 900), picGOP(3000, 5, 300, 20), picGOP(5000, 2, 100_000, 10)
	in := cat(picHeader(), c1, c2, c3)
	for _, rd := range readers {
		t.Run(rd.name, func(t *testing.T) {
			r := NewReader(rd.wrap(in), Limits{})
			first := make([]byte, 0, 10)
			require.Empty(t, r.SwapCluster(first), "nothing read yet")
			next := make([]byte, 0, 1<<20)
			var kept [][]byte
			for {
				ev, err := r.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				require.NoError(t, err)
				switch ev.Kind {
				case KindBlock:
					require.Nil(t, r.SwapCluster(make([]byte, 5)), "no swap inside a Cluster")
				case KindClusterEnd:
					b := r.SwapCluster(next)
					require.Equal(t, ev.Raw, b)
					kept = append(kept, b)
					next = nil // the Reader owns it now; later Clusters grow from nothing
				}
			}
			require.Equal(t, [][]byte{c1, c2, c3}, kept, "kept Clusters are not overwritten by later ones")
			require.Equal(t, 1<<20, cap(kept[1]), "the second Cluster was read into the buffer given for it")
		})
	}
}
