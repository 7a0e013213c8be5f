package s3media

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"

	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/keys"
)

// An object is one fragment record (docs/format/media-s3.md):
//
//	header (48 + n bytes [+ wrapped data key], then its CRC) | data | meta
//
// The header names the stream, segment and sequence the key names, so an object describes
// itself; the data follows the header, so a read of header and data is one ranged GET that
// stops before (or early in) the meta. All integers big-endian, checksums CRC-32C.
//
// Version 2 encrypts: the header carries the wrapped data key of the record (the same for
// a stream's objects while its data key lives), and the data is the fragment media sealed
// with AES-256-GCM (nonce u8[12] | ciphertext | tag u8[16]; the data length stays the
// media's), authenticated with the record's seq and its stream, as in the disk media's
// version 3 segments. The data CRC covers the sealed bytes, so checks need no key. Version 1
// (in clear) is still read, and written only by a Media without Config.Keys.
const (
	magic            = "KOBJ"
	versionClear     = 1
	versionEncrypted = 2
	fixedHeader      = 48
	maxMeta          = 16 << 20

	nonceLen     = 12
	tagLen       = 16
	sealOverhead = nonceLen + tagLen

	// maxKeyFields bounds a version 2 header's data key fields: a read asks for that much
	// beyond a version 1 header, so that one ranged GET holds the header whatever its key.
	maxKeyFields = 1 + 2 + keys.MaxKeyIDLen + 2 + keys.MaxWrappedLen
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// headerLen is the length of k's version 1 object header, its CRC included; a version 2
// header is keyFieldsLen longer.
func headerLen(k fragstore.Key) int64 { return fixedHeader + int64(len(k.Name)) + 4 }

func keyFieldsLen(w *keys.Wrapped) int64 {
	if w == nil {
		return 0
	}
	return int64(1 + 2 + len(w.KeyID) + 2 + len(w.Blob))
}

// recordAAD is what a version 2 seal authenticates besides the media: the record's seq and
// its stream, so an object copied under another key does not open there.
func recordAAD(k fragstore.Key, seq uint64) []byte {
	b := make([]byte, 16, 16+len(k.Name))
	binary.BigEndian.PutUint64(b, seq)
	binary.BigEndian.PutUint64(b[8:], uint64(k.CreatedMs))
	return append(b, k.Name...)
}

// encodeObject lays out rec of k in segment seg as one object body: in clear when dk is nil,
// else sealed with it (version 2).
func encodeObject(k fragstore.Key, seg uint64, rec fragstore.Record, dk *keys.DataKey) ([]byte, error) {
	return appendObject(nil, k, seg, rec, dk)
}

// appendObject is encodeObject into buf's storage when it is large enough.
func appendObject(buf []byte, k fragstore.Key, seg uint64, rec fragstore.Record, dk *keys.DataKey) ([]byte, error) {
	var w *keys.Wrapped
	version := byte(versionClear)
	stored := int64(len(rec.Data))
	if dk != nil {
		if len(dk.Wrapped.KeyID) > keys.MaxKeyIDLen || len(dk.Wrapped.Blob) > keys.MaxWrappedLen {
			return nil, fmt.Errorf("wrapped data key of %s is too large to store", k.Name)
		}
		w, version, stored = &dk.Wrapped, versionEncrypted, stored+sealOverhead
	}
	hl := headerLen(k) + keyFieldsLen(w)
	b := slices.Grow(buf[:0], int(hl+stored)+len(rec.Meta))[:hl]
	clear(b) // buf may hold an earlier object
	copy(b, magic)
	b[4] = version
	binary.BigEndian.PutUint16(b[6:], uint16(len(k.Name)))
	binary.BigEndian.PutUint64(b[8:], uint64(k.CreatedMs))
	binary.BigEndian.PutUint64(b[16:], seg)
	binary.BigEndian.PutUint64(b[24:], rec.Seq)
	binary.BigEndian.PutUint32(b[32:], uint32(len(rec.Data)))
	binary.BigEndian.PutUint32(b[36:], uint32(len(rec.Meta)))
	binary.BigEndian.PutUint32(b[44:], crc(rec.Meta))
	at := fixedHeader + copy(b[fixedHeader:], k.Name)
	if w != nil {
		b[at] = byte(w.Source)
		binary.BigEndian.PutUint16(b[at+1:], uint16(len(w.KeyID)))
		at += 3 + copy(b[at+3:], w.KeyID)
		binary.BigEndian.PutUint16(b[at:], uint16(len(w.Blob)))
		at += 2 + copy(b[at+2:], w.Blob)
		nonce := make([]byte, nonceLen)
		if _, err := rand.Read(nonce); err != nil {
			return nil, err
		}
		b = append(b, nonce...)
		b = dk.AEAD.Seal(b, nonce, rec.Data, recordAAD(k, rec.Seq))
	} else {
		b = append(b, rec.Data...)
	}
	binary.BigEndian.PutUint32(b[40:], crc(b[hl:]))
	binary.BigEndian.PutUint32(b[at:], crc(b[:at]))
	return append(b, rec.Meta...), nil
}

// setSegment rewrites the segment number of an object body appendObject made, and its
// header's CRC: a record is sealed before its segment is known (the seal does not cover it).
func setSegment(b []byte, k fragstore.Key, seg uint64) {
	at := fixedHeader + len(k.Name)
	if b[4] == versionEncrypted {
		at += 3 + int(binary.BigEndian.Uint16(b[at+1:]))
		at += 2 + int(binary.BigEndian.Uint16(b[at:]))
	}
	binary.BigEndian.PutUint64(b[16:], seg)
	binary.BigEndian.PutUint32(b[at:], crc(b[:at]))
}

// objHeader is a decoded object header.
type objHeader struct {
	version          byte
	seg, seq         uint64
	dataLen, metaLen int64 // dataLen: bytes of media; stored() bytes follow the header
	dataCRC, metaCRC uint32
	key              *keys.Wrapped // version 2: the data key the data is sealed with
	len              int64         // bytes of the header, its CRC included
}

// stored is the bytes of the object's data field: the media, sealed in version 2.
func (h objHeader) stored() int64 {
	if h.version == versionEncrypted {
		return h.dataLen + sealOverhead
	}
	return h.dataLen
}

// decodeHeader checks the header at the start of b against k, loc's segment and seq.
func decodeHeader(k fragstore.Key, loc fragstore.Location, b []byte) (objHeader, error) {
	bad := func(what string) (objHeader, error) {
		return objHeader{}, fmt.Errorf("%w: object of fragment %d in segment %d of %s: %s", fragstore.ErrCorrupt, loc.Offset, loc.Segment, k.Name, what)
	}
	hl := headerLen(k)
	if int64(len(b)) < hl {
		return bad(fmt.Sprintf("%d bytes, shorter than its header", len(b)))
	}
	if string(b[:4]) != magic || (b[4] != versionClear && b[4] != versionEncrypted) {
		return bad(fmt.Sprintf("not a version %d or %d record", versionClear, versionEncrypted))
	}
	h := objHeader{
		version: b[4],
		seg:     binary.BigEndian.Uint64(b[16:]), seq: binary.BigEndian.Uint64(b[24:]),
		dataLen: int64(binary.BigEndian.Uint32(b[32:])), metaLen: int64(binary.BigEndian.Uint32(b[36:])),
		dataCRC: binary.BigEndian.Uint32(b[40:]), metaCRC: binary.BigEndian.Uint32(b[44:]),
	}
	n := int(binary.BigEndian.Uint16(b[6:]))
	if n != len(k.Name) {
		return bad("names another record")
	}
	at := fixedHeader + n
	if h.version == versionEncrypted {
		if at > len(b) {
			return bad("header cut short")
		}
		w, n, ok := keys.DecodeWrapped(b[at:])
		if !ok {
			return bad("header cut short")
		}
		h.key, at = &w, at+n
	}
	if at+4 > len(b) || crc(b[:at]) != binary.BigEndian.Uint32(b[at:]) {
		return bad("header checksum")
	}
	h.len = int64(at + 4)
	if string(b[fixedHeader:fixedHeader+n]) != k.Name || int64(binary.BigEndian.Uint64(b[8:])) != k.CreatedMs ||
		h.seg != loc.Segment || h.seq != uint64(loc.Offset) {
		return bad("names another record")
	}
	if h.metaLen > maxMeta {
		return bad(fmt.Sprintf("meta length %d", h.metaLen))
	}
	return h, nil
}

// errNoKeys: an encrypted object read by a Media opened without Config.Keys.
var errNoKeys = errors.New("s3 media: record is encrypted and no keys are configured")

// openData checks the data field (stored bytes after the header) against the header's CRC
// and, in version 2, opens the seal with aead. A seal that does not open under the data key
// the header names is damage: ErrCorrupt.
func openData(k fragstore.Key, loc fragstore.Location, h objHeader, data []byte, aead cipher.AEAD) ([]byte, error) {
	if crc(data) != h.dataCRC {
		return nil, fmt.Errorf("%w: fragment %d in segment %d of %s: data checksum", fragstore.ErrCorrupt, loc.Offset, loc.Segment, k.Name)
	}
	if h.version != versionEncrypted {
		return data, nil
	}
	plain, err := aead.Open(data[nonceLen:nonceLen], data[:nonceLen], data[nonceLen:], recordAAD(k, h.seq))
	if err != nil {
		return nil, fmt.Errorf("%w: fragment %d in segment %d of %s fails authentication under its data key", fragstore.ErrCorrupt, loc.Offset, loc.Segment, k.Name)
	}
	return plain, nil
}
