// Package fsck checks a stopped kvsd's data dir (`kvsd fsck`): every segment record's checksums
// and decryption, and the fragment index against the segments (entries without media, media
// without entries, fragments out of order). With Repair it re-indexes every intact record the
// index lacks (after an older catalog was restored, say) and drops the entries whose media is
// gone or damaged. It never deletes or changes media.
package fsck

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kvsd/kvsd/internal/catalog"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/fragstore/disk"
	"github.com/kvsd/kvsd/internal/keys"
)

// Index is what fsck needs of the catalog (catalog/bolt): the fragment index, plus Import
// (re-index many entries in one commit) and DropFragments (remove chosen entries).
type Index interface {
	catalog.Index
	Import(ctx context.Context, k catalog.Key, headers map[string][]byte, entries []catalog.Entry) error
	DropFragments(ctx context.Context, k catalog.Key, seqs []uint64) (int, error)
}

// Config is one check.
type Config struct {
	MediaDir string // <data-dir>/media
	Index    Index
	// Keys opens encrypted records to check them; nil checks checksums only (KeysErr says why
	// there are none, for the report).
	Keys     disk.Keys
	KeysErr  error
	Repair   bool
	Out      io.Writer               // one line per problem, then the summary
	Progress func(done, total int64) // bytes of segments read so far; nil: none
}

// Result counts what the check found and did.
type Result struct {
	Streams, Segments, Records int
	Bytes                      int64
	Problems                   int // each printed as a line
	Reindexed, Dropped         int // with Repair
	KeyProblems                int // records that could not be decrypted for want of a usable key
}

// record is one record found in the media.
type record struct {
	loc    catalog.Location
	sealed bool
	meta   []byte
	bad    error // damaged (checksum or authentication); nil: intact
	keyErr error // could not be decrypted for want of a key; not damage
}

// stream is what the media and the index hold of one stream.
type stream struct {
	key      catalog.Key
	records  map[uint64]*record // by seq
	segments map[uint64]bool    // segment numbers present
	dupes    []uint64           // seqs found in more than one record
}

type checker struct {
	cfg     Config
	res     Result
	streams map[catalog.Key]*stream
	done    int64
	total   int64
}

// Run checks (and with Repair, repairs) the data dir.
func Run(ctx context.Context, cfg Config) (Result, error) {
	c := &checker{cfg: cfg, streams: map[catalog.Key]*stream{}}
	if cfg.Keys == nil && cfg.KeysErr != nil {
		fmt.Fprintf(cfg.Out, "note: encrypted records are checked by their checksums only, not decrypted: %v\n", cfg.KeysErr)
	}
	paths, err := c.segmentPaths()
	if err != nil {
		return c.res, err
	}
	for _, p := range paths {
		if err := c.scan(ctx, p); err != nil {
			return c.res, err
		}
	}
	keys, err := cfg.Index.FragmentStreams(ctx)
	if err != nil {
		return c.res, err
	}
	for _, k := range keys {
		c.stream(k)
	}
	ordered := make([]*stream, 0, len(c.streams))
	for _, s := range c.streams {
		ordered = append(ordered, s)
	}
	slices.SortFunc(ordered, func(a, b *stream) int {
		return cmp.Or(cmp.Compare(a.key.Name, b.key.Name), cmp.Compare(a.key.CreatedMs, b.key.CreatedMs))
	})
	c.res.Streams = len(ordered)
	for _, s := range ordered {
		if err := c.check(ctx, s); err != nil {
			return c.res, err
		}
	}
	return c.res, nil
}

func (c *checker) stream(k catalog.Key) *stream {
	s := c.streams[k]
	if s == nil {
		s = &stream{key: k, records: map[uint64]*record{}, segments: map[uint64]bool{}}
		c.streams[k] = s
	}
	return s
}

func (c *checker) problem(s *stream, number string, format string, args ...any) {
	c.res.Problems++
	where := "stream " + s.key.Name
	if number != "" {
		where += ": fragment " + number
	}
	fmt.Fprintf(c.cfg.Out, "%s: %s\n", where, fmt.Sprintf(format, args...))
}

// segmentPaths lists every segment file under the media dir and adds up their sizes.
func (c *checker) segmentPaths() ([]string, error) {
	dirs, err := os.ReadDir(c.cfg.MediaDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(c.cfg.MediaDir, d.Name()))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if !strings.HasSuffix(f.Name(), ".seg") || !f.Type().IsRegular() {
				continue
			}
			if fi, err := f.Info(); err == nil {
				c.total += fi.Size()
			}
			out = append(out, filepath.Join(c.cfg.MediaDir, d.Name(), f.Name()))
		}
	}
	return out, nil
}

// scan walks one segment and files its records under their stream.
func (c *checker) scan(ctx context.Context, path string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	defer func() {
		c.done += fi.Size()
		if c.cfg.Progress != nil {
			c.cfg.Progress(c.done, c.total)
		}
	}()
	c.res.Segments++
	c.res.Bytes += fi.Size()
	var recs []disk.WalkedRecord
	w, err := disk.WalkSegment(path, func(r disk.WalkedRecord) error {
		recs = append(recs, r)
		return nil
	})
	rel, _ := filepath.Rel(c.cfg.MediaDir, path)
	if err != nil {
		c.res.Problems++
		fmt.Fprintf(c.cfg.Out, "segment %s: %v: none of its records can be read\n", rel, err)
		return nil
	}
	s := c.stream(w.Info.Key)
	s.segments[w.Info.Number] = true
	if w.Tail != nil {
		// A write cut short by a crash leaves such a tail; kvsd cuts it at its next start. It
		// is a problem only where an index entry points into it, which check reports.
		fmt.Fprintf(c.cfg.Out, "note: segment %s: %d bytes after its last whole record (%v)\n", rel, fi.Size()-w.End, w.Tail)
	}
	for _, r := range recs {
		c.res.Records++
		rec := &record{loc: r.Loc, sealed: r.Sealed, meta: r.Meta, bad: r.Err}
		if rec.bad == nil && r.Sealed && c.cfg.Keys != nil {
			if _, err := disk.Unseal(ctx, c.cfg.Keys, w.Info, r.ScannedRecord); err != nil {
				if errors.Is(err, keys.ErrKey) || !errors.Is(err, fragstore.ErrCorrupt) {
					rec.keyErr = err
				} else {
					rec.bad = err
				}
			}
		}
		if old := s.records[r.Seq]; old != nil {
			s.dupes = append(s.dupes, r.Seq)
			if old.bad == nil {
				continue // keep the intact copy
			}
		}
		s.records[r.Seq] = rec
	}
	return nil
}

// check compares one stream's index with its media, reports, and repairs.
func (c *checker) check(ctx context.Context, s *stream) error {
	entries, err := c.entries(ctx, s.key)
	if err != nil {
		return err
	}
	number := func(seq uint64) string { return fragment.FormatNumber(s.key.CreatedMs, seq) }
	if len(entries) == 0 && len(s.records) > 0 {
		if last, _, _ := c.cfg.Index.LastFragment(ctx, s.key); last == 0 {
			c.problem(s, "", "media of %d fragments (created %d) that the catalog holds nothing for: a stream deleted, or created after the catalog's backup; kvsd's next start removes it", len(s.records), s.key.CreatedMs)
		}
	}
	for _, seq := range s.dupes {
		c.problem(s, number(seq), "stored in more than one record")
	}
	var drop []uint64
	indexed := make(map[uint64]bool, len(entries))
	var prev *fragment.Fragment
	for _, f := range entries {
		indexed[f.Seq] = true
		if prev != nil && cmpLoc(prev.Location, f.Location) >= 0 {
			c.problem(s, f.Number, "out of order: its media lies before fragment %s's (segment %d offset %d)", prev.Number, f.Location.Segment, f.Location.Offset)
		}
		prev = f
		r := s.records[f.Seq]
		switch {
		case !s.segments[f.Location.Segment]:
			c.problem(s, f.Number, "index entry without media: segment %d is missing", f.Location.Segment)
			drop = append(drop, f.Seq)
		case r == nil || r.loc != f.Location:
			c.problem(s, f.Number, "index entry without media: no whole record at segment %d offset %d (truncated or overwritten)", f.Location.Segment, f.Location.Offset)
			drop = append(drop, f.Seq)
		case r.bad != nil:
			c.problem(s, f.Number, "media damaged: %v", r.bad)
			drop = append(drop, f.Seq)
		case r.keyErr != nil:
			c.res.KeyProblems++
			c.problem(s, f.Number, "media cannot be decrypted: %v (not damage: the right key reads it)", r.keyErr)
		}
	}
	var add []catalog.Entry
	headers := map[string][]byte{}
	seqs := make([]uint64, 0, len(s.records))
	for seq := range s.records {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	for _, seq := range seqs {
		r := s.records[seq]
		if indexed[seq] {
			continue
		}
		if r.bad != nil {
			// Nothing refers to it (an entry dropped by an earlier repair, or a write cut
			// short): worth knowing, nothing to repair.
			fmt.Fprintf(c.cfg.Out, "note: stream %s: fragment %s: damaged record that no index entry uses: %v\n", s.key.Name, number(seq), r.bad)
			continue
		}
		f, header, err := fragstore.DecodeMeta(r.meta)
		if err != nil || f.Seq != seq {
			c.problem(s, number(seq), "media without index entry, whose self-description does not read: %v", err)
			continue
		}
		c.problem(s, number(seq), "media without index entry (segment %d offset %d)", r.loc.Segment, r.loc.Offset)
		f.Location = r.loc
		add = append(add, catalog.Entry{Fragment: f, Location: r.loc})
		headers[f.HeaderID] = header
	}
	if !c.cfg.Repair {
		return nil
	}
	if len(drop) > 0 {
		n, err := c.cfg.Index.DropFragments(ctx, s.key, drop)
		if err != nil {
			return fmt.Errorf("stream %s: drop entries: %w", s.key.Name, err)
		}
		c.res.Dropped += n
		for _, seq := range drop {
			fmt.Fprintf(c.cfg.Out, "repaired: stream %s: fragment %s: index entry dropped (its media stays where it was)\n", s.key.Name, number(seq))
		}
	}
	if len(add) > 0 && (len(entries) > 0 || c.known(ctx, s.key)) {
		if err := c.cfg.Index.Import(ctx, s.key, headers, add); err != nil {
			return fmt.Errorf("stream %s: re-index: %w", s.key.Name, err)
		}
		c.res.Reindexed += len(add)
		for _, e := range add {
			fmt.Fprintf(c.cfg.Out, "repaired: stream %s: fragment %s: re-indexed\n", s.key.Name, e.Fragment.Number)
		}
	}
	return nil
}

// known reports whether the index holds anything for k (its LastFragment at least): media of a
// stream the catalog never knew is not indexed, since no stream record would reach it.
func (c *checker) known(ctx context.Context, k catalog.Key) bool {
	last, _, err := c.cfg.Index.LastFragment(ctx, k)
	return err == nil && last > 0
}

// entries lists every index entry of k in Seq order.
func (c *checker) entries(ctx context.Context, k catalog.Key) ([]*fragment.Fragment, error) {
	var out []*fragment.Fragment
	after := uint64(0)
	for {
		page, err := c.cfg.Index.FragmentsAfter(ctx, k, after, 10000)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) < 10000 {
			return out, nil
		}
		after = page[len(page)-1].Seq
	}
}

func cmpLoc(a, b catalog.Location) int {
	return cmp.Or(cmp.Compare(a.Segment, b.Segment), cmp.Compare(a.Offset, b.Offset))
}
