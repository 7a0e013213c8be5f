package fragstore

import (
	"context"
	"errors"
	"time"
)

// ErrCorrupt is returned when stored bytes fail their checksum or framing: media that was
// damaged on disk, never a fragment that is merely missing (that is ErrNotFound).
var ErrCorrupt = errors.New("stored fragment media is corrupt")

// Segment describes one stored segment.
type Segment struct {
	Number uint64
	Size   int64 // bytes it occupies
}

// Record is one fragment as Media stores it.
type Record struct {
	Seq  uint64    // the fragment's sequence; records of a stream arrive in increasing Seq
	Time time.Time // the fragment's server time: segments are cut on it so that expiry frees them
	Meta []byte    // self-description stored beside the data (docs/format/media.md); opaque to Media
	Data []byte    // the fragment media, returned verbatim by Read
}

// Media stores fragment bytes, grouped per stream Key into segments, so that the space of
// expired fragments comes back by deleting whole segments.
//
// Contract (mediatest.TestMedia checks it):
//   - Append is durable when it returns: the record survives kill -9 and power loss. Appends of
//     one Key are never concurrent; appends of different Keys are, and must not wait on each
//     other's I/O. Everything else may run concurrently with anything.
//   - Records are appended to the newest segment; a new segment gets a higher number. Records
//     whose Times are a minute or more apart never share a segment, so a segment's records all
//     expire within a minute of each other.
//   - Read returns exactly the Data appended, or ErrNotFound when its segment is gone, or
//     ErrCorrupt when it fails its checksum.
//   - After DeleteSegment or DeleteStream the next Append starts a new segment.
//   - Media never decides on its own to delete anything; fragstore decides from the Index.
type Media interface {
	// Append stores rec as the next record of k and returns where its Data lies.
	Append(ctx context.Context, k Key, rec Record) (Location, error)
	// Read returns the Data stored at loc.
	Read(ctx context.Context, k Key, loc Location) ([]byte, error)
	// Segments lists the segments k has, in increasing order.
	Segments(ctx context.Context, k Key) ([]Segment, error)
	// DeleteSegment removes one segment of k; a segment that does not exist is no error.
	DeleteSegment(ctx context.Context, k Key, seg uint64) error
	// TruncateAfter is crash recovery: it checks the checksums of the record at loc and removes
	// everything after it in its segment, returning how many bytes it removed. ErrCorrupt (and
	// nothing removed) when the record does not check out.
	TruncateAfter(ctx context.Context, k Key, loc Location) (int64, error)
	// DeleteStream removes all of k's segments.
	DeleteStream(ctx context.Context, k Key) error
	// Retain removes the media of every stream not in keep (streams deleted while kvsd was
	// down) and returns a description of each removal for the log. Only run it at start-up.
	Retain(ctx context.Context, keep []Key) ([]string, error)
	// Close releases open files. Appends fail afterwards.
	Close() error
}

// Preparer is a Media that can do the CPU work of an Append (encryption, checksums, the copy
// into its write buffer) before the Append, outside the serialisation of the Key's appends, so
// that a writer prepares a stream's next record while the previous one's write is in flight.
// The record stored is the one Append would have stored.
type Preparer interface {
	// Prepare assembles rec for AppendPrepared. It may run concurrently with anything,
	// an Append of the same Key included. rec.Data and rec.Meta must not change until the
	// record is appended or released.
	Prepare(ctx context.Context, k Key, rec Record) (PreparedRecord, error)
	// AppendPrepared is Append of a record Prepare made for k; it releases p, whatever the
	// outcome. If what Prepare assumed no longer holds (the segment it would go to took
	// another data key), it prepares the record again first.
	AppendPrepared(ctx context.Context, k Key, p PreparedRecord) (Location, error)
}

// PreparedRecord is a record Preparer.Prepare made. Release frees its buffers when it will
// not be appended; releasing twice is harmless.
type PreparedRecord interface{ Release() }
