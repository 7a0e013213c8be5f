// Package fragstore is the durable, time-indexed fragment store the rest of kvsd uses: media
// bytes first, then the index entry, so that a fragment acknowledged PERSISTED survives a crash.
//
// CONTRACT (implementation in progress): the exported API below is fixed; ingest and playback
// code against it.
package fragstore

import (
	"context"
	"errors"
	"time"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/stream"
)

// ErrNotFound is returned for fragments or headers the store does not hold (expired, deleted,
// never stored).
var ErrNotFound = errors.New("fragment not found")

// Key identifies one incarnation of a stream: a stream deleted and created again under the same
// name has another CreatedMs, and so other fragments.
type Key struct {
	Name      string
	CreatedMs int64
}

// KeyOf returns the storage key of s.
func KeyOf(s *stream.Stream) Key { return Key{Name: s.Name, CreatedMs: s.CreationTime.UnixMilli()} }

// TimeKind selects the timeline of a time query.
type TimeKind int

const (
	ProducerTime TimeKind = iota
	ServerTime
)

// Cursor resumes a listing where the previous page stopped; the zero Cursor starts at the top.
// It is opaque to callers and safe to put in a NextToken (String/ParseCursor).
type Cursor struct{ raw []byte }

// Store keeps fragment media and the fragment index.
type Store struct {
	// implementation fields
}

// Append makes one fragment durable: the header (stored once per distinct HeaderID), the media
// bytes (cluster and trailing tags, verbatim) and the index entry, in that order, each synced.
// f.Seq, f.Number, f.HeaderID and the timestamps are set by the caller; Append sets f.Size.
// When Append returns nil the fragment survives kill -9 and power loss.
func (s *Store) Append(ctx context.Context, k Key, header []byte, f *fragment.Fragment, media []byte) error {
	panic("fragstore: not implemented")
}

// LastSeq returns the highest stored sequence of the stream, 0 if none.
func (s *Store) LastSeq(ctx context.Context, k Key) (uint64, error) { panic("fragstore: not implemented") }

// Fragment returns the index entry with that sequence.
func (s *Store) Fragment(ctx context.Context, k Key, seq uint64) (*fragment.Fragment, error) {
	panic("fragstore: not implemented")
}

// Media returns the stored bytes of f (cluster and trailing tags), exactly as ingested.
func (s *Store) Media(ctx context.Context, k Key, f *fragment.Fragment) ([]byte, error) {
	panic("fragstore: not implemented")
}

// Header returns the MKV header bytes (EBML … Tracks) stored under id.
func (s *Store) Header(ctx context.Context, k Key, id string) ([]byte, error) {
	panic("fragstore: not implemented")
}

// List returns up to limit fragments whose start on the kind timeline lies in [from, to]
// (inclusive), in timeline order, and a cursor for the next page (zero when done).
func (s *Store) List(ctx context.Context, k Key, kind TimeKind, from, to time.Time, after Cursor, limit int) ([]*fragment.Fragment, Cursor, error) {
	panic("fragstore: not implemented")
}

// After returns up to limit fragments with Seq > afterSeq in sequence order (GetMedia's walk).
func (s *Store) After(ctx context.Context, k Key, afterSeq uint64, limit int) ([]*fragment.Fragment, error) {
	panic("fragstore: not implemented")
}

// SeqAt returns the sequence of the fragment that contains t on the kind timeline (start ≤ t <
// start+duration), or else the first fragment starting after t; ErrNotFound if none.
func (s *Store) SeqAt(ctx context.Context, k Key, kind TimeKind, t time.Time) (uint64, error) {
	panic("fragstore: not implemented")
}

// Expire removes every fragment whose server time is before cutoff and reclaims its disk space
// as soon as no kept fragment shares the space. It returns how many fragments were removed.
func (s *Store) Expire(ctx context.Context, k Key, cutoff time.Time) (int, error) {
	panic("fragstore: not implemented")
}

// DeleteStream removes all of the stream's fragments, headers and media.
func (s *Store) DeleteStream(ctx context.Context, k Key) error { panic("fragstore: not implemented") }

// Streams lists the keys that have stored fragments (for retention sweeps and orphan cleanup).
func (s *Store) Streams(ctx context.Context) ([]Key, error) { panic("fragstore: not implemented") }

// Close releases open files.
func (s *Store) Close() error { panic("fragstore: not implemented") }
