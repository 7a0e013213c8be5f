package fragstore

import "github.com/kvsd/kvsd/internal/catalog"

// The fragment index's vocabulary belongs to its contract, catalog.Index; fragstore's users
// keep naming it here.
type (
	// Key identifies one incarnation of a stream (catalog.Key).
	Key = catalog.Key
	// Position is a place on a timeline (catalog.Position).
	Position = catalog.Position
	// Entry is a fragment's index entry with its Location (catalog.Entry).
	Entry = catalog.Entry
	// Put is one entry for Index.PutFragments (catalog.Put).
	Put = catalog.Put
	// Location says where Media put a record's payload (catalog.Location).
	Location = catalog.Location
	// TimeKind selects the timeline of a time query (catalog.TimeKind).
	TimeKind = catalog.TimeKind
	// Index is the fragment index (catalog.Index, whose contract catalogtest.TestIndex checks).
	Index = catalog.Index
)

// The timelines.
const (
	ProducerTime = catalog.ProducerTime
	ServerTime   = catalog.ServerTime
)

// ErrNotFound is returned for fragments or headers the store does not hold (expired, deleted,
// never stored): catalog.ErrFragmentNotFound, also Media's answer for a segment that is gone.
var ErrNotFound = catalog.ErrFragmentNotFound
