package s3media

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/kvsd/kvsd/internal/fragstore"
)

// An object is one fragment record (docs/format/media-s3.md):
//
//	header (48 + n bytes, then its CRC) | data | meta
//
// The header names the stream, segment and sequence the key names, so an object describes
// itself; the data follows the header, so a read of header and data is one ranged GET that
// stops before the meta. All integers big-endian, checksums CRC-32C.
const (
	magic         = "KOBJ"
	formatVersion = 1
	fixedHeader   = 48
	maxMeta       = 16 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// headerLen is the length of k's object header, its CRC included.
func headerLen(k fragstore.Key) int64 { return fixedHeader + int64(len(k.Name)) + 4 }

// encodeObject lays out rec of k in segment seg as one object body.
func encodeObject(k fragstore.Key, seg uint64, rec fragstore.Record) []byte {
	hl := headerLen(k)
	b := make([]byte, hl, hl+int64(len(rec.Data)+len(rec.Meta)))
	copy(b, magic)
	b[4] = formatVersion
	binary.BigEndian.PutUint16(b[6:], uint16(len(k.Name)))
	binary.BigEndian.PutUint64(b[8:], uint64(k.CreatedMs))
	binary.BigEndian.PutUint64(b[16:], seg)
	binary.BigEndian.PutUint64(b[24:], rec.Seq)
	binary.BigEndian.PutUint32(b[32:], uint32(len(rec.Data)))
	binary.BigEndian.PutUint32(b[36:], uint32(len(rec.Meta)))
	binary.BigEndian.PutUint32(b[40:], crc(rec.Data))
	binary.BigEndian.PutUint32(b[44:], crc(rec.Meta))
	copy(b[fixedHeader:], k.Name)
	binary.BigEndian.PutUint32(b[hl-4:], crc(b[:hl-4]))
	b = append(b, rec.Data...)
	return append(b, rec.Meta...)
}

// objHeader is a decoded object header.
type objHeader struct {
	seg, seq         uint64
	dataLen, metaLen int64
	dataCRC, metaCRC uint32
}

// decodeHeader checks the header at the start of b against k, loc's segment and seq.
func decodeHeader(k fragstore.Key, loc fragstore.Location, b []byte) (objHeader, error) {
	hl := headerLen(k)
	if int64(len(b)) < hl {
		return objHeader{}, fmt.Errorf("%w: object of fragment %d in segment %d of %s is %d bytes, shorter than its header", fragstore.ErrCorrupt, loc.Offset, loc.Segment, k.Name, len(b))
	}
	if string(b[:4]) != magic || b[4] != formatVersion {
		return objHeader{}, fmt.Errorf("%w: object of fragment %d in segment %d of %s: not a version %d record", fragstore.ErrCorrupt, loc.Offset, loc.Segment, k.Name, formatVersion)
	}
	if crc(b[:hl-4]) != binary.BigEndian.Uint32(b[hl-4:]) {
		return objHeader{}, fmt.Errorf("%w: object of fragment %d in segment %d of %s: header checksum", fragstore.ErrCorrupt, loc.Offset, loc.Segment, k.Name)
	}
	h := objHeader{
		seg: binary.BigEndian.Uint64(b[16:]), seq: binary.BigEndian.Uint64(b[24:]),
		dataLen: int64(binary.BigEndian.Uint32(b[32:])), metaLen: int64(binary.BigEndian.Uint32(b[36:])),
		dataCRC: binary.BigEndian.Uint32(b[40:]), metaCRC: binary.BigEndian.Uint32(b[44:]),
	}
	n := int(binary.BigEndian.Uint16(b[6:]))
	if n != len(k.Name) || string(b[fixedHeader:fixedHeader+n]) != k.Name || int64(binary.BigEndian.Uint64(b[8:])) != k.CreatedMs ||
		h.seg != loc.Segment || h.seq != uint64(loc.Offset) {
		return objHeader{}, fmt.Errorf("%w: object of fragment %d in segment %d of %s names another record", fragstore.ErrCorrupt, loc.Offset, loc.Segment, k.Name)
	}
	return h, nil
}
