// Package mkvtest builds Matroska documents for tests, on mkv.Writer: a
// header (EBML header, unknown-size Segment, Info, Tracks), Clusters of
// SimpleBlocks and Tags, in the layout a test asks for. Tests that need
// other shapes use mkv.Writer directly.
package mkvtest

import "github.com/kvsd/kvsd/internal/mkv"

// Layout says how elements are sized.
type Layout struct {
	// Size is the width of size fields (1–8); 0: the narrowest that fits.
	Size int
	// UintSize is the width of unsigned integers (1–8); 0: the fewest bytes.
	UintSize int
	// SizedClusters writes Clusters with their size; by default they are
	// of unknown size, as live producers write them.
	SizedClusters bool
}

// Layouts tests use.
var (
	// Wide is the KVS producers' way for blocks and tags, used throughout:
	// 8-byte sizes, and integers in 8 bytes.
	Wide = Layout{Size: 8, UintSize: 8}
	// Narrow is the most compact: the narrowest sizes and integers.
	Narrow = Layout{}
)

func (l Layout) writer() *mkv.Writer {
	return &mkv.Writer{Size: l.Size, UintSize: l.UintSize}
}

// Header is an EBML header holding only the DocType "matroska", an
// unknown-size Segment, Info with the TimecodeScale (nanoseconds per tick)
// and Tracks with the given entries.
func (l Layout) Header(scale uint64, tracks ...mkv.TrackEntry) []byte {
	w := l.writer()
	w.Start(mkv.IDEBML)
	w.String(mkv.IDDocType, "matroska")
	w.End()
	w.StartUnknown(mkv.IDSegment)
	w.Start(mkv.IDInfo)
	w.Uint(mkv.IDTimecodeScale, scale)
	w.End()
	w.Start(mkv.IDTracks)
	for _, t := range tracks {
		w.TrackEntry(t)
	}
	w.End()
	return w.Buf
}

// Block is one frame of a Cluster.
type Block struct {
	Track uint64
	Rel   int16 // timecode relative to the Cluster's
	Key   bool
	Data  []byte
}

// Cluster is a Cluster with its Timecode and a SimpleBlock per block.
func (l Layout) Cluster(timecode uint64, blocks ...Block) []byte {
	w := l.writer()
	if l.SizedClusters {
		w.Start(mkv.IDCluster)
	} else {
		w.StartUnknown(mkv.IDCluster)
	}
	w.Uint(mkv.IDTimecode, timecode)
	for _, b := range blocks {
		var flags byte
		if b.Key {
			flags = 0x80
		}
		w.SimpleBlock(b.Track, b.Rel, flags, b.Data)
	}
	if l.SizedClusters {
		w.End()
	}
	return w.Buf
}

// Tags is a Tags element with one Tag holding a SimpleTag per name/value
// pair (8-byte sizes when Size is 0).
func (l Layout) Tags(pairs ...string) []byte {
	var ts []mkv.SimpleTag
	for i := 0; i+1 < len(pairs); i += 2 {
		ts = append(ts, mkv.SimpleTag{Name: pairs[i], Value: pairs[i+1]})
	}
	w := l.writer()
	w.Tags(ts)
	return w.Buf
}
