package fragstore_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/fragstore/disk"
)

func streamDir(e *env, k fragstore.Key) string {
	return filepath.Join(e.dir, "media", strconv.FormatInt(k.CreatedMs, 10)+"_"+k.Name)
}

// segFiles lists k's segment files with their sizes.
func segFiles(e *env, k fragstore.Key) map[string]int64 {
	entries, err := os.ReadDir(streamDir(e, k))
	if os.IsNotExist(err) {
		return map[string]int64{}
	}
	require.NoError(e.t, err)
	out := map[string]int64{}
	for _, d := range entries {
		fi, err := d.Info()
		require.NoError(e.t, err)
		out[d.Name()] = fi.Size()
	}
	return out
}

func segFile(e *env, k fragstore.Key, n uint64) string {
	return filepath.Join(streamDir(e, k), fmt.Sprintf("%020d.seg", n))
}

func appendBytes(t *testing.T, path string, b []byte) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write(b)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func size(t *testing.T, path string) int64 {
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Size()
}

// crashed closes the Store's backends without the Store and reopens them bare, so a test can
// put them in the state a crash leaves.
func crashed(e *env) *env {
	e.close()
	e.openBackends()
	return e
}

// TestRecoverTornTail: garbage, or half a record, after the last indexed record is cut away.
func TestRecoverTornTail(t *testing.T) {
	for name, tail := range map[string]func(e *env) []byte{
		"garbage": func(*env) []byte { return []byte("\x00\x01 not a record at all") },
		"half a record": func(e *env) []byte {
			b, err := os.ReadFile(segFile(e, key, 1))
			require.NoError(t, err)
			return b[len(b)/2:] // the second half of the file: starts mid-record
		},
		"a record header alone": func(e *env) []byte {
			b, err := os.ReadFile(segFile(e, key, 1))
			require.NoError(t, err)
			hdr := 24 + len(key.Name) + 4
			return b[hdr : hdr+36]
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := openEnv(t, t.TempDir())
			e.append(key, span(1, 5)...)
			e.close()
			path := filepath.Join(e.dir, "media", "1700000000123_cam-1", fmt.Sprintf("%020d.seg", 1))
			good := size(t, path)
			appendBytes(t, path, tail(e))
			require.Greater(t, size(t, path), good)

			e = e.reopen()
			require.Equal(t, good, size(t, path), "the tail is cut")
			require.Contains(t, e.logs.String(), "cut unindexed bytes")
			e.check(key, span(1, 5))
			e.append(key, span(6, 8)...)
			e = e.reopen()
			e.check(key, span(1, 8))
		})
	}
}

// TestRecoverMediaWithoutIndex: a kill between the media write and the index commit. The
// record is in the segment, not in the index: it goes, and its sequence is used again.
func TestRecoverMediaWithoutIndex(t *testing.T) {
	e := openEnv(t, t.TempDir())
	e.append(key, span(1, 5)...)
	path := segFile(e, key, 1)
	good := size(t, path)

	// The Store's own Media, as Append would call it, and then no index commit.
	f := frag(key, 6)
	_, err := e.media.Append(ctx, key, fragstore.Record{Seq: 6, Time: f.ServerTime, Data: []byte("never acknowledged")})
	require.NoError(t, err)
	require.Greater(t, size(t, path), good)

	e = e.reopen()
	require.Equal(t, good, size(t, path))
	last, err := e.s.LastSeq(ctx, key)
	require.NoError(t, err)
	require.Equal(t, uint64(5), last)
	_, err = e.s.Fragment(ctx, key, 6)
	require.ErrorIs(t, err, fragstore.ErrNotFound)
	e.append(key, 6, 7)
	e.check(key, span(1, 7))
}

// TestRecoverUnindexedSegment: the unacknowledged record had started a new segment; the whole
// file goes.
func TestRecoverUnindexedSegment(t *testing.T) {
	e := openEnv(t, t.TempDir())
	e.append(key, span(1, 5)...)
	e = crashed(e)
	_, err := e.media.Append(ctx, key, fragstore.Record{Seq: 6, Time: base.Add(time.Hour), Data: []byte("x")})
	require.NoError(t, err)
	require.Len(t, segFiles(e, key), 2)

	e = e.reopen()
	require.Equal(t, []string{fmt.Sprintf("%020d.seg", 1)}, keys(segFiles(e, key)))
	require.Contains(t, e.logs.String(), "deleted segment without indexed fragments")
	require.Contains(t, e.logs.String(), "segment=6")
	e.check(key, span(1, 5))
	e.append(key, 6)
	e.check(key, span(1, 6))
}

func keys(m map[string]int64) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestRecoverExpiryInterrupted: the index dropped expired entries, the process died before it
// deleted their segments.
func TestRecoverExpiryInterrupted(t *testing.T) {
	e := openEnv(t, t.TempDir())
	e.append(key, span(1, 40)...) // segments 1, 16, 31
	e = crashed(e)
	n, freed, err := e.db.ExpireFragments(ctx, key, frag(key, 31).ServerTime.UnixMilli(), 1000)
	require.NoError(t, err)
	require.Equal(t, 30, n)
	require.Equal(t, []uint64{1, 16}, freed)
	require.Len(t, segFiles(e, key), 3)

	e = e.reopen()
	require.Equal(t, []string{fmt.Sprintf("%020d.seg", 31)}, keys(segFiles(e, key)))
	e.check(key, span(31, 40))
}

// TestRecoverDeletedStream: the stream's index went, its media stayed (crash in DeleteStream,
// or the index entry removed while kvsd was down); temp files of an interrupted segment
// creation go too.
func TestRecoverDeletedStream(t *testing.T) {
	e := openEnv(t, t.TempDir())
	gone := fragstore.Key{Name: "gone", CreatedMs: 1}
	e.append(key, 1, 2)
	e.append(gone, 1, 2)
	e = crashed(e)
	require.NoError(t, e.db.DeleteFragments(ctx, gone))
	tmp := segFile(e, key, 99) + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte("KSEG"), 0o600))

	e = e.reopen()
	_, err := os.Stat(streamDir(e, gone))
	require.True(t, os.IsNotExist(err), "media of a stream the index does not know is removed")
	_, err = os.Stat(tmp)
	require.True(t, os.IsNotExist(err), "temporary files are removed")
	require.Contains(t, e.logs.String(), "removed media of a stream without index entries")
	e.check(key, span(1, 2))
}

// TestRecoverCorruptLastRecord: a synced record the disk lost anyway. The store still opens;
// that fragment reads as ErrCorrupt, the others as stored.
func TestRecoverCorruptLastRecord(t *testing.T) {
	e := openEnv(t, t.TempDir())
	e.append(key, span(1, 3)...)
	e.close()
	path := filepath.Join(e.dir, "media", "1700000000123_cam-1", fmt.Sprintf("%020d.seg", 1))
	var last disk.ScannedRecord
	_, _, err := disk.ScanSegment(path, func(r disk.ScannedRecord) error { last = r; return nil })
	require.NoError(t, err)
	require.Equal(t, uint64(3), last.Seq)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	b[last.Loc.Offset+int64(len(last.Data))+10] ^= 0xff // inside the last record's meta
	require.NoError(t, os.WriteFile(path, b, 0o600))

	e = e.reopen()
	require.Contains(t, e.logs.String(), "last indexed fragment fails its checksum")
	require.Equal(t, int64(len(b)), size(t, path), "nothing cut")
	e.check(key, span(1, 3)) // the data is intact; only the meta was hit

	b[last.Loc.Offset+100] ^= 0xff // inside the last record's data
	e.close()
	require.NoError(t, os.WriteFile(path, b, 0o600))
	e = e.reopen()
	f, err := e.s.Fragment(ctx, key, 3)
	require.NoError(t, err)
	_, err = e.s.Media(ctx, key, f)
	require.ErrorIs(t, err, fragstore.ErrCorrupt)
	f, err = e.s.Fragment(ctx, key, 2)
	require.NoError(t, err)
	_, err = e.s.Media(ctx, key, f)
	require.NoError(t, err)
}

// TestRecoverKeepsMediaWithoutAnyIndex: a data dir opened with an empty (new, lost) catalog
// keeps its media: it is the only copy, and describes itself.
func TestRecoverKeepsMediaWithoutAnyIndex(t *testing.T) {
	e := openEnv(t, t.TempDir())
	e.append(key, 1, 2)
	e.close()
	require.NoError(t, os.Remove(filepath.Join(e.dir, "catalog.db")))
	e = e.reopen()
	require.Len(t, segFiles(e, key), 1)
}
