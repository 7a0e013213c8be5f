package disk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"slices"

	"github.com/kvsd/kvsd/internal/fragstore"
)

// On-disk format, version 2 (docs/format/media.md draws it field by field). Integers are big
// endian; checksums are CRC-32C (Castagnoli).
//
// A segment file is a header naming its stream, then records, each starting on a multiple of
// blockSize (zero fill in between):
//
//	segment header  "KSEG" | version u8 | 0 u8 | name length u16 | createdMs i64 | number u64 |
//	                name | CRC u32
//	record header   "KREC" | version u8 | 0 0 0 | seq u64 | data length u32 | meta length u32 |
//	                data CRC u32 | meta CRC u32 | header CRC u32
//	record body     data (the fragment media) | meta (fragstore's JSON self-description)
//
// The data sits right after its fixed-size header, so a Location (offset and length of the
// data) is enough to read header and data in one pread and check both, and meta follows, so a
// scan still finds the next record from the lengths alone. The header's own CRC lets a scan
// trust the lengths before it follows them: a torn tail fails a CRC instead of sending the scan
// off into garbage.
//
// Version 2 only adds the alignment, so that records can be written with O_DIRECT (see
// append.go); version 1 segments (records back to back) are still read.
const (
	formatVersion = 2
	blockSize     = 4096 // alignment of records in version 2; a multiple of common sector sizes

	segHeaderFixed = 24 // bytes before the name
	recHeaderLen   = 36

	maxNameLen = math.MaxUint16
	maxDataLen = math.MaxUint32
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
func knownVersion(v byte) bool { return v == 1 || v == formatVersion }

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", fragstore.ErrCorrupt, fmt.Sprintf(format, args...))
}

// segmentHeader encodes the header of segment number n of k.
func segmentHeader(k fragstore.Key, n uint64) []byte {
	b := make([]byte, segHeaderFixed+len(k.Name)+4)
	copy(b, segMagic[:])
	b[4] = formatVersion
	binary.BigEndian.PutUint16(b[6:], uint16(len(k.Name)))
	binary.BigEndian.PutUint64(b[8:], uint64(k.CreatedMs))
	binary.BigEndian.PutUint64(b[16:], n)
	copy(b[segHeaderFixed:], k.Name)
	binary.BigEndian.PutUint32(b[len(b)-4:], crc(b[:len(b)-4]))
	return b
}

// SegmentInfo is what a segment header says.
type SegmentInfo struct {
	Key     fragstore.Key
	Number  uint64
	Version int   // format version: 2, or 1 for segments written before records were aligned
	Size    int64 // header bytes, fill included; records start here
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
		return SegmentInfo{}, corrupt("not a version 1 or %d segment (magic %q, version %d)", formatVersion, fixed[:4], fixed[4])
	}
	n := int(binary.BigEndian.Uint16(fixed[6:]))
	b := make([]byte, segHeaderFixed+n+4)
	if _, err := r.ReadAt(b, 0); err != nil {
		return SegmentInfo{}, corrupt("segment header: %v", err)
	}
	if crc(b[:len(b)-4]) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return SegmentInfo{}, corrupt("segment header checksum mismatch")
	}
	info := SegmentInfo{
		Key:     fragstore.Key{Name: string(b[segHeaderFixed : segHeaderFixed+n]), CreatedMs: int64(binary.BigEndian.Uint64(fixed[8:]))},
		Number:  binary.BigEndian.Uint64(fixed[16:]),
		Version: int(fixed[4]),
	}
	info.Size = info.recordEnd(int64(len(b)))
	return info, nil
}

// recHeader is a decoded record header.
type recHeader struct {
	seq              uint64
	dataLen, metaLen int64
	dataCRC, metaCRC uint32
}

// encode writes the header into b[:recHeaderLen].
func (h recHeader) encode(b []byte) {
	clear(b[:recHeaderLen]) // b may be a reused stage
	copy(b, recMagic[:])
	b[4] = formatVersion
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
		return recHeader{}, corrupt("no version 1 or %d record header here (magic %q, version %d)", formatVersion, b[:4], b[4])
	}
	if crc(b[:32]) != binary.BigEndian.Uint32(b[32:]) {
		return recHeader{}, corrupt("record header checksum mismatch")
	}
	h := recHeader{
		seq:     binary.BigEndian.Uint64(b[8:]),
		dataLen: int64(binary.BigEndian.Uint32(b[16:])),
		metaLen: int64(binary.BigEndian.Uint32(b[20:])),
		dataCRC: binary.BigEndian.Uint32(b[24:]),
		metaCRC: binary.BigEndian.Uint32(b[28:]),
	}
	if h.metaLen > maxMetaLen {
		return recHeader{}, corrupt("record meta length %d exceeds %d", h.metaLen, maxMetaLen)
	}
	return h, nil
}

// readRecord reads the record whose data (dataLen bytes) starts at dataOff in r, and checks
// header, data and, when withMeta, meta.
func readRecord(r io.ReaderAt, dataOff, dataLen int64, withMeta bool) (h recHeader, data, meta []byte, err error) {
	if dataOff < recHeaderLen || dataLen < 0 || dataLen > maxDataLen {
		return h, nil, nil, corrupt("location (offset %d, length %d) cannot hold a record", dataOff, dataLen)
	}
	// One read for header and data: Read, the hot path, never needs a second.
	buf := make([]byte, recHeaderLen+dataLen)
	if err := readFull(r, buf, dataOff-recHeaderLen); err != nil {
		return h, nil, nil, err
	}
	if h, err = decodeRecHeader(buf); err != nil {
		return h, nil, nil, err
	}
	if h.dataLen != dataLen {
		return h, nil, nil, corrupt("record holds %d bytes of data, location says %d", h.dataLen, dataLen)
	}
	data = buf[recHeaderLen:]
	if crc(data) != h.dataCRC {
		return h, nil, nil, corrupt("data checksum mismatch in record %d", h.seq)
	}
	if withMeta {
		meta = make([]byte, h.metaLen)
		if err := readFull(r, meta, dataOff+dataLen); err != nil {
			return h, nil, nil, err
		}
		if crc(meta) != h.metaCRC {
			return h, nil, nil, corrupt("meta checksum mismatch in record %d", h.seq)
		}
	}
	return h, data, meta, nil
}

// readRecordAppend is readRecord for the data alone, appended to dst: the header is read into
// a small buffer of its own and the data straight into dst, so a caller reading record after
// record reuses one buffer.
func readRecordAppend(r io.ReaderAt, dataOff, dataLen int64, dst []byte) ([]byte, error) {
	if dataOff < recHeaderLen || dataLen < 0 || dataLen > maxDataLen {
		return dst, corrupt("location (offset %d, length %d) cannot hold a record", dataOff, dataLen)
	}
	var hb [recHeaderLen]byte
	if err := readFull(r, hb[:], dataOff-recHeaderLen); err != nil {
		return dst, err
	}
	h, err := decodeRecHeader(hb[:])
	if err != nil {
		return dst, err
	}
	if h.dataLen != dataLen {
		return dst, corrupt("record holds %d bytes of data, location says %d", h.dataLen, dataLen)
	}
	n := len(dst)
	dst = slices.Grow(dst, int(dataLen))[:n+int(dataLen)]
	if err := readFull(r, dst[n:], dataOff); err != nil {
		return dst[:n], err
	}
	if crc(dst[n:]) != h.dataCRC {
		return dst[:n], corrupt("data checksum mismatch in record %d", h.seq)
	}
	return dst, nil
}

// readFull is ReadAt where running into the end of the file means a cut record.
func readFull(r io.ReaderAt, b []byte, off int64) error {
	_, err := r.ReadAt(b, off)
	if errors.Is(err, io.EOF) {
		return corrupt("record at offset %d runs past the end of the segment", off)
	}
	return err
}

// ScannedRecord is one record found by ScanSegment.
type ScannedRecord struct {
	Seq  uint64
	Loc  fragstore.Location
	Data []byte
	Meta []byte
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
		next := end + recHeaderLen + h.dataLen + h.metaLen
		if next > size {
			return info, end, corrupt("record %d after offset %d runs past the end of the segment", h.seq, end)
		}
		_, data, meta, err := readRecord(r, end+recHeaderLen, h.dataLen, true)
		if err != nil {
			return info, end, fmt.Errorf("after offset %d: %w", end, err)
		}
		loc := fragstore.Location{Segment: info.Number, Offset: end + recHeaderLen, Length: h.dataLen}
		if err := fn(ScannedRecord{Seq: h.seq, Loc: loc, Data: data, Meta: meta}); err != nil {
			return info, end, err
		}
		end = min(info.recordEnd(next), size)
	}
	return info, end, nil
}
