package fragstore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/kvsd/kvsd/internal/mkv"
)

// The frame table of a record (recordMeta.Frames) says where each frame of the fragment's
// media lies and when it plays, so that a clip's first pass (sizes, times, places of every
// sample, for the moov written before the media) needs no read, checksum or decryption of the
// media itself. Frame sizes and times are metadata kept in clear like the record's timestamps;
// the frames' bytes are not.
//
// Encoding: uvarint count, then per frame uvarint track, varint timecode − the previous
// frame's (the first: − 0), byte flags (1: keyframe), uvarint offset − the previous frame's end,
// uvarint size. Frames appear in the order of the media.

// maxTableFrames bounds a decoded table (a fragment of 16 MiB of one-byte frames has fewer).
const maxTableFrames = 1 << 20

// encodeFrames is media's frame table; nil when the media is not one Cluster kvsd can read
// (the fragment's clips then read its media in the first pass, as before tables existed).
func encodeFrames(media []byte) []byte {
	frames, err := mkv.ClusterFrames(media, nil)
	if err != nil || len(frames) == 0 {
		return nil
	}
	out := binary.AppendUvarint(make([]byte, 0, 8*len(frames)), uint64(len(frames)))
	var prevTC, end int64
	for _, f := range frames {
		off := int64(cap(media) - cap(f.Data)) // f.Data aliases media
		if off < end || off+int64(len(f.Data)) > int64(len(media)) {
			return nil
		}
		out = binary.AppendUvarint(out, f.Track)
		out = binary.AppendVarint(out, f.Timecode-prevTC)
		var flags byte
		if f.Keyframe {
			flags = 1
		}
		out = append(out, flags)
		out = binary.AppendUvarint(out, uint64(off-end))
		out = binary.AppendUvarint(out, uint64(len(f.Data)))
		prevTC, end = f.Timecode, off+int64(len(f.Data))
	}
	return out
}

var errFrameTable = errors.New("frame table")

// decodeFrames is encodeFrames' inverse, checked against the media's size.
func decodeFrames(b []byte, size int64) ([]mkv.FramePlace, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n == 0 || n > maxTableFrames || n > uint64(len(b)) {
		return nil, fmt.Errorf("%w: bad count", errFrameTable)
	}
	b = b[k:]
	out := make([]mkv.FramePlace, n)
	var tc, end int64
	for i := range out {
		track, k1 := binary.Uvarint(b)
		if k1 <= 0 {
			return nil, fmt.Errorf("%w: frame %d: track", errFrameTable, i)
		}
		b = b[k1:]
		d, k2 := binary.Varint(b)
		if k2 <= 0 || len(b) < k2+1 {
			return nil, fmt.Errorf("%w: frame %d: timecode", errFrameTable, i)
		}
		flags := b[k2]
		b = b[k2+1:]
		gap, k3 := binary.Uvarint(b)
		if k3 <= 0 {
			return nil, fmt.Errorf("%w: frame %d: offset", errFrameTable, i)
		}
		b = b[k3:]
		sz, k4 := binary.Uvarint(b)
		if k4 <= 0 {
			return nil, fmt.Errorf("%w: frame %d: size", errFrameTable, i)
		}
		b = b[k4:]
		if gap > uint64(size) || sz > uint64(size) || end+int64(gap)+int64(sz) > size {
			return nil, fmt.Errorf("%w: frame %d lies past the media's %d bytes", errFrameTable, i, size)
		}
		tc += d
		off := end + int64(gap)
		out[i] = mkv.FramePlace{Track: track, Timecode: tc, Keyframe: flags&1 != 0, Offset: off, Size: int64(sz)}
		end = off + int64(sz)
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the frames", errFrameTable, len(b))
	}
	return out, nil
}
