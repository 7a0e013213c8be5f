package fragstore

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/stream"
)

// Cursor resumes a listing where the previous page stopped; the zero Cursor starts at the top.
// It is opaque to callers and safe to put in a NextToken (String/ParseCursor).
type Cursor struct{ raw []byte }

// cursorVersion leads every encoded cursor, so that a later format can tell old tokens apart.
const cursorVersion = 1

// cursorLen: version, kind, start ms, seq.
const cursorLen = 1 + 1 + 8 + 8

func makeCursor(kind TimeKind, p Position) Cursor {
	raw := make([]byte, cursorLen)
	raw[0], raw[1] = cursorVersion, byte(kind)
	binary.BigEndian.PutUint64(raw[2:], uint64(p.Ms))
	binary.BigEndian.PutUint64(raw[10:], p.Seq)
	return Cursor{raw: raw}
}

// String encodes c in base64 (standard alphabet, padded): it matches KVS's NextToken pattern
// [a-zA-Z0-9+/]+={0,2}. The zero Cursor is "".
func (c Cursor) String() string { return base64.StdEncoding.EncodeToString(c.raw) }

// ParseCursor decodes a String; "" is the zero Cursor. Anything else that String cannot have
// produced is a stream.ErrInvalidArgument (InvalidArgumentException at the API edge).
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(s)
	// The decoder skips line breaks, which KVS's token pattern does not allow.
	if err != nil || strings.ContainsAny(s, "\r\n") || len(raw) != cursorLen || raw[0] != cursorVersion || (raw[1] != byte(ProducerTime) && raw[1] != byte(ServerTime)) {
		return Cursor{}, stream.Invalid("pagination token %.40q is not valid", s)
	}
	return Cursor{raw: raw}, nil
}

func (c Cursor) kind() TimeKind { return TimeKind(c.raw[1]) }

func (c Cursor) position() Position {
	return Position{Ms: int64(binary.BigEndian.Uint64(c.raw[2:])), Seq: binary.BigEndian.Uint64(c.raw[10:])}
}

// List returns up to limit fragments whose start on the kind timeline lies in [from, to]
// (inclusive), in timeline order, and a cursor for the next page (zero when done).
//
// Timeline order is start time, then sequence; the cursor is the last fragment returned, so
// pages neither repeat nor skip entries even when several fragments start in the same ms.
func (s *Store) List(ctx context.Context, k Key, kind TimeKind, from, to time.Time, after Cursor, limit int) ([]*fragment.Fragment, Cursor, error) {
	if err := checkKind(kind); err != nil {
		return nil, Cursor{}, err
	}
	if limit < 1 {
		return nil, Cursor{}, nil
	}
	var pos *Position
	if after.raw != nil {
		if after.kind() != kind {
			return nil, Cursor{}, stream.Invalid("pagination token belongs to another timestamp type")
		}
		p := after.position()
		pos = &p
	}
	fromMs, toMs := ceilMs(from), floorMs(to)
	if fromMs > toMs {
		return nil, Cursor{}, nil // a range inside one ms holds no ms-precision start
	}
	frags, more, err := s.index.ListFragments(ctx, k, kind, fromMs, toMs, pos, limit)
	if err != nil || !more || len(frags) == 0 {
		return frags, Cursor{}, err
	}
	last := frags[len(frags)-1]
	return frags, makeCursor(kind, Position{Ms: startOf(last, kind).UnixMilli(), Seq: last.Seq}), nil
}

// After returns up to limit fragments with Seq > afterSeq in sequence order (GetMedia's walk).
func (s *Store) After(ctx context.Context, k Key, afterSeq uint64, limit int) ([]*fragment.Fragment, error) {
	if limit < 1 || afterSeq == math.MaxUint64 {
		return nil, nil
	}
	return s.index.FragmentsAfter(ctx, k, afterSeq, limit)
}

// SeqAt returns the sequence of the fragment that contains t on the kind timeline (start ≤ t <
// start+duration), or else the first fragment starting after t; ErrNotFound if none.
func (s *Store) SeqAt(ctx context.Context, k Key, kind TimeKind, t time.Time) (uint64, error) {
	if err := checkKind(kind); err != nil {
		return 0, err
	}
	// Starts and ends are whole ms, so for them "≤ t" and "> t" equal "≤ floor(t)", "> floor(t)".
	return s.index.SeqAt(ctx, k, kind, floorMs(t))
}

func checkKind(kind TimeKind) error {
	if kind != ProducerTime && kind != ServerTime {
		return fmt.Errorf("fragstore: unknown TimeKind %d", kind)
	}
	return nil
}

func startOf(f *fragment.Fragment, kind TimeKind) time.Time {
	if kind == ServerTime {
		return f.ServerTime
	}
	return f.ProducerTime
}

// floorMs is the last whole ms at or before t: a ms-precision time is ≤ t exactly when its ms
// is ≤ floorMs(t).
func floorMs(t time.Time) int64 { return t.UnixMilli() } // UnixMilli rounds down: nsec ≥ 0

// ceilMs is the first whole ms at or after t: a ms-precision time is ≥ t (not before t) exactly
// when its ms is ≥ ceilMs(t).
func ceilMs(t time.Time) int64 {
	ms := t.UnixMilli()
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}
