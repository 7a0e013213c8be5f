package bolt

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/catalog"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/mkv"
)

func TestIndexSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "catalog.db")
	db, err := Open(path)
	require.NoError(t, err)
	k := catalog.Key{Name: "cam", CreatedMs: 1700000000123}
	f := goldenFragment()
	loc := catalog.Location{Segment: 1, Offset: 64, Length: 500000}
	require.NoError(t, db.PutFragment(ctx, k, f, loc, []byte("hdr")))
	require.NoError(t, db.Close())

	db, err = Open(path)
	require.NoError(t, err)
	defer db.Close()
	got, err := db.GetFragment(ctx, k, f.Seq)
	require.NoError(t, err)
	require.Equal(t, loc, got.Location)
	f.Location = loc // the index sets it on what it returns
	require.Equal(t, f, got)
	keys, err := db.FragmentStreams(ctx)
	require.NoError(t, err)
	require.Equal(t, []catalog.Key{k}, keys)
}

func goldenFragment() *fragment.Fragment {
	return &fragment.Fragment{
		Seq: 7, Number: fragment.FormatNumber(1700000000123, 7), Timecode: 1700000000013,
		ProducerTime: time.UnixMilli(1700000000013).UTC(), ServerTime: time.UnixMilli(1700000000626).UTC(),
		Duration: 2000 * time.Millisecond, Size: 500000, HeaderID: "hd",
		Tags: []mkv.SimpleTag{{Name: "AWS_KINESISVIDEO_NOTIFICATION", Value: "x"}},
	}
}

// goldenEntry is a version-1 entry as docs/format/catalog.md describes it. If this test fails,
// the index format changed.
const goldenEntry = "01" + // version
	"01" + // segment 1
	"40" + // offset 64
	"a0c21e" + // length 500000
	"8dd095ffbc31" + // timecode 1700000000013
	"9aa0abfef962" + // producer ms, zigzag varint
	"e4a9abfef962" + // server ms
	"a01f" + // duration ms 2000, zigzag
	"02" + "6864" + // header id "hd"
	"01" + // one tag
	"1d" + "4157535f4b494e45534953564944454f5f4e4f54494649434154494f4e" + // name (29 bytes)
	"01" + "78" // value "x"

func TestEntryFormat(t *testing.T) {
	k := catalog.Key{Name: "cam", CreatedMs: 1700000000123}
	loc := catalog.Location{Segment: 1, Offset: 64, Length: 500000}
	got := encodeEntry(goldenFragment(), loc)
	require.Equal(t, goldenEntry, hex.EncodeToString(got))
	raw, _ := hex.DecodeString(goldenEntry)
	f, l, err := decodeEntry(k, 7, raw)
	require.NoError(t, err)
	want := goldenFragment()
	want.Location = loc // decoded entries carry their Location
	require.Equal(t, want, f)
	require.Equal(t, loc, l)

	for _, bad := range [][]byte{nil, {2}, raw[:len(raw)-1], append(append([]byte(nil), raw...), 0)} {
		_, _, err := decodeEntry(k, 7, bad)
		require.Error(t, err, "%x", bad)
	}
}

func TestKeyNames(t *testing.T) {
	for _, k := range []catalog.Key{{Name: "a_b", CreatedMs: 12}, {Name: "_", CreatedMs: 0}, {Name: "x", CreatedMs: -5}} {
		got, ok := parseKeyName(keyName(k))
		require.True(t, ok)
		require.Equal(t, k, got)
	}
	require.Equal(t, "1700000000123_cam", string(keyName(catalog.Key{Name: "cam", CreatedMs: 1700000000123})))
	for _, bad := range []string{"", "cam", "x_cam", "12_"} {
		_, ok := parseKeyName([]byte(bad))
		require.False(t, ok, bad)
	}
}

// BenchmarkEntryDecode and BenchmarkEntryDecodeJSON back the choice of a binary entry: List
// decodes one per fragment listed (1800 for an hour).
func BenchmarkEntryDecode(b *testing.B) {
	k := catalog.Key{Name: "cam", CreatedMs: 1700000000123}
	v := encodeEntry(goldenFragment(), catalog.Location{Segment: 1, Offset: 64, Length: 500000})
	b.ReportMetric(float64(len(v)), "bytes/entry")
	for b.Loop() {
		if _, _, err := decodeEntry(k, 7, v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEntryDecodeJSON(b *testing.B) {
	type jsonEntry struct {
		Segment    uint64          `json:"seg"`
		Offset     int64           `json:"off"`
		Length     int64           `json:"len"`
		Timecode   uint64          `json:"tc"`
		ProducerMs int64           `json:"pms"`
		ServerMs   int64           `json:"sms"`
		DurationMs int64           `json:"dur"`
		HeaderID   string          `json:"hdr"`
		Tags       []mkv.SimpleTag `json:"tags,omitempty"`
	}
	f := goldenFragment()
	v, _ := json.Marshal(jsonEntry{1, 64, 500000, f.Timecode, f.ProducerTime.UnixMilli(), f.ServerTime.UnixMilli(), 2000, f.HeaderID, f.Tags})
	b.ReportMetric(float64(len(v)), "bytes/entry")
	for b.Loop() {
		var e jsonEntry
		if err := json.Unmarshal(v, &e); err != nil {
			b.Fatal(err)
		}
		_ = &fragment.Fragment{Seq: 7, Number: fragment.FormatNumber(1700000000123, 7), Timecode: e.Timecode,
			ProducerTime: time.UnixMilli(e.ProducerMs).UTC(), ServerTime: time.UnixMilli(e.ServerMs).UTC(),
			Duration: time.Duration(e.DurationMs) * time.Millisecond, Size: e.Length, HeaderID: e.HeaderID, Tags: e.Tags}
	}
}

// DropFragments removes chosen entries whatever their times, releases what only they used
// (segment, header), keeps LastFragment, and skips Seqs it does not hold.
func TestDropFragments(t *testing.T) {
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), "catalog.db"))
	require.NoError(t, err)
	defer db.Close()
	k := catalog.Key{Name: "cam", CreatedMs: 1700000000123}
	for seq := uint64(1); seq <= 3; seq++ {
		f := goldenFragment()
		f.Seq, f.Number, f.HeaderID = seq, fragment.FormatNumber(k.CreatedMs, seq), "h"
		f.ProducerTime = f.ProducerTime.Add(time.Duration(seq) * time.Second)
		f.ServerTime = f.ServerTime.Add(time.Duration(seq) * time.Second)
		seg := uint64(1)
		if seq == 3 {
			seg = 2
		}
		require.NoError(t, db.PutFragment(ctx, k, f, catalog.Location{Segment: seg, Offset: int64(seq) * 4096, Length: 10}, []byte("hdr")))
	}
	n, err := db.DropFragments(ctx, k, []uint64{3, 2, 99})
	require.NoError(t, err)
	require.Equal(t, 2, n)
	_, err = db.GetFragment(ctx, k, 3)
	require.ErrorIs(t, err, catalog.ErrFragmentNotFound)
	_, err = db.GetFragment(ctx, k, 1)
	require.NoError(t, err)
	live, err := db.LiveSegments(ctx, k)
	require.NoError(t, err)
	require.Equal(t, []uint64{1}, live, "segment 2 held only fragment 3")
	last, _, err := db.LastFragment(ctx, k)
	require.NoError(t, err)
	require.Equal(t, uint64(3), last, "sequences never go back")
	frags, err := db.FragmentsAfter(ctx, k, 0, 10)
	require.NoError(t, err)
	require.Len(t, frags, 1)
	n, err = db.DropFragments(ctx, k, []uint64{1})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	_, err = db.GetHeader(ctx, k, "h")
	require.ErrorIs(t, err, catalog.ErrFragmentNotFound, "the header no entry names is released")
}
