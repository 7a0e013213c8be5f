package mkv

// Kind says what an Event reports.
type Kind int

// Event kinds, in the order they occur within a document.
const (
	KindHeader       Kind = iota + 1 // a document's header is complete
	KindClusterStart                 // a Cluster's Timecode was read
	KindBlock                        // a SimpleBlock or BlockGroup was read
	KindClusterEnd                   // a Cluster is complete
	KindTags                         // a level-1 Tags element after a Cluster
	// KindStrayBlock is a SimpleBlock or BlockGroup outside any Cluster: the rest of a Cluster
	// whose start was in another input (a producer that reconnects mid-Cluster). The Reader
	// skips its bytes; Size says how many.
	KindStrayBlock
)

var kindNames = [...]string{"", "Header", "ClusterStart", "Block", "ClusterEnd", "Tags", "StrayBlock"}

func (k Kind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(?)"
}

// Event is one step of the stream. Which fields are set depends on Kind.
type Event struct {
	Kind Kind
	// Offset is where the element begins in the input: the EBML header for
	// KindHeader, the Cluster for KindClusterStart/KindClusterEnd, the
	// SimpleBlock or BlockGroup for KindBlock, the Tags for KindTags.
	Offset int64
	// Header is set for KindHeader. It is not reused.
	Header *Header
	// Timecode is the Cluster's Timecode in raw ticks (KindClusterStart,
	// KindBlock, KindClusterEnd).
	Timecode uint64
	// Block is set for KindBlock.
	Block Block
	// Raw is the whole Cluster element (KindClusterEnd) or Tags element
	// (KindTags) verbatim, size field as sent. It is valid until the next
	// call to Next.
	Raw []byte
	// Size is the whole element's length (KindStrayBlock).
	Size int64
	// Tags lists every SimpleTag of a KindTags element, nested ones
	// flattened, in document order.
	Tags []SimpleTag
}

// Block describes a SimpleBlock, or the Block of a BlockGroup.
type Block struct {
	Track       uint64
	RelTimecode int16 // ticks relative to the Cluster's Timecode
	// Keyframe is the SimpleBlock key flag; for a BlockGroup it means the
	// group has no ReferenceBlock.
	Keyframe bool
	Size     int // frame data bytes (the block payload after its header)
}
