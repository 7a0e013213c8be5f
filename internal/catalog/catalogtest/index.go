package catalogtest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/catalog"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/mkv"
)

// TestIndex runs the catalog.Index conformance suite. open must return an empty index; it is
// called once per subtest and the implementation registers its own cleanup with t. Like
// TestStore it works through the interface only.
func TestIndex(t *testing.T, open func(t *testing.T) catalog.Index) {
	tests := []struct {
		name string
		fn   func(t *testing.T, ix catalog.Index)
	}{
		{"PutGet", testIndexPutGet},
		{"PutRejects", testIndexPutRejects},
		{"PutMany", testIndexPutMany},
		{"Headers", testIndexHeaders},
		{"MissingStream", testIndexMissing},
		{"ResultsAreCopies", testIndexCopies},
		{"ListTimelines", testIndexListTimelines},
		{"ListInclusiveBounds", testIndexListInclusive},
		{"ListPagination", testIndexListPagination},
		{"After", testIndexAfter},
		{"SeqAt", testIndexSeqAt},
		{"Expire", testIndexExpire},
		{"ExpireLimit", testIndexExpireLimit},
		{"ExpireFreesSegmentsAndHeaders", testIndexExpireFrees},
		{"DeleteStream", testIndexDeleteStream},
		{"Streams", testIndexStreams},
		{"ConcurrentStreams", testIndexConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

var (
	ixKey   = catalog.Key{Name: "cam_1", CreatedMs: 1700000000123}
	ixBase  = time.UnixMilli(1700000100000).UTC()
	ixHdr   = []byte("\x1a\x45\xdf\xa3 header one")
	ixHdrID = "h1"
)

// frag builds the entry with that seq: producer start at ixBase+pOff, server start at
// ixBase+sOff, 2 s long, in header h1.
func frag(k catalog.Key, seq uint64, pOff, sOff time.Duration) *fragment.Fragment {
	return &fragment.Fragment{
		Seq: seq, Number: fragment.FormatNumber(k.CreatedMs, seq), Timecode: uint64(pOff.Milliseconds()),
		ProducerTime: ixBase.Add(pOff), ServerTime: ixBase.Add(sOff), Duration: 2 * time.Second,
		Size: int64(1000 + seq), HeaderID: ixHdrID,
	}
}

func locOf(seq uint64) catalog.Location {
	return catalog.Location{Segment: 1 + seq/10, Offset: int64(100 * seq), Length: int64(1000 + seq)}
}

func put(t *testing.T, ix catalog.Index, k catalog.Key, fs ...*fragment.Fragment) {
	t.Helper()
	for _, f := range fs {
		require.NoError(t, ix.PutFragment(context.Background(), k, f, locOf(f.Seq), ixHdr))
	}
}

// seqFrags puts n fragments 2 s apart on both timelines (server 500 ms behind producer).
func seqFrags(t *testing.T, ix catalog.Index, k catalog.Key, n int) []*fragment.Fragment {
	t.Helper()
	var out []*fragment.Fragment
	for i := 1; i <= n; i++ {
		off := time.Duration(i-1) * 2 * time.Second
		out = append(out, frag(k, uint64(i), off, off+500*time.Millisecond))
	}
	put(t, ix, k, out...)
	return out
}

// sameFrag compares entries exactly, times as instants, and got's Location with the one put
// (every entry here is put at locOf(seq)).
func sameFrag(t *testing.T, want, got *fragment.Fragment) {
	t.Helper()
	require.NotNil(t, got)
	require.True(t, want.ProducerTime.Equal(got.ProducerTime), "ProducerTime of %d: want %v, got %v", want.Seq, want.ProducerTime, got.ProducerTime)
	require.True(t, want.ServerTime.Equal(got.ServerTime), "ServerTime of %d: want %v, got %v", want.Seq, want.ServerTime, got.ServerTime)
	require.Equal(t, locOf(want.Seq), got.Location, "Location of %d", want.Seq)
	w, g := *want, *got
	w.ProducerTime, w.ServerTime, g.ProducerTime, g.ServerTime = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	w.Location = g.Location
	require.Equal(t, w, g)
}

func seqs(fs []*fragment.Fragment) []uint64 {
	out := []uint64{}
	for _, f := range fs {
		out = append(out, f.Seq)
	}
	return out
}

func listAll(t *testing.T, ix catalog.Index, k catalog.Key, kind catalog.TimeKind, from, to time.Time) []uint64 {
	t.Helper()
	fs, more, err := ix.ListFragments(context.Background(), k, kind, from.UnixMilli(), to.UnixMilli(), nil, 100000)
	require.NoError(t, err)
	require.False(t, more)
	for _, f := range fs {
		require.Equal(t, locOf(f.Seq), f.Location, "listed entries carry their Location")
	}
	return seqs(fs)
}

func testIndexPutGet(t *testing.T, ix catalog.Index) {
	ctx := context.Background()
	f1 := frag(ixKey, 1, 0, 300*time.Millisecond)
	f2 := frag(ixKey, 2, 2*time.Second, 2300*time.Millisecond)
	f2.Tags = []mkv.SimpleTag{{Name: fragment.TagNotification, Value: "x"}, {Name: "", Value: ""}, {Name: "ü", Value: "v\x00"}}
	f2.Duration = 1999 * time.Millisecond
	f2.Timecode = 1<<63 + 5
	put(t, ix, ixKey, f1, f2)

	for _, want := range []*fragment.Fragment{f1, f2} {
		got, err := ix.GetFragment(ctx, ixKey, want.Seq)
		require.NoError(t, err)
		sameFrag(t, want, got)
		require.Equal(t, locOf(want.Seq), got.Location)
		require.Equal(t, time.UTC, got.ServerTime.Location())
	}
	seq, loc, err := ix.LastFragment(ctx, ixKey)
	require.NoError(t, err)
	require.Equal(t, uint64(2), seq)
	require.Equal(t, locOf(2), loc)

	_, err = ix.GetFragment(ctx, ixKey, 3)
	require.ErrorIs(t, err, catalog.ErrFragmentNotFound)
	_, err = ix.GetFragment(ctx, ixKey, 0)
	require.ErrorIs(t, err, catalog.ErrFragmentNotFound)

	segs, err := ix.LiveSegments(ctx, ixKey)
	require.NoError(t, err)
	require.Equal(t, []uint64{1}, segs)
}

func testIndexPutRejects(t *testing.T, ix catalog.Index) {
	ctx := context.Background()
	put(t, ix, ixKey, frag(ixKey, 5, 0, 0))
	dup := frag(ixKey, 5, time.Hour, time.Hour)
	require.Error(t, ix.PutFragment(ctx, ixKey, dup, locOf(5), ixHdr), "a stored seq is never overwritten")
	got, err := ix.GetFragment(ctx, ixKey, 5)
	require.NoError(t, err)
	sameFrag(t, frag(ixKey, 5, 0, 0), got)
	require.Equal(t, []uint64{5}, listAll(t, ix, ixKey, catalog.ProducerTime, ixBase.Add(-time.Hour), ixBase.Add(2*time.Hour)))

	bad := frag(ixKey, 6, 0, 0)
	bad.Number = fragment.FormatNumber(ixKey.CreatedMs+1, 6)
	require.Error(t, ix.PutFragment(ctx, ixKey, bad, locOf(6), ixHdr), "number of another stream")

	noHdr := frag(ixKey, 7, 0, 0)
	noHdr.HeaderID = "unknown"
	require.Error(t, ix.PutFragment(ctx, ixKey, noHdr, locOf(7), nil), "unknown header id without header bytes")

	seq, _, err := ix.LastFragment(ctx, ixKey)
	require.NoError(t, err)
	require.Equal(t, uint64(5), seq, "failed puts change nothing")
}

// PutFragments commits entries of several streams together, all or none.
func testIndexPutMany(t *testing.T, ix catalog.Index) {
	ctx := context.Background()
	other := catalog.Key{Name: "cam_2", CreatedMs: 1700000000456}
	p := func(k catalog.Key, seq uint64, hdr []byte) catalog.Put {
		off := time.Duration(seq) * 2 * time.Second
		return catalog.Put{Key: k, Fragment: frag(k, seq, off, off), Location: locOf(seq), Header: hdr}
	}
	require.NoError(t, ix.PutFragments(ctx, []catalog.Put{p(ixKey, 1, ixHdr), p(other, 1, ixHdr), p(ixKey, 2, nil), p(other, 2, nil)}))
	for _, k := range []catalog.Key{ixKey, other} {
		fs, err := ix.FragmentsAfter(ctx, k, 0, 10)
		require.NoError(t, err)
		require.Equal(t, []uint64{1, 2}, seqs(fs))
		sameFrag(t, frag(k, 2, 4*time.Second, 4*time.Second), fs[1])
		seq, loc, err := ix.LastFragment(ctx, k)
		require.NoError(t, err)
		require.Equal(t, uint64(2), seq)
		require.Equal(t, locOf(2), loc)
	}

	// One bad entry (seq 2 of ixKey is stored) fails the whole batch: nothing of it is stored.
	err := ix.PutFragments(ctx, []catalog.Put{p(other, 3, nil), p(ixKey, 2, nil), p(ixKey, 3, nil)})
	require.Error(t, err)
	for _, k := range []catalog.Key{ixKey, other} {
		fs, err := ix.FragmentsAfter(ctx, k, 0, 10)
		require.NoError(t, err)
		require.Equal(t, []uint64{1, 2}, seqs(fs), "stream %s", k.Name)
		seq, _, err := ix.LastFragment(ctx, k)
		require.NoError(t, err)
		require.Equal(t, uint64(2), seq)
	}
	require.NoError(t, ix.PutFragments(ctx, nil), "an empty batch is no error")
}

func testIndexHeaders(t *testing.T, ix catalog.Index) {
	ctx := context.Background()
	put(t, ix, ixKey, frag(ixKey, 1, 0, 0))
	// A known id needs no bytes, and bytes for a known id do not replace the stored ones.
	f2 := frag(ixKey, 2, 2*time.Second, 2*time.Second)
	require.NoError(t, ix.PutFragment(ctx, ixKey, f2, locOf(2), nil))
	f3 := frag(ixKey, 3, 4*time.Second, 4*time.Second)
	require.NoError(t, ix.PutFragment(ctx, ixKey, f3, locOf(3), []byte("other bytes")))
	f4 := frag(ixKey, 4, 6*time.Second, 6*time.Second)
	f4.HeaderID = "h2"
	require.NoError(t, ix.PutFragment(ctx, ixKey, f4, locOf(4), []byte("second header")))

	h, err := ix.GetHeader(ctx, ixKey, ixHdrID)
	require.NoError(t, err)
	require.Equal(t, ixHdr, h)
	h, err = ix.GetHeader(ctx, ixKey, "h2")
	require.NoError(t, err)
	require.Equal(t, []byte("second header"), h)
	_, err = ix.GetHeader(ctx, ixKey, "h3")
	require.ErrorIs(t, err, catalog.ErrFragmentNotFound)
	other := catalog.Key{Name: ixKey.Name, CreatedMs: ixKey.CreatedMs + 1}
	_, err = ix.GetHeader(ctx, other, ixHdrID)
	require.ErrorIs(t, err, catalog.ErrFragmentNotFound, "headers are per stream")
}

func testIndexMissing(t *testing.T, ix catalog.Index) {
	ctx := context.Background()
	k := catalog.Key{Name: "nothing", CreatedMs: 1}
	_, err := ix.GetFragment(ctx, k, 1)
	require.ErrorIs(t, err, catalog.ErrFragmentNotFound)
	_, err = ix.GetHeader(ctx, k, "h")
	require.ErrorIs(t, err, catalog.ErrFragmentNotFound)
	seq, _, err := ix.LastFragment(ctx, k)
	require.NoError(t, err)
	require.Zero(t, seq)
	fs, more, err := ix.ListFragments(ctx, k, catalog.ServerTime, 0, 1<<62, nil, 10)
	require.NoError(t, err)
	require.Empty(t, fs)
	require.False(t, more)
	fs, err = ix.FragmentsAfter(ctx, k, 0, 10)
	require.NoError(t, err)
	require.Empty(t, fs)
	_, err = ix.SeqAt(ctx, k, catalog.ProducerTime, 0)
	require.ErrorIs(t, err, catalog.ErrFragmentNotFound)
	n, freed, err := ix.ExpireFragments(ctx, k, 1<<62, 100)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Empty(t, freed)
	segs, err := ix.LiveSegments(ctx, k)
	require.NoError(t, err)
	require.Empty(t, segs)
	require.NoError(t, ix.DeleteFragments(ctx, k))
	keys, err := ix.FragmentStreams(ctx)
	require.NoError(t, err)
	require.Empty(t, keys)
}

func testIndexCopies(t *testing.T, ix catalog.Index) {
	ctx := context.Background()
	f := frag(ixKey, 1, 0, 0)
	f.Tags = []mkv.SimpleTag{{Name: "a", Value: "b"}}
	hdr := append([]byte(nil), ixHdr...)
	require.NoError(t, ix.PutFragment(ctx, ixKey, f, locOf(1), hdr))
	hdr[0] = 'X'
	f.Tags[0].Value = "changed"

	got, err := ix.GetFragment(ctx, ixKey, 1)
	require.NoError(t, err)
	require.Equal(t, "b", got.Tags[0].Value)
	got.Tags[0].Value = "mutated"
	again, err := ix.GetFragment(ctx, ixKey, 1)
	require.NoError(t, err)
	require.Equal(t, "b", again.Tags[0].Value)

	h, err := ix.GetHeader(ctx, ixKey, ixHdrID)
	require.NoError(t, err)
	require.Equal(t, ixHdr, h)
	h[0] = 'Y'
	h, err = ix.GetHeader(ctx, ixKey, ixHdrID)
	require.NoError(t, err)
	require.Equal(t, ixHdr, h)
}

func testIndexListTimelines(t *testing.T, ix catalog.Index) {
	// Producer clocks run their own way: the producer timeline orders these 3, 1, 2 (one of
	// them before 1970), the server timeline 1, 2, 3.
	put(t, ix, ixKey,
		frag(ixKey, 1, 10*time.Second, 0),
		frag(ixKey, 2, 20*time.Second, time.Second),
		frag(ixKey, 3, -ixBase.Sub(time.UnixMilli(-5000)), 2*time.Second))
	all := func(kind catalog.TimeKind) []uint64 {
		return listAll(t, ix, ixKey, kind, time.UnixMilli(-1<<50), ixBase.Add(time.Hour))
	}
	require.Equal(t, []uint64{3, 1, 2}, all(catalog.ProducerTime))
	require.Equal(t, []uint64{1, 2, 3}, all(catalog.ServerTime))
	require.Equal(t, []uint64{1}, listAll(t, ix, ixKey, catalog.ProducerTime, ixBase, ixBase.Add(15*time.Second)))
	require.Equal(t, []uint64{3}, listAll(t, ix, ixKey, catalog.ProducerTime, time.UnixMilli(-5000), time.UnixMilli(-5000)))
	require.Equal(t, []uint64{2, 3}, listAll(t, ix, ixKey, catalog.ServerTime, ixBase.Add(time.Second), ixBase.Add(time.Hour)))
}

// testIndexListInclusive is the KVS documentation's example: fragments starting at 00:00,
// 00:02, 00:04 and 00:06 and a range 00:01–00:04 return the 00:02 and 00:04 fragments.
func testIndexListInclusive(t *testing.T, ix catalog.Index) {
	seqFrags(t, ix, ixKey, 4)
	got := listAll(t, ix, ixKey, catalog.ProducerTime, ixBase.Add(time.Second), ixBase.Add(4*time.Second))
	require.Equal(t, []uint64{2, 3}, got)
	got = listAll(t, ix, ixKey, catalog.ProducerTime, ixBase, ixBase.Add(6*time.Second))
	require.Equal(t, []uint64{1, 2, 3, 4}, got, "both ends inclusive")
	got = listAll(t, ix, ixKey, catalog.ProducerTime, ixBase.Add(2*time.Second), ixBase.Add(2*time.Second))
	require.Equal(t, []uint64{2}, got, "a one-ms range")
	got = listAll(t, ix, ixKey, catalog.ProducerTime, ixBase.Add(time.Second+1), ixBase.Add(2*time.Second-time.Millisecond))
	require.Empty(t, got)
	fs, more, err := ix.ListFragments(context.Background(), ixKey, catalog.ProducerTime, 10, 5, nil, 10)
	require.NoError(t, err)
	require.Empty(t, fs, "from after to")
	require.False(t, more)
}

func testIndexListPagination(t *testing.T, ix catalog.Index) {
	ctx := context.Background()
	// 60 fragments, three to a start ms, so pages end in the middle of equal starts.
	var want []uint64
	for i := 1; i <= 60; i++ {
		off := time.Duration((i-1)/3) * time.Second
		put(t, ix, ixKey, frag(ixKey, uint64(i), off, off))
		want = append(want, uint64(i))
	}
	for _, kind := range []catalog.TimeKind{catalog.ProducerTime, catalog.ServerTime} {
		for _, limit := range []int{1, 2, 7, 30, 60, 61} {
			var got []uint64
			var after *catalog.Position
			for pages := 0; ; pages++ {
				require.Less(t, pages, 100, "pagination does not end")
				fs, more, err := ix.ListFragments(ctx, ixKey, kind, ixBase.UnixMilli(), ixBase.Add(time.Hour).UnixMilli(), after, limit)
				require.NoError(t, err)
				require.LessOrEqual(t, len(fs), limit)
				got = append(got, seqs(fs)...)
				if !more {
					break
				}
				require.Len(t, fs, limit, "a page with more after it is full")
				last := fs[len(fs)-1]
				start := last.ProducerTime
				if kind == catalog.ServerTime {
					start = last.ServerTime
				}
				after = &catalog.Position{Ms: start.UnixMilli(), Seq: last.Seq}
			}
			require.Equal(t, want, got, "kind %d limit %d: every entry exactly once, in order", kind, limit)
		}
	}
	// A position before the range starts at the range; limit 0 lists nothing.
	fs, _, err := ix.ListFragments(ctx, ixKey, catalog.ProducerTime, ixBase.Add(19*time.Second).UnixMilli(), ixBase.Add(time.Hour).UnixMilli(), &catalog.Position{Ms: 0, Seq: 99}, 10)
	require.NoError(t, err)
	require.Equal(t, []uint64{58, 59, 60}, seqs(fs))
	fs, more, err := ix.ListFragments(ctx, ixKey, catalog.ProducerTime, 0, ixBase.Add(time.Hour).UnixMilli(), nil, 0)
	require.NoError(t, err)
	require.Empty(t, fs)
	require.False(t, more)
}

func testIndexAfter(t *testing.T, ix catalog.Index) {
	ctx := context.Background()
	// Out of time order on purpose: After is sequence order.
	put(t, ix, ixKey, frag(ixKey, 1, 5*time.Second, 5*time.Second), frag(ixKey, 2, 0, 0), frag(ixKey, 4, time.Second, time.Second))
	for _, tc := range []struct {
		after uint64
		limit int
		want  []uint64
	}{
		{0, 10, []uint64{1, 2, 4}},
		{0, 2, []uint64{1, 2}},
		{2, 10, []uint64{4}},
		{3, 10, []uint64{4}},
		{4, 10, []uint64{}},
		{1<<64 - 1, 10, []uint64{}},
		{0, 0, []uint64{}},
	} {
		fs, err := ix.FragmentsAfter(ctx, ixKey, tc.after, tc.limit)
		require.NoError(t, err)
		require.Equal(t, tc.want, seqs(fs), "after %d limit %d", tc.after, tc.limit)
	}
}

func testIndexSeqAt(t *testing.T, ix catalog.Index) {
	ctx := context.Background()
	// Producer: [0,2) [2,4) gap [10,12); server: the same, shifted by +1 s. Seq 4 and 5 start
	// together at 20 s, 4 with zero length.
	put(t, ix, ixKey, frag(ixKey, 1, 0, time.Second), frag(ixKey, 2, 2*time.Second, 3*time.Second), frag(ixKey, 3, 10*time.Second, 11*time.Second))
	f4, f5 := frag(ixKey, 4, 20*time.Second, 21*time.Second), frag(ixKey, 5, 20*time.Second, 21*time.Second)
	f4.Duration = 0
	put(t, ix, ixKey, f4, f5)
	ms := func(d time.Duration) int64 { return ixBase.Add(d).UnixMilli() }
	for _, tc := range []struct {
		kind catalog.TimeKind
		at   time.Duration
		want uint64 // 0: ErrNotFound
	}{
		{catalog.ProducerTime, -time.Hour, 1},              // before everything: the first
		{catalog.ProducerTime, 0, 1},                       // a start
		{catalog.ProducerTime, 1999 * time.Millisecond, 1}, // last ms inside
		{catalog.ProducerTime, 2 * time.Second, 2},         // the end is exclusive
		{catalog.ProducerTime, 5 * time.Second, 3},         // in the gap: the next one
		{catalog.ProducerTime, 11 * time.Second, 3},
		{catalog.ProducerTime, 20 * time.Second, 5}, // 4 is empty: 5 contains it
		{catalog.ProducerTime, 21 * time.Second, 5},
		{catalog.ProducerTime, 22 * time.Second, 0}, // after the last
		{catalog.ServerTime, 0, 1},
		{catalog.ServerTime, time.Second, 1},
		{catalog.ServerTime, 3 * time.Second, 2},
		{catalog.ServerTime, 12999 * time.Millisecond, 3},
		{catalog.ServerTime, 13 * time.Second, 4},
	} {
		got, err := ix.SeqAt(ctx, ixKey, tc.kind, ms(tc.at))
		if tc.want == 0 {
			require.ErrorIs(t, err, catalog.ErrFragmentNotFound, "kind %d at %v", tc.kind, tc.at)
			continue
		}
		require.NoError(t, err, "kind %d at %v", tc.kind, tc.at)
		require.Equal(t, tc.want, got, "kind %d at %v", tc.kind, tc.at)
	}
}

func testIndexExpire(t *testing.T, ix catalog.Index) {
	ctx := context.Background()
	fs := seqFrags(t, ix, ixKey, 10) // server starts at base+0.5 s, +2.5 s, …
	cutoff := fs[3].ServerTime.UnixMilli()
	n, _, err := ix.ExpireFragments(ctx, ixKey, cutoff, 100)
	require.NoError(t, err)
	require.Equal(t, 3, n, "strictly before the cutoff")
	n, _, err = ix.ExpireFragments(ctx, ixKey, cutoff, 100)
	require.NoError(t, err)
	require.Zero(t, n, "nothing left to expire")

	for _, f := range fs[:3] {
		_, err := ix.GetFragment(ctx, ixKey, f.Seq)
		require.ErrorIs(t, err, catalog.ErrFragmentNotFound)
	}
	for _, kind := range []catalog.TimeKind{catalog.ProducerTime, catalog.ServerTime} {
		require.Equal(t, []uint64{4, 5, 6, 7, 8, 9, 10}, listAll(t, ix, ixKey, kind, ixBase.Add(-time.Hour), ixBase.Add(time.Hour)))
		seq, err := ix.SeqAt(ctx, ixKey, kind, ixBase.Add(-time.Hour).UnixMilli())
		require.NoError(t, err)
		require.Equal(t, uint64(4), seq)
	}
	after, err := ix.FragmentsAfter(ctx, ixKey, 0, 100)
	require.NoError(t, err)
	require.Equal(t, []uint64{4, 5, 6, 7, 8, 9, 10}, seqs(after))

	// Everything: Last survives, so numbering never restarts.
	n, _, err = ix.ExpireFragments(ctx, ixKey, ixBase.Add(time.Hour).UnixMilli(), 100)
	require.NoError(t, err)
	require.Equal(t, 7, n)
	seq, loc, err := ix.LastFragment(ctx, ixKey)
	require.NoError(t, err)
	require.Equal(t, uint64(10), seq)
	require.Equal(t, locOf(10), loc)
	keys, err := ix.FragmentStreams(ctx)
	require.NoError(t, err)
	require.Equal(t, []catalog.Key{ixKey}, keys, "a stream with only Last left is still listed")
	put(t, ix, ixKey, frag(ixKey, 11, time.Hour, time.Hour))
	after, err = ix.FragmentsAfter(ctx, ixKey, 0, 100)
	require.NoError(t, err)
	require.Equal(t, []uint64{11}, seqs(after))
}

func testIndexExpireLimit(t *testing.T, ix catalog.Index) {
	ctx := context.Background()
	seqFrags(t, ix, ixKey, 25)
	cutoff := ixBase.Add(time.Hour).UnixMilli()
	var counts []int
	removed := 0
	for range 10 {
		n, _, err := ix.ExpireFragments(ctx, ixKey, cutoff, 10)
		require.NoError(t, err)
		if n == 0 {
			break
		}
		counts = append(counts, n)
		removed += n
		left, err := ix.FragmentsAfter(ctx, ixKey, 0, 100)
		require.NoError(t, err)
		require.Len(t, left, 25-removed)
		if len(left) > 0 {
			require.Equal(t, uint64(removed+1), left[0].Seq, "oldest first")
		}
	}
	require.Equal(t, []int{10, 10, 5}, counts)
}

func testIndexExpireFrees(t *testing.T, ix catalog.Index) {
	ctx := context.Background()
	// Segments by seq (locOf): 1-9 in 1, 10-19 in 2, 20-25 in 3. Header h2 is used by 3..4 only.
	var fs []*fragment.Fragment
	for i := 1; i <= 25; i++ {
		off := time.Duration(i) * time.Second
		f := frag(ixKey, uint64(i), off, off)
		hdr := ixHdr
		if i == 3 || i == 4 {
			f.HeaderID, hdr = "h2", []byte("second")
		}
		require.NoError(t, ix.PutFragment(ctx, ixKey, f, locOf(f.Seq), hdr))
		fs = append(fs, f)
	}
	segs, err := ix.LiveSegments(ctx, ixKey)
	require.NoError(t, err)
	require.Equal(t, []uint64{1, 2, 3}, segs)

	expireBefore := func(seq int) (int, []uint64) {
		n, freed, err := ix.ExpireFragments(ctx, ixKey, fs[seq-1].ServerTime.UnixMilli(), 1000)
		require.NoError(t, err)
		return n, freed
	}
	n, freed := expireBefore(4) // 1..3: segment 1 still holds 4..9; h2 still used by 4
	require.Equal(t, 3, n)
	require.Empty(t, freed)
	_, err = ix.GetHeader(ctx, ixKey, "h2")
	require.NoError(t, err)

	n, freed = expireBefore(10) // 4..9: segment 1 empties, h2 unused
	require.Equal(t, 6, n)
	require.Equal(t, []uint64{1}, freed)
	_, err = ix.GetHeader(ctx, ixKey, "h2")
	require.ErrorIs(t, err, catalog.ErrFragmentNotFound, "a header no entry uses is removed")
	_, err = ix.GetHeader(ctx, ixKey, ixHdrID)
	require.NoError(t, err)

	n, freed = expireBefore(25) // 10..24: segment 2 empties, segment 3 keeps 25
	require.Equal(t, 15, n)
	require.Equal(t, []uint64{2}, freed)
	segs, err = ix.LiveSegments(ctx, ixKey)
	require.NoError(t, err)
	require.Equal(t, []uint64{3}, segs)

	n, freed, err = ix.ExpireFragments(ctx, ixKey, ixBase.Add(time.Hour).UnixMilli(), 1000)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, []uint64{3}, freed)
	segs, err = ix.LiveSegments(ctx, ixKey)
	require.NoError(t, err)
	require.Empty(t, segs)
	_, err = ix.GetHeader(ctx, ixKey, ixHdrID)
	require.ErrorIs(t, err, catalog.ErrFragmentNotFound)
}

func testIndexDeleteStream(t *testing.T, ix catalog.Index) {
	ctx := context.Background()
	other := catalog.Key{Name: ixKey.Name, CreatedMs: ixKey.CreatedMs + 1} // a re-created stream
	seqFrags(t, ix, ixKey, 5)
	seqFrags(t, ix, other, 3)
	require.NoError(t, ix.DeleteFragments(ctx, ixKey))

	seq, _, err := ix.LastFragment(ctx, ixKey)
	require.NoError(t, err)
	require.Zero(t, seq)
	_, err = ix.GetFragment(ctx, ixKey, 1)
	require.ErrorIs(t, err, catalog.ErrFragmentNotFound)
	_, err = ix.GetHeader(ctx, ixKey, ixHdrID)
	require.ErrorIs(t, err, catalog.ErrFragmentNotFound)
	require.Empty(t, listAll(t, ix, ixKey, catalog.ServerTime, ixBase.Add(-time.Hour), ixBase.Add(time.Hour)))
	segs, err := ix.LiveSegments(ctx, ixKey)
	require.NoError(t, err)
	require.Empty(t, segs)
	keys, err := ix.FragmentStreams(ctx)
	require.NoError(t, err)
	require.Equal(t, []catalog.Key{other}, keys)

	require.Equal(t, []uint64{1, 2, 3}, listAll(t, ix, other, catalog.ServerTime, ixBase.Add(-time.Hour), ixBase.Add(time.Hour)), "the other incarnation is untouched")
	// The key can be used again from scratch.
	seqFrags(t, ix, ixKey, 2)
	seq, _, err = ix.LastFragment(ctx, ixKey)
	require.NoError(t, err)
	require.Equal(t, uint64(2), seq)
}

func testIndexStreams(t *testing.T, ix catalog.Index) {
	ctx := context.Background()
	want := map[catalog.Key]bool{}
	for _, k := range []catalog.Key{
		{Name: "a", CreatedMs: 1}, {Name: "a", CreatedMs: 2}, {Name: "b_c_1", CreatedMs: 1700000000000},
		{Name: "..", CreatedMs: 3}, {Name: "x-y.z", CreatedMs: 0}, {Name: fmt.Sprintf("%0256d", 7), CreatedMs: 4},
	} {
		put(t, ix, k, frag(k, 1, 0, 0))
		want[k] = true
	}
	keys, err := ix.FragmentStreams(ctx)
	require.NoError(t, err)
	got := map[catalog.Key]bool{}
	for _, k := range keys {
		got[k] = true
	}
	require.Equal(t, want, got)
	require.Len(t, keys, len(want))
}

func testIndexConcurrent(t *testing.T, ix catalog.Index) {
	ctx := context.Background()
	const streams, each = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, streams*each)
	for s := range streams {
		k := catalog.Key{Name: fmt.Sprintf("cam%02d", s), CreatedMs: int64(s)}
		wg.Go(func() {
			for i := 1; i <= each; i++ {
				off := time.Duration(i) * time.Second
				if err := ix.PutFragment(ctx, k, frag(k, uint64(i), off, off), locOf(uint64(i)), ixHdr); err != nil {
					errs <- err
				}
			}
		})
		// Readers alongside.
		wg.Go(func() {
			for range each {
				if _, _, err := ix.ListFragments(ctx, k, catalog.ServerTime, 0, 1<<62, nil, 1000); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for s := range streams {
		k := catalog.Key{Name: fmt.Sprintf("cam%02d", s), CreatedMs: int64(s)}
		fs, err := ix.FragmentsAfter(ctx, k, 0, 1000)
		require.NoError(t, err)
		require.Len(t, fs, each)
		seq, _, err := ix.LastFragment(ctx, k)
		require.NoError(t, err)
		require.Equal(t, uint64(each), seq)
	}
}
