package disk

import (
	"bytes"
	"context"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"slices"

	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/keys"
)

// On-disk format, version 3 (docs/format/media.md draws it field by field). Integers are big
// endian; checksums are CRC-32C (Castagnoli).
//
// A segment file is a header naming its stream and its data key, then records, each starting on
// a multiple of blockSize (zero fill in between):
//
//	segment header  "KSEG" | version u8 | 0 u8 | name length u16 | createdMs i64 | number u64 |
//	                name | [v3: key source u8 | key id length u16 | key id | wrapped length u16 |
//	                wrapped data key] | CRC u32
//	record header   "KREC" | version u8 | 0 0 0 | seq u64 | data length u32 | meta length u32 |
//	                data CRC u32 | meta CRC u32 | header CRC u32
//	record body     data | meta (fragstore's JSON self-description)
//
// The data sits right after its fixed-size header, so a Location (offset and length of the
// data) is enough to read header and data in one pread and check both, and meta follows, so a
// scan still finds the next record from the lengths alone. The header's own CRC lets a scan
// trust the lengths before it follows them: a torn tail fails a CRC instead of sending the scan
// off into garbage.
//
// Version 3 encrypts: a record's data is the fragment media sealed with AES-256-GCM under the
// segment's data key (nonce u8[12] | ciphertext | tag u8[16], data length + 28 bytes; the data
// length stays the media's), authenticated together with the record's seq and the segment's
// stream. The data CRC covers those sealed bytes, so checksums, scans and torn-tail recovery
// work without the key, and a record that fails them is damage, never a key problem. The meta
// (what the index needs, and the MKV header) stays in clear. Version 2 only added the
// alignment to version 1, so that records can be written with O_DIRECT (see append.go);
// segments of versions 1 and 2 are still read, never written.
const (
	versionClear     = 2 // records in clear: written only without Config.Keys (benchmarks, tests)
	versionEncrypted = 3
	blockSize        = 4096 // alignment of records from version 2; a multiple of common sector sizes

	segHeaderFixed = 24 // bytes before the name
	recHeaderLen   = 36

	nonceLen     = 12
	tagLen       = 16
	sealOverhead = nonceLen + tagLen // a version 3 record's data beyond the media

	maxNameLen = math.MaxUint16
	maxDataLen = math.MaxUint32 - sealOverhead
	maxMetaLen = 16 << 20 // far above any real meta; bounds what a scan would allocate
)

var (
	segMagic = [4]byte{'K', 'S', 'E', 'G'}
	recMagic = [4]byte{'K', 'R', 'E', 'C'}
	castagno = crc32.MakeTable(crc32.Castagnoli)
)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagno) }

// alignUp rounds n up to a multiple of blockSize.
func alignUp(n int64) int64 { return (n + blockSize - 1) &^ (blockSize - 1) }

// knownVersion reports whether a reader understands version v.
func knownVersion(v byte) bool { return v >= 1 && v <= versionEncrypted }

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", fragstore.ErrCorrupt, fmt.Sprintf(format, args...))
}

// segmentHeader encodes the header of segment number n of k: version 3 with the wrapped data
// key of its records, or version 2 (records in clear) when wk is nil.
func segmentHeader(k fragstore.Key, n uint64, wk *keys.Wrapped) []byte {
	b := make([]byte, segHeaderFixed, segHeaderFixed+len(k.Name)+4)
	copy(b, segMagic[:])
	b[4] = versionClear
	binary.BigEndian.PutUint16(b[6:], uint16(len(k.Name)))
	binary.BigEndian.PutUint64(b[8:], uint64(k.CreatedMs))
	binary.BigEndian.PutUint64(b[16:], n)
	b = append(b, k.Name...)
	if wk != nil {
		b[4] = versionEncrypted
		b = append(b, byte(wk.Source))
		b = binary.BigEndian.AppendUint16(b, uint16(len(wk.KeyID)))
		b = append(b, wk.KeyID...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(wk.Blob)))
		b = append(b, wk.Blob...)
	}
	return binary.BigEndian.AppendUint32(b, crc(b))
}

// SegmentInfo is what a segment header says.
type SegmentInfo struct {
	Key     fragstore.Key
	Number  uint64
	Version int   // format version: 3 (encrypted), 2 (in clear), 1 (in clear, not aligned)
	Size    int64 // header bytes, fill included; records start here
	// DataKey is the wrapped data key of the records (version 3); nil before.
	DataKey *keys.Wrapped
}

// recordEnd is where the record after one ending at end starts.
func (i SegmentInfo) recordEnd(end int64) int64 {
	if i.Version == 1 {
		return end
	}
	return alignUp(end)
}

// readSegmentHeader decodes and checks the header at the start of r.
func readSegmentHeader(r io.ReaderAt) (SegmentInfo, error) {
	var fixed [segHeaderFixed]byte
	if _, err := r.ReadAt(fixed[:], 0); err != nil {
		return SegmentInfo{}, corrupt("segment header: %v", err)
	}
	if [4]byte(fixed[:4]) != segMagic || !knownVersion(fixed[4]) {
		return SegmentInfo{}, corrupt("not a version 1 to %d segment (magic %q, version %d)", versionEncrypted, fixed[:4], fixed[4])
	}
	n := int(binary.BigEndian.Uint16(fixed[6:]))
	size := segHeaderFixed + n + 4
	if fixed[4] == versionEncrypted {
		size += 1 + 2 + keys.MaxKeyIDLen + 2 + keys.MaxWrappedLen // at most; the fields say how much
	}
	b := make([]byte, size)
	got, err := r.ReadAt(b, 0)
	if err != nil && !(errors.Is(err, io.EOF) && fixed[4] == versionEncrypted) {
		return SegmentInfo{}, corrupt("segment header: %v", err)
	}
	b = b[:got]
	info := SegmentInfo{
		Key:     fragstore.Key{Name: string(b[segHeaderFixed : segHeaderFixed+n]), CreatedMs: int64(binary.BigEndian.Uint64(fixed[8:]))},
		Number:  binary.BigEndian.Uint64(fixed[16:]),
		Version: int(fixed[4]),
	}
	end := segHeaderFixed + n
	if info.Version == versionEncrypted {
		if end > len(b) {
			return SegmentInfo{}, corrupt("segment header cut short")
		}
		wk, n, ok := keys.DecodeWrapped(b[end:])
		if !ok {
			return SegmentInfo{}, corrupt("segment header cut short")
		}
		info.DataKey, end = &wk, end+n
	}
	if end+4 > len(b) {
		return SegmentInfo{}, corrupt("segment header cut short")
	}
	if crc(b[:end]) != binary.BigEndian.Uint32(b[end:]) {
		return SegmentInfo{}, corrupt("segment header checksum mismatch")
	}
	info.Size = info.recordEnd(int64(end + 4))
	return info, nil
}

// recHeader is a decoded record header.
type recHeader struct {
	version          byte
	seq              uint64
	dataLen, metaLen int64 // dataLen: bytes of media; stored() bytes follow the header
	dataCRC, metaCRC uint32
}

// stored is the bytes of the record's data field: the media, sealed in version 3.
func (h recHeader) stored() int64 {
	if h.version == versionEncrypted {
		return h.dataLen + sealOverhead
	}
	return h.dataLen
}

// encode writes the header into b[:recHeaderLen].
func (h recHeader) encode(b []byte) {
	clear(b[:recHeaderLen]) // b may be a reused stage
	copy(b, recMagic[:])
	b[4] = h.version
	binary.BigEndian.PutUint64(b[8:], h.seq)
	binary.BigEndian.PutUint32(b[16:], uint32(h.dataLen))
	binary.BigEndian.PutUint32(b[20:], uint32(h.metaLen))
	binary.BigEndian.PutUint32(b[24:], h.dataCRC)
	binary.BigEndian.PutUint32(b[28:], h.metaCRC)
	binary.BigEndian.PutUint32(b[32:], crc(b[:32]))
}

func decodeRecHeader(b []byte) (recHeader, error) {
	if len(b) < recHeaderLen {
		return recHeader{}, corrupt("record header cut short")
	}
	if [4]byte(b[:4]) != recMagic || !knownVersion(b[4]) {
		return recHeader{}, corrupt("no version 1 to %d record header here (magic %q, version %d)", versionEncrypted, b[:4], b[4])
	}
	if crc(b[:32]) != binary.BigEndian.Uint32(b[32:]) {
		return recHeader{}, corrupt("record header checksum mismatch")
	}
	h := recHeader{
		version: b[4],
		seq:     binary.BigEndian.Uint64(b[8:]),
		dataLen: int64(binary.BigEndian.Uint32(b[16:])),
		metaLen: int64(binary.BigEndian.Uint32(b[20:])),
		dataCRC: binary.BigEndian.Uint32(b[24:]),
		metaCRC: binary.BigEndian.Uint32(b[28:]),
	}
	if h.metaLen > maxMetaLen {
		return recHeader{}, corrupt("record meta length %d exceeds %d", h.metaLen, maxMetaLen)
	}
	if h.version == versionEncrypted && h.dataLen > maxDataLen {
		return recHeader{}, corrupt("record data length %d exceeds %d", h.dataLen, maxDataLen)
	}
	return h, nil
}

// recordAAD is what a version 3 record's seal authenticates besides the media: the record's
// seq and its segment's stream, so a record copied to another place does not open there.
func recordAAD(k fragstore.Key, seq uint64) []byte {
	b := make([]byte, 16, 16+len(k.Name))
	binary.BigEndian.PutUint64(b, seq)
	binary.BigEndian.PutUint64(b[8:], uint64(k.CreatedMs))
	return append(b, k.Name...)
}

// opener returns the cipher of a version 3 segment's records: the segment's data key unwrapped,
// and the stream the segment names (for recordAAD). Version 1 and 2 segments need none.
type opener func() (cipher.AEAD, fragstore.Key, error)

// openSealed decrypts a version 3 record's data field, given as its nonce and the ciphertext
// with its tag, in place: the media is returned in ct's storage. A seal that does not open is
// damage (the data key unwrapped, so it is the right one): ErrCorrupt, whether or not the CRC
// (over nonce, ciphertext and tag) noticed it too.
func openSealed(open opener, h recHeader, nonce, ct []byte) ([]byte, error) {
	aead, k, err := open()
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(ct[:0], nonce, ct, recordAAD(k, h.seq))
	if err != nil {
		if crc32.Update(crc(nonce), castagno, ct) != h.dataCRC {
			return nil, corrupt("data checksum mismatch in record %d", h.seq)
		}
		return nil, corrupt("record %d fails authentication under its data key", h.seq)
	}
	return plain, nil
}

// checkLoc checks that a Location can hold a record's data.
func checkLoc(dataOff, dataLen int64) error {
	if dataOff < recHeaderLen || dataLen < 0 || dataLen > maxDataLen {
		return corrupt("location (offset %d, length %d) cannot hold a record", dataOff, dataLen)
	}
	return nil
}

// readRecord reads the record whose data (media of dataLen bytes) starts at dataOff in r, and
// checks header and data: CRCs in versions 1 and 2, the seal in version 3 (then open decrypts;
// nil skips it, and the CRC is checked instead: crash recovery works without keys). When
// withMeta, the meta is read and checked too.
func readRecord(r io.ReaderAt, dataOff, dataLen int64, withMeta bool, open opener) (h recHeader, data, meta []byte, err error) {
	if err := checkLoc(dataOff, dataLen); err != nil {
		return h, nil, nil, err
	}
	// One read for header and data: Read, the hot path, never needs a second. A version 3
	// record's data is sealOverhead longer; reading that much of a version 1 or 2 record
	// reads into the meta, which is harmless.
	buf := make([]byte, recHeaderLen+dataLen+sealOverhead)
	n, err := r.ReadAt(buf, dataOff-recHeaderLen)
	if err != nil && !errors.Is(err, io.EOF) { // EOF: checked against the lengths below
		return h, nil, nil, err
	}
	if h, err = decodeRecHeader(buf[:n]); err != nil {
		return h, nil, nil, err
	}
	if h.dataLen != dataLen {
		return h, nil, nil, corrupt("record holds %d bytes of data, location says %d", h.dataLen, dataLen)
	}
	if int64(n) < recHeaderLen+h.stored() {
		return h, nil, nil, corrupt("record at offset %d runs past the end of the segment", dataOff)
	}
	data = buf[recHeaderLen : recHeaderLen+h.stored()]
	switch {
	case h.version == versionEncrypted && open != nil:
		if data, err = openSealed(open, h, data[:nonceLen], data[nonceLen:]); err != nil {
			return h, nil, nil, err
		}
	case crc(data) != h.dataCRC:
		return h, nil, nil, corrupt("data checksum mismatch in record %d", h.seq)
	}
	if withMeta {
		meta = make([]byte, h.metaLen)
		if err := readFull(r, meta, dataOff+h.stored()); err != nil {
			return h, nil, nil, err
		}
		if crc(meta) != h.metaCRC {
			return h, nil, nil, corrupt("meta checksum mismatch in record %d", h.seq)
		}
	}
	return h, data, meta, nil
}

// readRecordAppend is readRecord for the media alone, appended to dst: the header (with what
// would be a version 3 record's nonce) is read into a small buffer of its own and the rest of
// the data straight into dst, and decrypted there in place, so a caller reading record after
// record reuses one buffer.
func readRecordAppend(r io.ReaderAt, dataOff, dataLen int64, dst []byte, open opener) ([]byte, error) {
	if err := checkLoc(dataOff, dataLen); err != nil {
		return dst, err
	}
	var hb [recHeaderLen + nonceLen]byte
	got, err := r.ReadAt(hb[:], dataOff-recHeaderLen)
	if err != nil && !(errors.Is(err, io.EOF) && got >= recHeaderLen) {
		return dst, readErr(err, dataOff)
	}
	h, err := decodeRecHeader(hb[:got])
	if err != nil {
		return dst, err
	}
	if h.dataLen != dataLen {
		return dst, corrupt("record holds %d bytes of data, location says %d", h.dataLen, dataLen)
	}
	n := len(dst)
	if h.version != versionEncrypted {
		dst = slices.Grow(dst, int(dataLen))[:n+int(dataLen)]
		if err := readFull(r, dst[n:], dataOff); err != nil {
			return dst[:n], err
		}
		if crc(dst[n:]) != h.dataCRC {
			return dst[:n], corrupt("data checksum mismatch in record %d", h.seq)
		}
		return dst, nil
	}
	if got < len(hb) {
		return dst, corrupt("record at offset %d runs past the end of the segment", dataOff)
	}
	if open == nil {
		return dst, errNoKeys
	}
	ctLen := int(dataLen) + tagLen
	dst = slices.Grow(dst, ctLen)[:n+ctLen]
	if err := readFull(r, dst[n:], dataOff+nonceLen); err != nil {
		return dst[:n], err
	}
	plain, err := openSealed(open, h, hb[recHeaderLen:], dst[n:])
	if err != nil {
		return dst[:n], err
	}
	return dst[:n+len(plain)], nil
}

// errNoKeys: an encrypted record read by a Media opened without Config.Keys.
var errNoKeys = errors.New("disk media: record is encrypted and no keys are configured")

func readErr(err error, off int64) error {
	if errors.Is(err, io.EOF) {
		return corrupt("record at offset %d runs past the end of the segment", off)
	}
	return err
}

// readFull is ReadAt where running into the end of the file means a cut record.
func readFull(r io.ReaderAt, b []byte, off int64) error {
	_, err := r.ReadAt(b, off)
	return readErr(err, off)
}

// ScannedRecord is one record found by ScanSegment.
type ScannedRecord struct {
	Seq uint64
	Loc fragstore.Location
	// Data is the record's data field as stored: the media, or in version 3 (Sealed) the media
	// sealed (nonce, ciphertext, tag), which Media.OpenScanned decrypts.
	Data   []byte
	Sealed bool
	Meta   []byte
}

// ReadSegmentInfo reads and checks the header of the segment file at path.
func ReadSegmentInfo(path string) (SegmentInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return SegmentInfo{}, err
	}
	defer f.Close()
	return readSegmentHeader(f)
}

// Unseal returns the media of a record ScanSegment found in the segment info describes: its
// Data as it is in clear, decrypted (and authenticated) with the segment's data key when
// Sealed. Key errors are the Keys' (keys.Error); a seal that does not open is ErrCorrupt.
func Unseal(ctx context.Context, ks Keys, info SegmentInfo, r ScannedRecord) ([]byte, error) {
	if !r.Sealed {
		return r.Data, nil
	}
	if info.DataKey == nil || len(r.Data) < sealOverhead {
		return nil, corrupt("encrypted record %d in a version %d segment", r.Seq, info.Version)
	}
	if ks == nil {
		return nil, errNoKeys
	}
	aead, err := ks.Open(ctx, *info.DataKey)
	if err != nil {
		return nil, fmt.Errorf("data key of segment %d: %w", info.Number, err)
	}
	h := recHeader{version: versionEncrypted, seq: r.Seq, dataLen: r.Loc.Length, dataCRC: crc(r.Data)}
	ct := bytes.Clone(r.Data[nonceLen:])
	return openSealed(func() (cipher.AEAD, fragstore.Key, error) { return aead, info.Key, nil }, h, r.Data[:nonceLen], ct)
}

// ScanSegment reads the segment file at path from the start and calls fn for each record that
// checks out, in order. It stops at the first record that does not, and returns the segment's
// header and the end of the last good record: the size the file would have with its tail cut.
// A file that ends exactly after a record yields a nil error; anything after the last good
// record is reported as an ErrCorrupt. It exists for tools (an index rebuild, fsck) and tests;
// the store itself never needs to scan, because its index knows where every record is.
func ScanSegment(path string, fn func(ScannedRecord) error) (SegmentInfo, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return SegmentInfo{}, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return SegmentInfo{}, 0, err
	}
	return scanSegment(f, fi.Size(), fn)
}

// scanSegment is ScanSegment over the size bytes of r.
func scanSegment(r io.ReaderAt, size int64, fn func(ScannedRecord) error) (SegmentInfo, int64, error) {
	info, err := readSegmentHeader(r)
	if err != nil {
		return SegmentInfo{}, 0, err
	}
	end := min(info.Size, size) // a version 2 header may have lost its fill
	for end < size {
		// Check the header and that the record fits in the file before allocating its size.
		var hb [recHeaderLen]byte
		if err := readFull(r, hb[:], end); err != nil {
			return info, end, fmt.Errorf("after offset %d: %w", end, err)
		}
		h, err := decodeRecHeader(hb[:])
		if err != nil {
			return info, end, fmt.Errorf("after offset %d: %w", end, err)
		}
		if int(h.version) != info.Version {
			return info, end, corrupt("version %d record after offset %d in a version %d segment", h.version, end, info.Version)
		}
		next := end + recHeaderLen + h.stored() + h.metaLen
		if next > size {
			return info, end, corrupt("record %d after offset %d runs past the end of the segment", h.seq, end)
		}
		_, data, meta, err := readRecord(r, end+recHeaderLen, h.dataLen, true, nil)
		if err != nil {
			return info, end, fmt.Errorf("after offset %d: %w", end, err)
		}
		loc := fragstore.Location{Segment: info.Number, Offset: end + recHeaderLen, Length: h.dataLen}
		if err := fn(ScannedRecord{Seq: h.seq, Loc: loc, Data: data, Sealed: h.version == versionEncrypted, Meta: meta}); err != nil {
			return info, end, err
		}
		end = min(info.recordEnd(next), size)
	}
	return info, end, nil
}

// WalkedRecord is one record WalkSegment found: its header checked out, so its place and
// lengths are known; Err says whether its data or meta did not (ErrCorrupt).
type WalkedRecord struct {
	ScannedRecord
	Err error
}

// Walked is how WalkSegment ended: the segment's header, the end of the last record it could
// frame, and why it stopped there (nil: at the end of the file, or in zero fill).
type Walked struct {
	Info SegmentInfo
	End  int64
	Tail error
}

// WalkSegment is ScanSegment for fsck: it goes on past records whose data or meta fail their
// checksums as long as their headers check out (whose own checksum vouches for the lengths
// that lead to the next record), calling fn for every record with Err set for the damaged
// ones. It stops where a record header does not check out or a record runs past the end of the
// file, and returns the end of the last record it could frame and why it stopped there. A
// segment header that does not check out is the error.
func WalkSegment(path string, fn func(WalkedRecord) error) (Walked, error) {
	f, err := os.Open(path)
	if err != nil {
		return Walked{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Walked{}, err
	}
	size := fi.Size()
	info, err := readSegmentHeader(f)
	if err != nil {
		return Walked{}, err
	}
	end := min(info.Size, size)
	for end < size {
		var hb [recHeaderLen]byte
		if err := readFull(f, hb[:], end); err != nil {
			return Walked{info, end, fmt.Errorf("after offset %d: %w", end, err)}, nil
		}
		h, err := decodeRecHeader(hb[:])
		if err == nil && int(h.version) != info.Version {
			err = corrupt("version %d record in a version %d segment", h.version, info.Version)
		}
		if err != nil {
			if isZero(f, end, size) {
				return Walked{info, end, nil}, nil // zero fill of a record written with O_DIRECT, cut short
			}
			return Walked{info, end, fmt.Errorf("after offset %d: %w", end, err)}, nil
		}
		next := end + recHeaderLen + h.stored() + h.metaLen
		if next > size {
			return Walked{info, end, corrupt("record %d after offset %d runs past the end of the segment", h.seq, end)}, nil
		}
		rec := WalkedRecord{ScannedRecord: ScannedRecord{Seq: h.seq, Sealed: h.version == versionEncrypted,
			Loc: fragstore.Location{Segment: info.Number, Offset: end + recHeaderLen, Length: h.dataLen}}}
		_, rec.Data, rec.Meta, rec.Err = readRecord(f, end+recHeaderLen, h.dataLen, true, nil)
		if err := fn(rec); err != nil {
			return Walked{info, end, nil}, err
		}
		end = min(info.recordEnd(next), size)
	}
	return Walked{info, end, nil}, nil
}

// isZero reports whether r holds only zeros from off to size (read in blocks).
func isZero(r io.ReaderAt, off, size int64) bool {
	buf := make([]byte, 64<<10)
	for off < size {
		n, err := r.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		for _, c := range buf[:n] {
			if c != 0 {
				return false
			}
		}
		if err != nil && n == 0 {
			return false
		}
		off += int64(n)
	}
	return true
}
