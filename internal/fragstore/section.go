package fragstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/mkv"
)

// ErrNoSections is Sections' answer when the media backend keeps no files (an object store).
var ErrNoSections = errors.New("media backend has no file sections")

// Section is a fragment's stored media as a range of an open file: Length bytes at Offset of
// File, exactly as ingested (what Media returns).
type Section struct {
	File   *os.File
	Offset int64
	Length int64
}

// Sections holds open the files that hold some fragments' media, so that a reader can check
// each fragment (ReadAppend) and then send the very same bytes straight from the file
// (sendfile), whatever retention deletes meanwhile: an open file keeps an unlinked file's
// data. Each file is opened once, however many of the fragments it holds. Close releases them.
type Sections struct {
	store    *Store
	key      Key
	numbers  []string // fragment numbers, for the damage log
	media    sectionMedia
	locs     []Location
	in       []*os.File // the file of each fragment's segment
	files    []*os.File // each open file once
	verbatim bool       // every file holds its records' media as ingested
}

// sectionMedia is a Media backend whose records' data lie in files (disk.Media): verbatim,
// Location.Length bytes at Location.Offset of the segment's file, unless encrypted.
type sectionMedia interface {
	// OpenSegment opens k's segment seg for reading; ErrNotFound when it is gone. verbatim:
	// its records' media lie in the file as ingested (not encrypted).
	OpenSegment(ctx context.Context, k Key, seg uint64) (f *os.File, verbatim bool, err error)
	// ReadSection appends the data at loc to dst, read from f (loc's segment, as OpenSegment
	// opened it) after checking its record's checksums or decrypting it. On error dst is
	// returned as it was.
	ReadSection(ctx context.Context, f *os.File, loc Location, dst []byte) ([]byte, error)
	// ReadMetaSection returns the record's meta (Record.Meta) at loc, read from f, after
	// checking its checksum, without reading the media.
	ReadMetaSection(f *os.File, loc Location) ([]byte, error)
}

// Sections opens the files holding frags' media; ErrNoSections when the backend has none.
func (s *Store) Sections(ctx context.Context, k Key, frags []*fragment.Fragment) (*Sections, error) {
	sm, ok := s.media.(sectionMedia)
	if !ok {
		return nil, ErrNoSections
	}
	out := &Sections{store: s, key: k, numbers: make([]string, len(frags)), media: sm, locs: make([]Location, len(frags)), in: make([]*os.File, len(frags)), verbatim: true}
	open := map[uint64]*os.File{}
	for i, f := range frags {
		loc, err := s.location(ctx, k, f)
		if err != nil {
			_ = out.Close()
			return nil, err
		}
		file := open[loc.Segment]
		if file == nil {
			var verbatim bool
			if file, verbatim, err = sm.OpenSegment(ctx, k, loc.Segment); err != nil {
				_ = out.Close()
				return nil, fmt.Errorf("media of fragment %d of %s: %w", f.Seq, k.Name, err)
			}
			out.verbatim = out.verbatim && verbatim
			open[loc.Segment] = file
			out.files = append(out.files, file)
		}
		out.locs[i], out.in[i], out.numbers[i] = loc, file, f.Number
	}
	return out, nil
}

// Verbatim reports whether every fragment's media lies in its file as ingested, so that
// Section may be sent as it is. Encrypted media is not: it must be read with ReadAppend,
// which decrypts and authenticates it.
func (ss *Sections) Verbatim() bool { return ss.verbatim }

// Section returns where the i-th fragment's media lies; only meaningful when Verbatim.
func (ss *Sections) Section(i int) Section {
	return Section{File: ss.in[i], Offset: ss.locs[i].Offset, Length: ss.locs[i].Length}
}

// ReadAppend is Store.MediaAppend for the i-th fragment, read from its section's file.
func (ss *Sections) ReadAppend(ctx context.Context, i int, dst []byte) ([]byte, error) {
	out, err := ss.media.ReadSection(ctx, ss.in[i], ss.locs[i], dst)
	if err != nil {
		return dst, ss.store.noteRead(ss.key, ss.numbers[i], fmt.Errorf("media of fragment %s: %w", ss.numbers[i], err))
	}
	return out, nil
}

// Frames returns the i-th fragment's frame table (where each frame lies in its media and when
// it plays) from its record's meta, without reading the media; ok false when the record has
// none (written before tables were) or it does not check out: the media must then be read.
func (ss *Sections) Frames(i int) ([]mkv.FramePlace, bool) {
	meta, err := ss.media.ReadMetaSection(ss.in[i], ss.locs[i])
	if err != nil {
		return nil, false
	}
	var m struct {
		Size   int64  `json:"size"`
		Frames []byte `json:"frames"`
	}
	if json.Unmarshal(meta, &m) != nil || len(m.Frames) == 0 || m.Size != ss.locs[i].Length {
		return nil, false
	}
	frames, err := decodeFrames(m.Frames, m.Size)
	return frames, err == nil
}

// Close closes the files.
func (ss *Sections) Close() error {
	var errs []error
	for _, f := range ss.files {
		errs = append(errs, f.Close())
	}
	ss.files = nil
	return errors.Join(errs...)
}
