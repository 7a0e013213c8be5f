package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kvsd/kvsd/internal/catalog"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/mkv"
)

// entryVersion leads every fragment entry; decoders refuse other versions.
const entryVersion = 1

// encodeEntry is the by-seq value of a fragment (docs/format/catalog.md): a version byte, then
// varints. Binary rather than JSON because ListFragments decodes thousands per request and the
// index holds millions; a typical entry is about 40 bytes. The fragment number is not stored:
// it is FormatNumber(key's createdMs, seq), which Put checks.
func encodeEntry(f *fragment.Fragment, loc catalog.Location) []byte {
	b := make([]byte, 0, 48+len(f.HeaderID))
	b = append(b, entryVersion)
	b = binary.AppendUvarint(b, loc.Segment)
	b = binary.AppendUvarint(b, uint64(loc.Offset))
	b = binary.AppendUvarint(b, uint64(loc.Length))
	b = binary.AppendUvarint(b, f.Timecode)
	b = binary.AppendVarint(b, f.ProducerTime.UnixMilli())
	b = binary.AppendVarint(b, f.ServerTime.UnixMilli())
	b = binary.AppendVarint(b, f.Duration.Milliseconds())
	b = appendString(b, f.HeaderID)
	b = binary.AppendUvarint(b, uint64(len(f.Tags)))
	for _, t := range f.Tags {
		b = appendString(b, t.Name)
		b = appendString(b, t.Value)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

var errEntry = errors.New("fragment entry is damaged")

// entryReader decodes varints, remembering the first failure.
type entryReader struct {
	b   []byte
	err error
}

func (r *entryReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errEntry
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *entryReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errEntry
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *entryReader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.err = errEntry
		r.b = nil
		return ""
	}
	s := string(r.b[:n]) // copies: bbolt's bytes die with the transaction
	r.b = r.b[n:]
	return s
}

// decodeEntry builds a fresh Fragment, its Location set, from a by-seq value.
func decodeEntry(k catalog.Key, seq uint64, v []byte) (*fragment.Fragment, catalog.Location, error) {
	if len(v) == 0 || v[0] != entryVersion {
		return nil, catalog.Location{}, fmt.Errorf("fragment %d of %s: entry version %v; this kvsd reads version %d", seq, k.Name, v[:min(len(v), 1)], entryVersion)
	}
	r := entryReader{b: v[1:]}
	var loc catalog.Location
	loc.Segment = r.uvarint()
	loc.Offset = int64(r.uvarint())
	loc.Length = int64(r.uvarint())
	f := &fragment.Fragment{Seq: seq, Number: fragment.FormatNumber(k.CreatedMs, seq), Size: loc.Length, Location: loc}
	f.Timecode = r.uvarint()
	f.ProducerTime = time.UnixMilli(r.varint()).UTC()
	f.ServerTime = time.UnixMilli(r.varint()).UTC()
	f.Duration = time.Duration(r.varint()) * time.Millisecond
	f.HeaderID = r.string()
	if n := r.uvarint(); n > 0 && n <= uint64(len(r.b)) { // each tag takes 2+ bytes: bounds n
		f.Tags = make([]mkv.SimpleTag, 0, n)
		for range n {
			name := r.string()
			f.Tags = append(f.Tags, mkv.SimpleTag{Name: name, Value: r.string()})
		}
	} else if n > 0 {
		r.err = errEntry
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, loc, fmt.Errorf("fragment %d of %s: %w", seq, k.Name, errEntry)
	}
	return f, loc, nil
}

// lastLen: version, seq, segment, offset, length.
const lastLen = 1 + 8*4

// encodeLast is the value of a stream's "last" key: the highest Seq ever put and its Location.
func encodeLast(seq uint64, loc catalog.Location) []byte {
	b := make([]byte, lastLen)
	b[0] = entryVersion
	binary.BigEndian.PutUint64(b[1:], seq)
	binary.BigEndian.PutUint64(b[9:], loc.Segment)
	binary.BigEndian.PutUint64(b[17:], uint64(loc.Offset))
	binary.BigEndian.PutUint64(b[25:], uint64(loc.Length))
	return b
}

func decodeLast(v []byte) (uint64, catalog.Location, error) {
	if v == nil {
		return 0, catalog.Location{}, nil
	}
	if len(v) != lastLen || v[0] != entryVersion {
		return 0, catalog.Location{}, fmt.Errorf("last-fragment record: %w", errEntry)
	}
	return binary.BigEndian.Uint64(v[1:]), catalog.Location{
		Segment: binary.BigEndian.Uint64(v[9:]),
		Offset:  int64(binary.BigEndian.Uint64(v[17:])),
		Length:  int64(binary.BigEndian.Uint64(v[25:])),
	}, nil
}

// u64 is an 8-byte big-endian key: byte order is numeric order.
func u64(n uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), n) }

// timeKey is a timeline key: the start ms with the sign bit flipped (so that byte order is
// numeric order for negative times too), then the seq.
func timeKey(ms int64, seq uint64) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, uint64(ms)^(1<<63))
	binary.BigEndian.PutUint64(b[8:], seq)
	return b
}

func timeKeyMs(b []byte) int64 { return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)) }

// keyName names a stream's bucket "<createdMs>_<name>", readable in bbolt's tools.
func keyName(k catalog.Key) []byte {
	return []byte(strconv.FormatInt(k.CreatedMs, 10) + "_" + k.Name)
}

func parseKeyName(b []byte) (catalog.Key, bool) {
	ms, name, ok := strings.Cut(string(b), "_")
	n, err := strconv.ParseInt(ms, 10, 64)
	return catalog.Key{Name: name, CreatedMs: n}, ok && err == nil && name != ""
}
