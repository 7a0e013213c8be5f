package fsck_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/catalog/bolt"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/fragstore/disk"
	"github.com/kvsd/kvsd/internal/fsck"
	"github.com/kvsd/kvsd/internal/keys"
)

var (
	ctx  = context.Background()
	key  = fragstore.Key{Name: "cam", CreatedMs: 1700000000123}
	base = time.UnixMilli(1700000100000).UTC()
)

// dataDir is a data dir laid out as kvsd lays it out, filled through the fragment store.
type dataDir struct {
	t    *testing.T
	dir  string
	ring *keys.Ring
}

func newDataDir(t *testing.T) *dataDir {
	d := &dataDir{t: t, dir: t.TempDir()}
	kf, err := keys.LoadFile(filepath.Join(d.dir, keys.DefaultKeyFile), true)
	require.NoError(t, err)
	d.ring = keys.NewRing(kf, nil)
	return d
}

// open opens catalog, media and store; close closes them all.
func (d *dataDir) open() (*bolt.DB, *fragstore.Store, func()) {
	db, err := bolt.Open(filepath.Join(d.dir, "catalog.db"))
	require.NoError(d.t, err)
	m, err := disk.Open(disk.Config{Dir: filepath.Join(d.dir, "media"), Keys: d.ring, SegmentSpan: 10 * time.Second})
	require.NoError(d.t, err)
	s, err := fragstore.Open(fragstore.Config{Media: m, Index: db})
	require.NoError(d.t, err)
	return db, s, func() { require.NoError(d.t, s.Close()); require.NoError(d.t, db.Close()) }
}

func frag(seq uint64) *fragment.Fragment {
	p := base.Add(time.Duration(seq-1) * 2 * time.Second)
	return &fragment.Fragment{Seq: seq, Number: fragment.FormatNumber(key.CreatedMs, seq), Timecode: uint64(p.UnixMilli()),
		ProducerTime: p, ServerTime: p, Duration: 2 * time.Second, HeaderID: "h1"}
}

func media(seq uint64) []byte {
	r := rand.New(rand.NewPCG(seq, 7))
	b := make([]byte, 2000+r.IntN(5000))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// write appends fragments from..to (5 per 10-s segment).
func (d *dataDir) write(from, to uint64) {
	_, s, done := d.open()
	defer done()
	for seq := from; seq <= to; seq++ {
		require.NoError(d.t, s.Append(ctx, key, []byte("header"), frag(seq), media(seq)))
	}
}

// fsck runs a check (or repair) and returns its result and output.
func (d *dataDir) fsck(repair bool) (fsck.Result, string) {
	db, err := bolt.Open(filepath.Join(d.dir, "catalog.db"))
	require.NoError(d.t, err)
	defer db.Close()
	var out bytes.Buffer
	var last int64
	res, err := fsck.Run(ctx, fsck.Config{MediaDir: filepath.Join(d.dir, "media"), Index: db, Keys: d.ring, Repair: repair, Out: &out,
		Progress: func(done, total int64) {
			require.GreaterOrEqual(d.t, done, last)
			require.LessOrEqual(d.t, done, total)
			last = done
		}})
	require.NoError(d.t, err)
	return res, out.String()
}

// served returns the seqs the store lists, checking that each one's media reads back whole.
func (d *dataDir) served() []uint64 {
	_, s, done := d.open()
	defer done()
	frags, err := s.After(ctx, key, 0, 1000)
	require.NoError(d.t, err)
	var out []uint64
	for _, f := range frags {
		b, err := s.Media(ctx, key, f)
		require.NoError(d.t, err, "fragment %d", f.Seq)
		require.Equal(d.t, media(f.Seq), b)
		out = append(out, f.Seq)
	}
	return out
}

func seqs(from, to uint64, except ...uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		skip := false
		for _, e := range except {
			skip = skip || e == s
		}
		if !skip {
			out = append(out, s)
		}
	}
	return out
}

func segPath(d *dataDir, seg uint64) string {
	return filepath.Join(d.dir, "media", fmt.Sprintf("%d_%s", key.CreatedMs, key.Name), fmt.Sprintf("%020d.seg", seg))
}

func (d *dataDir) location(seq uint64) fragstore.Location {
	db, err := bolt.Open(filepath.Join(d.dir, "catalog.db"))
	require.NoError(d.t, err)
	defer db.Close()
	f, err := db.GetFragment(ctx, key, seq)
	require.NoError(d.t, err)
	return f.Location
}

func lines(out, prefix string) []string {
	var got []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			got = append(got, l)
		}
	}
	return got
}

func TestHealthy(t *testing.T) {
	d := newDataDir(t)
	d.write(1, 12)
	res, out := d.fsck(false)
	require.Zero(t, res.Problems, out)
	require.Equal(t, 12, res.Records)
	require.Equal(t, 3, res.Segments)
	require.Equal(t, 1, res.Streams)
}

// A flipped byte in one record's media: that fragment, and only it, is named; repair drops its
// entry and keeps the bytes; every other fragment is served.
func TestFlippedByte(t *testing.T) {
	d := newDataDir(t)
	d.write(1, 12)
	loc := d.location(7)
	path := segPath(d, loc.Segment)
	before, err := os.ReadFile(path)
	require.NoError(t, err)
	b := bytes.Clone(before)
	b[loc.Offset+100] ^= 0x10
	require.NoError(t, os.WriteFile(path, b, 0o600))

	res, out := d.fsck(false)
	require.Equal(t, 1, res.Problems, out)
	got := lines(out, "stream cam")
	require.Len(t, got, 1, out)
	require.True(t, strings.HasPrefix(got[0], "stream cam: fragment "+frag(7).Number+": media damaged: "), got[0])
	require.Contains(t, got[0], "data checksum mismatch")

	res, out = d.fsck(true)
	require.Equal(t, 1, res.Dropped, out)
	require.Contains(t, out, "repaired: stream cam: fragment "+frag(7).Number+": index entry dropped")
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, b, after, "repair never changes media")
	require.Equal(t, seqs(1, 12, 7), d.served())
	res, out = d.fsck(false)
	require.Zero(t, res.Problems, out)
	require.Contains(t, out, "note: stream cam: fragment "+frag(7).Number+": damaged record that no index entry uses")
}

// A segment cut short: the fragments whose records it lost are named and dropped; the records
// before the cut are whole and stay.
func TestTruncatedFile(t *testing.T) {
	d := newDataDir(t)
	d.write(1, 12)
	loc := d.location(9)
	require.NoError(t, os.Truncate(segPath(d, loc.Segment), loc.Offset+50))
	res, out := d.fsck(false)
	require.Equal(t, 2, res.Problems, out) // 9 and 10 shared that segment's tail
	for _, seq := range []uint64{9, 10} {
		require.Contains(t, out, "stream cam: fragment "+frag(seq).Number+": index entry without media: no whole record")
	}
	_, out = d.fsck(true)
	require.Contains(t, out, "index entry dropped")
	require.Equal(t, seqs(1, 12, 9, 10), d.served())
}

// A segment file gone: its fragments are named and dropped.
func TestMissingFile(t *testing.T) {
	d := newDataDir(t)
	d.write(1, 12)
	loc := d.location(1)
	require.NoError(t, os.Remove(segPath(d, loc.Segment)))
	res, out := d.fsck(false)
	require.Equal(t, 5, res.Problems, out)
	require.Contains(t, out, "stream cam: fragment "+frag(1).Number+fmt.Sprintf(": index entry without media: segment %d is missing", loc.Segment))
	res, _ = d.fsck(true)
	require.Equal(t, 5, res.Dropped)
	require.Equal(t, seqs(6, 12), d.served())
}

// An older copy of the catalog restored (a backup): the fragments written since are media
// without index entries. The store refuses to open on it (its crash recovery would cut them);
// repair re-indexes them and all are served again.
func TestRestoredOlderCatalog(t *testing.T) {
	d := newDataDir(t)
	d.write(1, 6)
	backup := filepath.Join(t.TempDir(), "catalog.db")
	copyFile(t, filepath.Join(d.dir, "catalog.db"), backup)
	d.write(7, 80)
	copyFile(t, backup, filepath.Join(d.dir, "catalog.db"))

	db, err := bolt.Open(filepath.Join(d.dir, "catalog.db"))
	require.NoError(t, err)
	m, err := disk.Open(disk.Config{Dir: filepath.Join(d.dir, "media"), Keys: d.ring})
	require.NoError(t, err)
	_, err = fragstore.Open(fragstore.Config{Media: m, Index: db})
	require.ErrorIs(t, err, fragstore.ErrCatalogBehind)
	require.ErrorContains(t, err, "kvsd fsck")
	require.NoError(t, m.Close())
	require.NoError(t, db.Close())

	res, out := d.fsck(false)
	require.Equal(t, 74, res.Problems, out)
	require.Contains(t, out, "stream cam: fragment "+frag(7).Number+": media without index entry")
	res, out = d.fsck(true)
	require.Equal(t, 74, res.Reindexed, out)
	require.Equal(t, seqs(1, 80), d.served(), "every fragment is served again")
	res, out = d.fsck(false)
	require.Zero(t, res.Problems, out)
	d.write(81, 81) // and the stream goes on after the last one
	require.Equal(t, seqs(1, 81), d.served())
}

// A crash leaves a few records written but never committed: recovery cuts them as before (the
// restored-catalog guard leaves crashes alone), and fsck names them until then.
func TestCrashLeftoversAreNotACatalogRestore(t *testing.T) {
	d := newDataDir(t)
	d.write(1, 6)
	backup := filepath.Join(t.TempDir(), "catalog.db")
	copyFile(t, filepath.Join(d.dir, "catalog.db"), backup)
	d.write(7, 9)
	copyFile(t, backup, filepath.Join(d.dir, "catalog.db"))
	res, _ := d.fsck(false)
	require.Equal(t, 3, res.Problems)
	require.Equal(t, seqs(1, 6), d.served(), "recovery opened the store and cut the 3 records")
	res, out := d.fsck(false)
	require.Zero(t, res.Problems, out)
}

// Without the key, encrypted records are checked by their checksums: damage is still found,
// and the data dir is not called damaged for want of a key.
func TestWrongKey(t *testing.T) {
	d := newDataDir(t)
	d.write(1, 3)
	other, err := keys.LoadFile(filepath.Join(t.TempDir(), "other.key"), true)
	require.NoError(t, err)
	d.ring = keys.NewRing(other, nil)
	res, out := d.fsck(false)
	require.Equal(t, 3, res.KeyProblems, out)
	require.Contains(t, out, "KMS_KEY_NOT_FOUND")
	res, _ = d.fsck(true)
	require.Zero(t, res.Dropped, "a key problem drops nothing")
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	require.NoError(t, err)
	defer src.Close()
	dst, err := os.Create(to)
	require.NoError(t, err)
	_, err = io.Copy(dst, src)
	require.NoError(t, err)
	require.NoError(t, dst.Close())
}
