package disk_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/fragstore/disk"
	"github.com/kvsd/kvsd/internal/fragstore/mediatest"
	"github.com/kvsd/kvsd/internal/keys"
)

func TestMedia(t *testing.T) {
	for _, buffered := range []bool{false, true} {
		for _, encrypted := range []bool{true, false} {
			t.Run(fmt.Sprintf("buffered=%v/encrypted=%v", buffered, encrypted), func(t *testing.T) {
				mediatest.TestMedia(t, func(t *testing.T) mediatest.Backend {
					dir := t.TempDir()
					var ring disk.Keys
					if encrypted {
						ring = testRing(t, dir)
					}
					return func() (fragstore.Media, error) {
						return disk.Open(disk.Config{Dir: filepath.Join(dir, "media"), Buffered: buffered, Keys: ring})
					}
				})
			})
		}
	}
}

// testRing is a key ring over a key file in dir, as kvsd makes on first start.
func testRing(t testing.TB, dir string) *keys.Ring {
	t.Helper()
	f, err := keys.LoadFile(filepath.Join(dir, keys.DefaultKeyFile), true)
	require.NoError(t, err)
	return keys.NewRing(f, nil)
}

var (
	ctx  = context.Background()
	key  = fragstore.Key{Name: "cam", CreatedMs: 1700000000123}
	base = time.UnixMilli(1700000100000).UTC()
)

func open(t *testing.T, cfg disk.Config) *disk.Media {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	m, err := disk.Open(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func rec(seq uint64, size int, at time.Time) fragstore.Record {
	data := bytes.Repeat([]byte{byte(seq)}, size)
	return fragstore.Record{Seq: seq, Time: at, Meta: []byte(fmt.Sprintf(`{"seq":%d}`, seq)), Data: data}
}

func segPath(dir string, k fragstore.Key, seg uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%d_%s", k.CreatedMs, k.Name), fmt.Sprintf("%020d.seg", seg))
}

func TestSizeRoll(t *testing.T) {
	dir := t.TempDir()
	m := open(t, disk.Config{Dir: dir, SegmentSize: 1 << 20})
	var locs []fragstore.Location
	for i := uint64(1); i <= 10; i++ {
		loc, err := m.Append(ctx, key, rec(i, 300<<10, base))
		require.NoError(t, err)
		locs = append(locs, loc)
	}
	// 3 records fit in 1 MiB with their headers, the 4th does not.
	require.Equal(t, locs[0].Segment, locs[2].Segment)
	require.NotEqual(t, locs[2].Segment, locs[3].Segment)
	require.Equal(t, uint64(4), locs[3].Segment, "a new segment is numbered by its first record")
	segs, err := m.Segments(ctx, key)
	require.NoError(t, err)
	require.Len(t, segs, 4)
	for _, s := range segs {
		require.LessOrEqual(t, s.Size, int64(1<<20))
	}
	// A record larger than the limit gets a segment of its own.
	big, err := m.Append(ctx, key, rec(11, 2<<20, base))
	require.NoError(t, err)
	after, err := m.Append(ctx, key, rec(12, 10, base))
	require.NoError(t, err)
	require.NotEqual(t, big.Segment, after.Segment)
}

func TestSpanConfig(t *testing.T) {
	m := open(t, disk.Config{SegmentSpan: time.Second})
	a, err := m.Append(ctx, key, rec(1, 10, base))
	require.NoError(t, err)
	b, err := m.Append(ctx, key, rec(2, 10, base.Add(999*time.Millisecond)))
	require.NoError(t, err)
	c, err := m.Append(ctx, key, rec(3, 10, base.Add(time.Second)))
	require.NoError(t, err)
	require.Equal(t, a.Segment, b.Segment)
	require.NotEqual(t, b.Segment, c.Segment)
}

// TestScanFindsTornTail: a segment describes itself; a scan returns every record and stops at
// half a record.
func TestScanFindsTornTail(t *testing.T) {
	dir := t.TempDir()
	m := open(t, disk.Config{Dir: dir})
	var locs []fragstore.Location
	for i := uint64(1); i <= 3; i++ {
		loc, err := m.Append(ctx, key, rec(i, int(i)*1000, base))
		require.NoError(t, err)
		locs = append(locs, loc)
	}
	path := segPath(dir, key, 1)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	good := fi.Size()

	var seen []uint64
	info, end, err := disk.ScanSegment(path, func(r disk.ScannedRecord) error {
		seen = append(seen, r.Seq)
		require.Equal(t, locs[r.Seq-1], r.Loc)
		require.Equal(t, rec(r.Seq, int(r.Seq)*1000, base).Data, r.Data)
		require.Equal(t, fmt.Sprintf(`{"seq":%d}`, r.Seq), string(r.Meta))
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, []uint64{1, 2, 3}, seen)
	require.Equal(t, good, end)
	require.Equal(t, key, info.Key)
	require.Equal(t, uint64(1), info.Number)

	// Half of a fourth record, as a crash mid-write leaves it.
	whole := readWholeRecord(t, path, locs[2])
	appendTo(t, path, whole[:len(whole)/2])
	seen = nil
	_, end, err = disk.ScanSegment(path, func(r disk.ScannedRecord) error { seen = append(seen, r.Seq); return nil })
	require.ErrorIs(t, err, fragstore.ErrCorrupt)
	require.Equal(t, []uint64{1, 2, 3}, seen)
	require.Equal(t, good, end)
}

// readWholeRecord returns the bytes of the record at loc, header to meta.
func readWholeRecord(t *testing.T, path string, loc fragstore.Location) []byte {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b[loc.Offset-36:]
}

func appendTo(t *testing.T, path string, b []byte) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write(b)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func TestCorruptionDetected(t *testing.T) {
	dir := t.TempDir()
	m := open(t, disk.Config{Dir: dir})
	loc, err := m.Append(ctx, key, rec(1, 5000, base))
	require.NoError(t, err)
	path := segPath(dir, key, 1)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	b[loc.Offset+100] ^= 1 // one bit of the data
	require.NoError(t, os.WriteFile(path, append(b, "tail"...), 0o600))

	_, err = m.Read(ctx, key, loc)
	require.ErrorIs(t, err, fragstore.ErrCorrupt)
	dst, err := m.ReadAppend(ctx, key, loc, []byte("kept"))
	require.ErrorIs(t, err, fragstore.ErrCorrupt)
	require.Equal(t, "kept", string(dst))
	_, err = m.TruncateAfter(ctx, key, loc)
	require.ErrorIs(t, err, fragstore.ErrCorrupt)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, int64(len(b)+4), fi.Size(), "nothing is cut after a record that fails its checksum")
}

func TestOpenRemovesTempFiles(t *testing.T) {
	dir := t.TempDir()
	m := open(t, disk.Config{Dir: dir})
	_, err := m.Append(ctx, key, rec(1, 10, base))
	require.NoError(t, err)
	require.NoError(t, m.Close())
	tmp := segPath(dir, key, 2) + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte("KSEG half"), 0o600))
	foreign := filepath.Join(dir, "lost+found")
	require.NoError(t, os.Mkdir(foreign, 0o700))

	m = open(t, disk.Config{Dir: dir})
	_, err = os.Stat(tmp)
	require.ErrorIs(t, err, fs.ErrNotExist)
	_, err = os.Stat(segPath(dir, key, 1))
	require.NoError(t, err)

	removed, err := m.Retain(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"1700000000123_cam"}, removed)
	_, err = os.Stat(foreign)
	require.NoError(t, err, "directories not named like streams are not kvsd's")
}

func TestLongNamesFitAPathElement(t *testing.T) {
	dir := t.TempDir()
	m := open(t, disk.Config{Dir: dir})
	long := strings.Repeat("n", 256)
	_, err := m.Append(ctx, fragstore.Key{Name: long, CreatedMs: 1700000000123}, rec(1, 10, base))
	require.NoError(t, err)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.LessOrEqual(t, len(entries[0].Name()), 200)
	require.True(t, strings.HasPrefix(entries[0].Name(), "1700000000123_nnnn"))
	// The segment header keeps the whole name.
	info, _, err := disk.ScanSegment(filepath.Join(dir, entries[0].Name(), fmt.Sprintf("%020d.seg", 1)), func(disk.ScannedRecord) error { return nil })
	require.NoError(t, err)
	require.Equal(t, long, info.Key.Name)
}

func TestBadNames(t *testing.T) {
	m := open(t, disk.Config{})
	for _, name := range []string{"", "a/b", "a\x00b"} {
		_, err := m.Append(ctx, fragstore.Key{Name: name, CreatedMs: 1}, rec(1, 10, base))
		require.Error(t, err, "%q", name)
	}
}

// TestUsageFollowsTheFiles: Usage, which the disk budget reads every second, is the sum of the
// segment files' sizes after appends, deletions, truncation and a reopen.
func TestUsageFollowsTheFiles(t *testing.T) {
	dir := t.TempDir()
	onDisk := func() int64 {
		var n int64
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, ".seg") {
				fi, _ := d.Info()
				n += fi.Size()
			}
			return nil
		})
		return n
	}
	m := open(t, disk.Config{Dir: dir, SegmentSpan: time.Second})
	other := fragstore.Key{Name: "other", CreatedMs: 1}
	var locs []fragstore.Location
	for i := uint64(1); i <= 6; i++ {
		loc, err := m.Append(ctx, key, rec(i, 10000, base.Add(time.Duration(i)*400*time.Millisecond)))
		require.NoError(t, err)
		locs = append(locs, loc)
		_, err = m.Append(ctx, other, rec(i, 5000, base))
		require.NoError(t, err)
	}
	require.Positive(t, m.Usage())
	require.Equal(t, onDisk(), m.Usage())
	require.NoError(t, m.DeleteSegment(ctx, key, locs[0].Segment))
	require.NoError(t, m.DeleteSegment(ctx, key, locs[0].Segment), "gone already: no change")
	require.Equal(t, onDisk(), m.Usage())
	_, err := m.TruncateAfter(ctx, key, locs[3])
	require.NoError(t, err)
	require.Equal(t, onDisk(), m.Usage())
	require.NoError(t, m.Close())

	m = open(t, disk.Config{Dir: dir})
	require.Equal(t, onDisk(), m.Usage(), "counted again at open")
	require.NoError(t, m.DeleteStream(ctx, other))
	require.Equal(t, onDisk(), m.Usage())
	_, err = m.Retain(ctx, nil)
	require.NoError(t, err)
	require.Zero(t, m.Usage())
}
