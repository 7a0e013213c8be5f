package catalog

import (
	"context"
	"errors"

	"github.com/kvsd/kvsd/internal/fragment"
)

// ErrFragmentNotFound is the Index's answer for fragments or headers it does not hold (expired,
// deleted, never stored). fragstore.ErrNotFound is the same error.
var ErrFragmentNotFound = errors.New("fragment not found")

// Key identifies one incarnation of a stream: a stream deleted and created again under the same
// name has a later CreatedMs (creation times strictly increase per name), and so other fragments.
type Key struct {
	Name      string
	CreatedMs int64
}

// TimeKind selects the timeline of a time query.
type TimeKind int

const (
	ProducerTime TimeKind = iota
	ServerTime
)

// Location says where fragment media was put (fragstore.Media returns it). It is meaningful
// only to the Media that returned it and to the Index that stores it next to the fragment's entry.
// It is fragment.Location, so that the fragments the Index returns carry it.
type Location = fragment.Location

// Position is a place on a timeline: a fragment's start in Unix milliseconds and its sequence.
// Timeline order is (Ms, Seq).
type Position struct {
	Ms  int64
	Seq uint64
}

// Entry is a fragment's index entry with the Location of its media.
type Entry struct {
	Fragment *fragment.Fragment
	Location Location
}

// Put is one entry for PutFragments: f (with f.Size set) of stream Key at Location, and the
// header stored under f.HeaderID unless stored already.
type Put struct {
	Key      Key
	Fragment *fragment.Fragment
	Location Location
	Header   []byte
	// Epoch, when not 0, fences the commit: it must be the current epoch of Key.Name's lease
	// (Leases), else the PutFragments fails with *FencedError. 0 commits unfenced.
	Epoch uint64
}

// Index is the fragment index: every stored fragment's entry and Location, the stream's MKV
// headers, and the per-segment bookkeeping that tells fragstore when a segment is free.
//
// Times cross this interface as Unix milliseconds (fragment times have ms precision; fragstore
// rounds query bounds so that the ms comparisons equal the time.Time ones).
//
// Contract (catalogtest.TestIndex checks it):
//   - PutFragment and PutFragments are atomic and durable when they return: a PutFragments
//     stores all of its entries or none. Puts of one Key are never concurrent and come in
//     increasing Seq (within a PutFragments too); Puts of different Keys are concurrent and
//     should share commits. f.Number must be fragment.FormatNumber(k.CreatedMs, f.Seq) (entries need not
//     store it). The header is stored under f.HeaderID unless one is stored already; a Put
//     naming a HeaderID the index does not hold, with no header bytes, fails. A Put of a Seq
//     that is stored fails.
//   - Puts with an Epoch are fenced in the same transaction (Leases): one stale Epoch fails
//     the whole PutFragments with *FencedError.
//   - Fragments come back as fresh values, times in UTC, Tags nil when there are none, each
//     with its Location set.
//   - LastFragment keeps the highest Seq ever put, with its Location, even after it expired:
//     sequence numbers never go back while the stream lives.
//   - A segment is live while at least one stored entry's Location names it.
//   - A header is kept while at least one stored entry names it.
//   - Missing Keys behave as empty streams (ErrFragmentNotFound from GetFragment and GetHeader, 0 from
//     LastFragment).
//
// The method names say "fragment" because an implementation is one type for streams, fragments
// and state (Catalog).
type Index interface {
	// PutFragment stores f (with f.Size set) at loc, and header under f.HeaderID unless stored.
	PutFragment(ctx context.Context, k Key, f *fragment.Fragment, loc Location, header []byte) error
	// PutFragments stores many entries, of any Keys, in one commit: fragstore's group commit.
	PutFragments(ctx context.Context, puts []Put) error
	// GetFragment returns the entry with that Seq; ErrFragmentNotFound if none.
	GetFragment(ctx context.Context, k Key, seq uint64) (*fragment.Fragment, error)
	// GetHeader returns the header stored under id; ErrFragmentNotFound if none.
	GetHeader(ctx context.Context, k Key, id string) ([]byte, error)
	// LastFragment returns the highest Seq ever put and its Location; seq 0 if none.
	LastFragment(ctx context.Context, k Key) (seq uint64, loc Location, err error)
	// ListFragments returns up to limit entries whose start on the kind timeline is in
	// [fromMs, toMs], in timeline order, starting after `after` when it is not nil; more
	// reports whether another entry in range follows the last one returned.
	ListFragments(ctx context.Context, k Key, kind TimeKind, fromMs, toMs int64, after *Position, limit int) (frags []*fragment.Fragment, more bool, err error)
	// FragmentsAfter returns up to limit entries with Seq > afterSeq, in Seq order.
	FragmentsAfter(ctx context.Context, k Key, afterSeq uint64, limit int) ([]*fragment.Fragment, error)
	// SeqAt returns the Seq of the entry whose [start, start+duration) contains ms on the kind
	// timeline (the earliest such entry among those with the latest start ≤ ms), else of the
	// first entry starting after ms; ErrFragmentNotFound if there is none.
	SeqAt(ctx context.Context, k Key, kind TimeKind, ms int64) (uint64, error)
	// ExpireFragments removes up to limit entries whose server time is before cutoffMs, oldest
	// first, in one commit. It returns how many it removed and the segments no longer live.
	ExpireFragments(ctx context.Context, k Key, cutoffMs int64, limit int) (removed int, freed []uint64, err error)
	// LiveSegments lists k's live segments in increasing order.
	LiveSegments(ctx context.Context, k Key) ([]uint64, error)
	// DeleteFragments removes everything stored for k, LastFragment's record included.
	DeleteFragments(ctx context.Context, k Key) error
	// FragmentStreams lists every Key the index holds anything for (a LastFragment alone counts).
	FragmentStreams(ctx context.Context) ([]Key, error)
}
