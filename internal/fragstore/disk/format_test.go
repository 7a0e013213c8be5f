package disk

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/keys"
)

// goldenSegment is a version-2 segment holding one record (seq 1, data "abc", meta "{}") of
// stream "cam" created at 1700000000123, byte for byte as docs/format/media.md describes it:
// header and record each zero-filled to a 4096-byte boundary. The expected bytes (CRCs
// included) were computed by an independent implementation; if this test fails, the media
// format changed.
var goldenSegment = "" +
	"4b534547" + "02" + "00" + "0003" + "0000018bcfe5687b" + "0000000000000001" + "63616d" + "9aa21aeb" + // segment header
	strings.Repeat("00", 4096-31) +
	"4b524543" + "02" + "000000" + "0000000000000001" + "00000003" + "00000002" + // record header …
	"364b3fb7" + "297bd0aa" + "3845d805" + // … data CRC, meta CRC, header CRC
	"616263" + "7b7d" + // data, meta
	strings.Repeat("00", 4096-41)

// goldenSegmentV1 is the same segment in version 1, written by kvsd before records were
// aligned: no fill, records back to back. Such segments are still read.
const goldenSegmentV1 = "" +
	"4b534547" + "01" + "00" + "0003" + "0000018bcfe5687b" + "0000000000000001" + "63616d" + "04d60aa3" +
	"4b524543" + "01" + "000000" + "0000000000000001" + "00000003" + "00000002" +
	"364b3fb7" + "297bd0aa" + "db9733a8" +
	"616263" + "7b7d"

var goldenKey = fragstore.Key{Name: "cam", CreatedMs: 1700000000123}

func TestFormatGolden(t *testing.T) {
	for _, buffered := range []bool{false, true} {
		dir := t.TempDir()
		m, err := Open(Config{Dir: dir, Buffered: buffered})
		require.NoError(t, err)
		defer m.Close()
		loc, err := m.Append(context.Background(), goldenKey, fragstore.Record{Seq: 1, Time: time.Now(), Meta: []byte("{}"), Data: []byte("abc")})
		require.NoError(t, err)
		require.Equal(t, fragstore.Location{Segment: 1, Offset: 4096 + 36, Length: 3}, loc)
		b, err := os.ReadFile(filepath.Join(dir, "1700000000123_cam", "00000000000000000001.seg"))
		require.NoError(t, err)
		requireHexEqual(t, goldenSegment, hex.EncodeToString(b), fmt.Sprintf("buffered=%v", buffered))
	}
}

// TestFormatV1Read: a version-1 segment reads, scans and truncates as it always did.
func TestFormatV1Read(t *testing.T) {
	dir := t.TempDir()
	raw, err := hex.DecodeString(goldenSegmentV1 + goldenSegmentV1[2*31:]) // two copies of the record
	require.NoError(t, err)
	path := filepath.Join(dir, "1700000000123_cam", "00000000000000000001.seg")
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
	require.NoError(t, os.WriteFile(path, raw, 0o600))

	var locs []fragstore.Location
	info, end, err := ScanSegment(path, func(r ScannedRecord) error {
		require.Equal(t, "abc", string(r.Data))
		require.Equal(t, "{}", string(r.Meta))
		locs = append(locs, r.Loc)
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, SegmentInfo{Key: goldenKey, Number: 1, Version: 1, Size: 31}, info)
	require.Equal(t, int64(len(raw)), end)
	require.Equal(t, []fragstore.Location{{Segment: 1, Offset: 67, Length: 3}, {Segment: 1, Offset: 108, Length: 3}}, locs)

	m, err := Open(Config{Dir: dir})
	require.NoError(t, err)
	defer m.Close()
	data, err := m.Read(context.Background(), goldenKey, locs[1])
	require.NoError(t, err)
	require.Equal(t, "abc", string(data))
	cut, err := m.TruncateAfter(context.Background(), goldenKey, locs[0])
	require.NoError(t, err)
	require.Equal(t, int64(41), cut)
}

// requireHexEqual compares hex dumps, reporting the first difference rather than 16 KB of zeros.
func requireHexEqual(t *testing.T, want, got, what string) {
	t.Helper()
	if want == got {
		return
	}
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	from := max(0, i-16)
	t.Fatalf("%v: %d hex digits, want %d; first difference at byte %d: got …%.48s…, want …%.48s…",
		what, len(got), len(want), i/2, got[from:], want[from:])
}

// TestFormatV3: with Keys, a segment is version 3: its header names the data key, wrapped by
// the key file's current key; each record's data is nonce, ciphertext and tag, the media
// nowhere in the file, and its data CRC covers those sealed bytes.
func TestFormatV3(t *testing.T) {
	dir := t.TempDir()
	kf, err := keys.LoadFile(filepath.Join(dir, "kvsd.key"), true)
	require.NoError(t, err)
	m, err := Open(Config{Dir: filepath.Join(dir, "media"), Keys: keys.NewRing(kf, nil)})
	require.NoError(t, err)
	defer m.Close()
	data := []byte(strings.Repeat("the producer's frames ", 10))
	loc, err := m.Append(context.Background(), goldenKey, fragstore.Record{Seq: 1, Time: time.Now(), Meta: []byte("{}"), Data: data})
	require.NoError(t, err)
	require.Equal(t, fragstore.Location{Segment: 1, Offset: 4096 + 36, Length: int64(len(data))}, loc)

	path := filepath.Join(dir, "media", "1700000000123_cam", "00000000000000000001.seg")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Len(t, b, 8192)
	require.Equal(t, "KSEG\x03\x00\x00\x03", string(b[:8]))
	require.Equal(t, "cam", string(b[24:27]))
	require.Equal(t, byte(keys.SourceFile), b[27])
	require.Equal(t, []byte{0, 16}, b[28:30])
	require.Equal(t, kf.Current(), string(b[30:46]))
	rec := b[4096:]
	require.Equal(t, "KREC\x03\x00\x00\x00", string(rec[:8]))
	require.Equal(t, uint32(len(data)), binary.BigEndian.Uint32(rec[16:]), "data length is the media's")
	sealed := rec[36 : 36+len(data)+28]
	require.Equal(t, crc(sealed), binary.BigEndian.Uint32(rec[24:]), "the data CRC covers nonce, ciphertext and tag")
	require.Equal(t, "{}", string(rec[36+len(data)+28:][:2]), "meta in clear")
	require.NotContains(t, string(b), "producer")

	info, end, err := ScanSegment(path, func(r ScannedRecord) error {
		require.True(t, r.Sealed)
		require.Equal(t, sealed, r.Data)
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, int64(len(b)), end)
	require.Equal(t, 3, info.Version)
	require.Equal(t, kf.Current(), info.DataKey.KeyID)
	got, err := m.Read(context.Background(), goldenKey, loc)
	require.NoError(t, err)
	require.Equal(t, data, got)
}

// TestFormatV2StaysReadable: a version 2 segment written before encryption is read by a Media
// with keys, never appended to nor rewritten: the next record starts a version 3 segment.
func TestFormatV2StaysReadable(t *testing.T) {
	dir := t.TempDir()
	media := filepath.Join(dir, "media")
	m, err := Open(Config{Dir: media})
	require.NoError(t, err)
	loc, err := m.Append(context.Background(), goldenKey, fragstore.Record{Seq: 1, Time: time.Now(), Meta: []byte("{}"), Data: []byte("abc")})
	require.NoError(t, err)
	require.NoError(t, m.Close())
	v2 := filepath.Join(media, "1700000000123_cam", "00000000000000000001.seg")
	before, err := os.ReadFile(v2)
	require.NoError(t, err)

	kf, err := keys.LoadFile(filepath.Join(dir, "kvsd.key"), true)
	require.NoError(t, err)
	m, err = Open(Config{Dir: media, Keys: keys.NewRing(kf, nil)})
	require.NoError(t, err)
	defer m.Close()
	got, err := m.Read(context.Background(), goldenKey, loc)
	require.NoError(t, err)
	require.Equal(t, "abc", string(got))
	loc2, err := m.Append(context.Background(), goldenKey, fragstore.Record{Seq: 2, Time: time.Now(), Meta: []byte("{}"), Data: []byte("def")})
	require.NoError(t, err)
	require.Equal(t, uint64(2), loc2.Segment)
	after, err := os.ReadFile(v2)
	require.NoError(t, err)
	require.Equal(t, before, after)
	f, verbatim, err := m.OpenSegment(context.Background(), goldenKey, 1)
	require.NoError(t, err)
	require.True(t, verbatim)
	require.NoError(t, f.Close())
	f, verbatim, err = m.OpenSegment(context.Background(), goldenKey, 2)
	require.NoError(t, err)
	require.False(t, verbatim)
	got, err = m.ReadSection(context.Background(), f, loc2, nil)
	require.NoError(t, err)
	require.Equal(t, "def", string(got))
	require.NoError(t, f.Close())
}

// TestEncryptedDamageAndKeys: a flipped byte anywhere in the sealed data is ErrCorrupt; a
// missing or wrong key is a key error (KMS_KEY_NOT_FOUND), not corruption, and costs nothing:
// the right key reads the record again, and crash recovery (TruncateAfter) needs no key.
func TestEncryptedDamageAndKeys(t *testing.T) {
	dir := t.TempDir()
	media := filepath.Join(dir, "media")
	kf, err := keys.LoadFile(filepath.Join(dir, "kvsd.key"), true)
	require.NoError(t, err)
	m, err := Open(Config{Dir: media, Keys: keys.NewRing(kf, nil)})
	require.NoError(t, err)
	var locs []fragstore.Location
	for seq := uint64(1); seq <= 2; seq++ {
		loc, err := m.Append(context.Background(), goldenKey, fragstore.Record{Seq: seq, Time: time.Now(), Meta: []byte("{}"), Data: []byte(strings.Repeat("x", 1000))})
		require.NoError(t, err)
		locs = append(locs, loc)
	}
	require.NoError(t, m.Close())

	other, err := keys.LoadFile(filepath.Join(dir, "other.key"), true)
	require.NoError(t, err)
	for _, ks := range []Keys{keys.NewRing(other, nil), nil} {
		m, err = Open(Config{Dir: media, Keys: ks})
		require.NoError(t, err)
		_, err = m.Read(context.Background(), goldenKey, locs[0])
		require.Error(t, err)
		require.NotErrorIs(t, err, fragstore.ErrCorrupt)
		if ks != nil {
			code, ok := keys.CodeOf(err)
			require.True(t, ok, "%v", err)
			require.Equal(t, keys.NotFound, code)
		}
		cut, err := m.TruncateAfter(context.Background(), goldenKey, locs[1])
		require.NoError(t, err, "recovery checks checksums, not keys")
		require.Zero(t, cut)
		require.NoError(t, m.Close())
	}

	path := filepath.Join(media, "1700000000123_cam", "00000000000000000001.seg")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	for _, at := range []int64{locs[0].Offset, locs[0].Offset + 500, locs[0].Offset + locs[0].Length + 27} { // nonce, ciphertext, tag
		bad := bytes.Clone(b)
		bad[at] ^= 1
		require.NoError(t, os.WriteFile(path, bad, 0o600))
		m, err = Open(Config{Dir: media, Keys: keys.NewRing(kf, nil)})
		require.NoError(t, err)
		_, err = m.Read(context.Background(), goldenKey, locs[0])
		require.ErrorIs(t, err, fragstore.ErrCorrupt, "flip at %d", at)
		_, err = m.ReadAppend(context.Background(), goldenKey, locs[0], nil)
		require.ErrorIs(t, err, fragstore.ErrCorrupt, "flip at %d", at)
		got, err := m.Read(context.Background(), goldenKey, locs[1])
		require.NoError(t, err, "the next record is whole")
		require.Len(t, got, 1000)
		require.NoError(t, m.Close())
	}
}
