// Package mediatest is the conformance suite for fragstore.Media implementations. Every media
// backend (disk, s3media) runs TestMedia; it checks behaviour through the interface only.
package mediatest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/fragstore"
)

// Backend opens a Media over one storage location. Called again after the previous Media was
// closed, it must reopen the same data.
type Backend func() (fragstore.Media, error)

// TestMedia runs the suite. newBackend is called once per subtest and returns a Backend over
// fresh, empty storage; the implementation registers its own cleanup with t.
func TestMedia(t *testing.T, newBackend func(t *testing.T) Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"RoundTrip", testRoundTrip},
		{"ConcurrentStreams", testConcurrent},
		{"SegmentsByTime", testSegmentsByTime},
		{"DeleteSegment", testDeleteSegment},
		{"DeleteStream", testDeleteStream},
		{"Reopen", testReopen},
		{"TruncateAfter", testTruncateAfter},
		{"Retain", testRetain},
		{"Keys", testKeys},
		{"BadLocations", testBadLocations},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &harness{t: t, open: newBackend(t)}
			h.reopen()
			t.Cleanup(func() {
				if h.m != nil {
					_ = h.m.Close()
				}
			})
			tc.fn(t, h)
		})
	}
}

// harness holds the Media under test and what was appended to it.
type harness struct {
	t    *testing.T
	open Backend
	m    fragstore.Media

	mu   sync.Mutex
	recs map[fragstore.Key][]stored
}

type stored struct {
	rec fragstore.Record
	loc fragstore.Location
}

var (
	ctx  = context.Background()
	key  = fragstore.Key{Name: "cam-1", CreatedMs: 1700000000123}
	base = time.UnixMilli(1700000100000).UTC()
)

func (h *harness) reopen() {
	h.t.Helper()
	if h.m != nil {
		require.NoError(h.t, h.m.Close())
	}
	m, err := h.open()
	require.NoError(h.t, err)
	h.m = m
}

// payload is deterministic, distinct per (seq, size), so a read of the wrong record shows.
func payload(seq uint64, size int) []byte {
	b := make([]byte, size)
	r := rand.New(rand.NewPCG(seq, uint64(size)))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// add appends a record of size bytes at time at.
func (h *harness) add(k fragstore.Key, seq uint64, size int, at time.Time) stored {
	h.t.Helper()
	rec := fragstore.Record{Seq: seq, Time: at, Meta: []byte(fmt.Sprintf(`{"seq":%d}`, seq)), Data: payload(seq, size)}
	loc, err := h.m.Append(ctx, k, rec)
	require.NoError(h.t, err)
	require.Equal(h.t, int64(size), loc.Length)
	s := stored{rec: rec, loc: loc}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.recs == nil {
		h.recs = map[fragstore.Key][]stored{}
	}
	h.recs[k] = append(h.recs[k], s)
	return s
}

func (h *harness) read(k fragstore.Key, s stored) {
	h.t.Helper()
	got, err := h.m.Read(ctx, k, s.loc)
	require.NoError(h.t, err, "record %d at %+v", s.rec.Seq, s.loc)
	if !bytes.Equal(s.rec.Data, got) {
		require.FailNow(h.t, "bytes differ", "record %d: %d bytes stored, %d read", s.rec.Seq, len(s.rec.Data), len(got))
	}
}

func (h *harness) readAll(k fragstore.Key) {
	h.t.Helper()
	for _, s := range h.recs[k] {
		h.read(k, s)
	}
}

func (h *harness) gone(k fragstore.Key, s stored) {
	h.t.Helper()
	_, err := h.m.Read(ctx, k, s.loc)
	require.ErrorIs(h.t, err, fragstore.ErrNotFound, "record %d", s.rec.Seq)
}

func (h *harness) segments(k fragstore.Key) []uint64 {
	h.t.Helper()
	segs, err := h.m.Segments(ctx, k)
	require.NoError(h.t, err)
	var out []uint64
	for _, s := range segs {
		require.Positive(h.t, s.Size, "segment %d", s.Number)
		out = append(out, s.Number)
	}
	require.True(h.t, slices.IsSorted(out), "segments in increasing order: %v", out)
	return out
}

func testRoundTrip(t *testing.T, h *harness) {
	sizes := []int{1, 2, 100, 4096, 64 << 10, 1 << 20, 3 << 20}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		sizes = append(sizes, 1+r.IntN(600<<10))
	}
	for i, size := range sizes {
		s := h.add(key, uint64(i+1), size, base.Add(time.Duration(i)*time.Second))
		h.read(key, s) // readable at once
	}
	h.readAll(key)
}

func testConcurrent(t *testing.T, h *harness) {
	const streams, each = 8, 12
	var wg sync.WaitGroup
	for s := range streams {
		k := fragstore.Key{Name: fmt.Sprintf("cam%d", s), CreatedMs: int64(1000 + s)}
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(s), 9))
			for i := 1; i <= each; i++ {
				st := h.add(k, uint64(i), 1+r.IntN(256<<10), base.Add(time.Duration(i)*2*time.Second))
				h.read(k, st) // reads run while other streams append
			}
		})
	}
	wg.Wait()
	for s := range streams {
		k := fragstore.Key{Name: fmt.Sprintf("cam%d", s), CreatedMs: int64(1000 + s)}
		require.Len(t, h.recs[k], each)
		h.readAll(k)
	}
}

// rollingStream appends records at base + the given seconds.
func rollingStream(h *harness, k fragstore.Key, secs ...int) []stored {
	var out []stored
	for i, sec := range secs {
		out = append(out, h.add(k, uint64(i+1), 1000+i, base.Add(time.Duration(sec)*time.Second)))
	}
	return out
}

func testSegmentsByTime(t *testing.T, h *harness) {
	recs := rollingStream(h, key, 0, 2, 4, 70, 72, 200, 100) // the last one: a clock stepped back
	var segs []uint64
	for i, r := range recs {
		if i > 0 {
			require.GreaterOrEqual(t, r.loc.Segment, recs[i-1].loc.Segment, "segments follow append order")
		}
		segs = append(segs, r.loc.Segment)
	}
	require.NotEqual(t, recs[2].loc.Segment, recs[3].loc.Segment, "records a minute apart share no segment")
	require.NotEqual(t, recs[4].loc.Segment, recs[5].loc.Segment)
	require.NotEqual(t, recs[5].loc.Segment, recs[6].loc.Segment)
	require.Equal(t, slices.Compact(segs), h.segments(key), "Segments lists exactly the segments in use")
	h.readAll(key)
}

func testDeleteSegment(t *testing.T, h *harness) {
	recs := rollingStream(h, key, 0, 1, 100, 101, 200)
	first, last := recs[0].loc.Segment, recs[4].loc.Segment
	require.NoError(t, h.m.DeleteSegment(ctx, key, first))
	h.gone(key, recs[0])
	h.gone(key, recs[1])
	for _, r := range recs[2:] {
		h.read(key, r)
	}
	require.NotContains(t, h.segments(key), first)
	require.NoError(t, h.m.DeleteSegment(ctx, key, first), "deleting a missing segment is no error")

	// Deleting the segment being appended to: the next record goes to a new one.
	require.NoError(t, h.m.DeleteSegment(ctx, key, last))
	h.gone(key, recs[4])
	next := h.add(key, 6, 500, base.Add(201*time.Second))
	require.Greater(t, next.loc.Segment, last)
	h.read(key, next)
	h.read(key, recs[2])
}

func testDeleteStream(t *testing.T, h *harness) {
	other := fragstore.Key{Name: key.Name, CreatedMs: key.CreatedMs + 1} // same name, re-created
	recs := rollingStream(h, key, 0, 100, 200)
	rollingStream(h, other, 0, 100)
	require.NoError(t, h.m.DeleteStream(ctx, key))
	for _, r := range recs {
		h.gone(key, r)
	}
	require.Empty(t, h.segments(key))
	h.readAll(other)
	require.NoError(t, h.m.DeleteStream(ctx, key), "deleting a missing stream is no error")

	// The key starts from scratch.
	r := h.add(key, 1, 777, base)
	h.read(key, r)
	require.Len(t, h.segments(key), 1)
}

func testReopen(t *testing.T, h *harness) {
	before := rollingStream(h, key, 0, 1, 2, 100)
	h.reopen()
	for _, r := range before {
		h.read(key, r)
	}
	// Appends go on without touching what is there, in the open segment's time too.
	after := []stored{h.add(key, 5, 3000, base.Add(101*time.Second)), h.add(key, 6, 10, base.Add(102*time.Second))}
	require.GreaterOrEqual(t, after[0].loc.Segment, before[3].loc.Segment)
	h.readAll(key)
	h.reopen()
	h.readAll(key)
	require.Equal(t, slices.Compact([]uint64{before[0].loc.Segment, before[1].loc.Segment, before[2].loc.Segment,
		before[3].loc.Segment, after[0].loc.Segment, after[1].loc.Segment}), h.segments(key))
}

func testTruncateAfter(t *testing.T, h *harness) {
	recs := rollingStream(h, key, 0, 1, 2)
	require.Equal(t, recs[0].loc.Segment, recs[2].loc.Segment, "test premise: one segment")
	cut, err := h.m.TruncateAfter(ctx, key, recs[1].loc)
	require.NoError(t, err)
	require.GreaterOrEqual(t, cut, recs[2].loc.Length)
	h.read(key, recs[0])
	h.read(key, recs[1])
	_, err = h.m.Read(ctx, key, recs[2].loc)
	require.Error(t, err, "the cut record is gone")

	cut, err = h.m.TruncateAfter(ctx, key, recs[1].loc)
	require.NoError(t, err)
	require.Zero(t, cut, "nothing more to cut")

	h.reopen()
	next := h.add(key, 3, 4321, base.Add(3*time.Second))
	h.read(key, next)
	h.read(key, recs[0])
	h.read(key, recs[1])

	_, err = h.m.TruncateAfter(ctx, key, fragstore.Location{Segment: 12345, Offset: 100, Length: 10})
	require.ErrorIs(t, err, fragstore.ErrNotFound)
}

func testRetain(t *testing.T, h *harness) {
	a := fragstore.Key{Name: "a", CreatedMs: 1}
	b := fragstore.Key{Name: "b", CreatedMs: 1}
	c := fragstore.Key{Name: "a", CreatedMs: 2}
	for _, k := range []fragstore.Key{a, b, c} {
		rollingStream(h, k, 0, 100)
	}
	removed, err := h.m.Retain(ctx, []fragstore.Key{a, c, {Name: "never-stored", CreatedMs: 5}})
	require.NoError(t, err)
	require.Len(t, removed, 1)
	for _, r := range h.recs[b] {
		h.gone(b, r)
	}
	require.Empty(t, h.segments(b))
	h.readAll(a)
	h.readAll(c)
	removed, err = h.m.Retain(ctx, []fragstore.Key{a, c})
	require.NoError(t, err)
	require.Empty(t, removed)
	// A removed stream can store again.
	r := h.add(b, 1, 10, base)
	h.read(b, r)
}

func testKeys(t *testing.T, h *harness) {
	// 256 characters, the KVS maximum, differing only in the last one.
	long := func(last byte) string { return string(bytes.Repeat([]byte("x"), 255)) + string(last) }
	keys := []fragstore.Key{
		{Name: long('a'), CreatedMs: 1}, {Name: long('b'), CreatedMs: 1}, // differ only at the end
		{Name: ".", CreatedMs: 1}, {Name: "..", CreatedMs: 1}, {Name: "a_b", CreatedMs: 1}, {Name: "a", CreatedMs: 0},
		{Name: "A", CreatedMs: 0},
	}
	for i, k := range keys {
		h.add(k, 1, 100+i, base)
	}
	for _, k := range keys {
		require.Len(t, h.recs[k], 1)
		h.readAll(k)
		require.Len(t, h.segments(k), 1, "%.20q", k.Name)
	}
	require.NoError(t, h.m.DeleteStream(ctx, keys[0]))
	h.readAll(keys[1])
	h.gone(keys[0], h.recs[keys[0]][0])
}

func testBadLocations(t *testing.T, h *harness) {
	recs := rollingStream(h, key, 0, 1)
	l := recs[1].loc
	_, err := h.m.Read(ctx, key, fragstore.Location{Segment: l.Segment + 1000, Offset: l.Offset, Length: l.Length})
	require.ErrorIs(t, err, fragstore.ErrNotFound)
	for _, bad := range []fragstore.Location{
		{Segment: l.Segment, Offset: l.Offset + 1, Length: l.Length},
		{Segment: l.Segment, Offset: l.Offset, Length: l.Length + 1},
		{Segment: l.Segment, Offset: l.Offset, Length: l.Length - 1},
		{Segment: l.Segment, Offset: 0, Length: 10},
		{Segment: l.Segment, Offset: 1 << 40, Length: 10},
		{Segment: l.Segment, Offset: l.Offset, Length: -1},
	} {
		_, err := h.m.Read(ctx, key, bad)
		require.Error(t, err, "%+v", bad)
	}
	_, err = h.m.Read(ctx, fragstore.Key{Name: "other", CreatedMs: 1}, l)
	require.ErrorIs(t, err, fragstore.ErrNotFound)
	h.readAll(key)
}

func testClosed(t *testing.T, h *harness) {
	h.add(key, 1, 10, base)
	require.NoError(t, h.m.Close())
	_, err := h.m.Append(ctx, key, fragstore.Record{Seq: 2, Time: base, Data: []byte("x")})
	require.Error(t, err)
	h.m = nil
	h.reopen()
	h.readAll(key)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = h.m.Append(cctx, key, fragstore.Record{Seq: 2, Time: base, Data: []byte("x")})
	require.ErrorIs(t, err, context.Canceled)
}
