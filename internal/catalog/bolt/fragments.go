package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	bbolt "go.etcd.io/bbolt"
	bberrors "go.etcd.io/bbolt/errors"

	"github.com/kvsd/kvsd/internal/catalog"
	"github.com/kvsd/kvsd/internal/fragment"
)

// The fragment index (catalog.Index) lives in the catalog file, in bucket "fragments", one
// sub-bucket per stream Key named keyName(k) holding:
//
//	seq         8-byte seq                 -> entry (encodeEntry)
//	ptime       timeKey(producer ms, seq)  -> empty
//	stime       timeKey(server ms, seq)    -> empty
//	headers     header id                  -> MKV header bytes
//	headerrefs  header id                  -> 8-byte count of entries using it
//	segments    8-byte segment number      -> 8-byte count of entries in it
//	last        (a key, not a bucket)      -> encodeLast: highest seq ever put and its Location
//
// The counts make expiry O(entries removed): a segment or header whose count drops to zero is
// free, with no scan of what remains. docs/format/catalog.md has the details.
var (
	bucketFragments = []byte("fragments")
	bucketSeq       = []byte("seq")
	bucketProducer  = []byte("ptime")
	bucketServer    = []byte("stime")
	bucketHeaders   = []byte("headers")
	bucketHeaderRef = []byte("headerrefs")
	bucketSegments  = []byte("segments")
	keyLast         = []byte("last")
)

// appendFill packs pages fully: seq and time keys arrive (almost) in increasing order, so the
// default half-full page splits would double the file for nothing.
const appendFill = 0.95

// Fragments returns d in its catalog.Index role, for callers that want to say so.
func (d *DB) Fragments() *DB { return d }

func fragNotFound(k catalog.Key, what string) error {
	return fmt.Errorf("%w: %s of stream %s", catalog.ErrFragmentNotFound, what, k.Name)
}

// streamBuckets are the sub-buckets of one Key.
type streamBuckets struct {
	key                           *bbolt.Bucket
	seq, producer, server         *bbolt.Bucket
	headers, headerRefs, segments *bbolt.Bucket
}

// openStream returns k's buckets, or nil when the index holds nothing for k.
func openStream(tx *bbolt.Tx, k catalog.Key) *streamBuckets {
	kb := tx.Bucket(bucketFragments).Bucket(keyName(k))
	if kb == nil {
		return nil
	}
	return &streamBuckets{key: kb, seq: kb.Bucket(bucketSeq), producer: kb.Bucket(bucketProducer), server: kb.Bucket(bucketServer),
		headers: kb.Bucket(bucketHeaders), headerRefs: kb.Bucket(bucketHeaderRef), segments: kb.Bucket(bucketSegments)}
}

// createStream returns k's buckets for writing, creating what is missing.
func createStream(tx *bbolt.Tx, k catalog.Key) (*streamBuckets, error) {
	kb, err := tx.Bucket(bucketFragments).CreateBucketIfNotExists(keyName(k))
	if err != nil {
		return nil, err
	}
	s := &streamBuckets{key: kb}
	for _, p := range []struct {
		b    **bbolt.Bucket
		name []byte
	}{{&s.seq, bucketSeq}, {&s.producer, bucketProducer}, {&s.server, bucketServer},
		{&s.headers, bucketHeaders}, {&s.headerRefs, bucketHeaderRef}, {&s.segments, bucketSegments}} {
		if *p.b, err = kb.CreateBucketIfNotExists(p.name); err != nil {
			return nil, err
		}
	}
	s.seq.FillPercent, s.producer.FillPercent, s.server.FillPercent = appendFill, appendFill, appendFill
	return s, nil
}

func (s *streamBuckets) timeline(kind catalog.TimeKind) *bbolt.Bucket {
	if kind == catalog.ServerTime {
		return s.server
	}
	return s.producer
}

// addCount adds delta to the 8-byte counter under key and returns the new value; at zero the
// key is deleted.
func addCount(b *bbolt.Bucket, key []byte, delta int64) (uint64, error) {
	var n uint64
	if v := b.Get(key); len(v) == 8 {
		n = binary.BigEndian.Uint64(v)
	}
	n = uint64(int64(n) + delta)
	if int64(n) <= 0 {
		return 0, b.Delete(key)
	}
	return n, b.Put(key, u64(n))
}

func checkEntry(k catalog.Key, f *fragment.Fragment) error {
	switch {
	case f.Seq == 0:
		return fmt.Errorf("index %s: fragment sequence 0", k.Name)
	case f.Number != fragment.FormatNumber(k.CreatedMs, f.Seq):
		return fmt.Errorf("index %s: fragment number %q is not FormatNumber(%d, %d)", k.Name, f.Number, k.CreatedMs, f.Seq)
	case f.HeaderID == "":
		return fmt.Errorf("index %s: fragment %d has no header id", k.Name, f.Seq)
	}
	return nil
}

// PutFragment stores one fragment entry. It commits through bbolt's Batch, so that the Puts of
// many streams arriving together share one commit and its fsyncs.
func (d *DB) PutFragment(ctx context.Context, k catalog.Key, f *fragment.Fragment, loc catalog.Location, header []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkEntry(k, f); err != nil {
		return err
	}
	v := encodeEntry(f, loc)
	// Batch may run the function more than once (after another one in the batch failed); it
	// only reads its arguments, so every run does the same.
	return d.db.Batch(func(tx *bbolt.Tx) error {
		s, err := createStream(tx, k)
		if err != nil {
			return err
		}
		return putEntry(s, k, f, loc, v, header)
	})
}

// PutFragments stores entries of any streams in one write transaction, all or none. fragstore
// gathers them (its group commit), so this does not go through Batch: there is nothing left to
// wait for.
func (d *DB) PutFragments(ctx context.Context, puts []catalog.Put) error {
	if err := ctx.Err(); err != nil || len(puts) == 0 {
		return err
	}
	vals := make([][]byte, len(puts))
	for i, p := range puts {
		if err := checkEntry(p.Key, p.Fragment); err != nil {
			return err
		}
		vals[i] = encodeEntry(p.Fragment, p.Location)
	}
	return d.db.Update(func(tx *bbolt.Tx) error {
		var s *streamBuckets
		for i, p := range puts {
			if i == 0 || p.Key != puts[i-1].Key { // a stream's entries usually come together
				var err error
				if s, err = createStream(tx, p.Key); err != nil {
					return err
				}
			}
			if err := putEntry(s, p.Key, p.Fragment, p.Location, vals[i], p.Header); err != nil {
				return err
			}
		}
		return nil
	})
}

func putEntry(s *streamBuckets, k catalog.Key, f *fragment.Fragment, loc catalog.Location, v, header []byte) error {
	sk := u64(f.Seq)
	if s.seq.Get(sk) != nil {
		return fmt.Errorf("index %s: fragment %d is stored already", k.Name, f.Seq)
	}
	id := []byte(f.HeaderID)
	if s.headers.Get(id) == nil {
		if len(header) == 0 {
			return fmt.Errorf("index %s: fragment %d names header %q, which is not stored, and brings none", k.Name, f.Seq, f.HeaderID)
		}
		if err := s.headers.Put(id, header); err != nil {
			return err
		}
	}
	if _, err := addCount(s.headerRefs, id, 1); err != nil {
		return err
	}
	if _, err := addCount(s.segments, u64(loc.Segment), 1); err != nil {
		return err
	}
	for _, p := range []struct {
		b   *bbolt.Bucket
		key []byte
		val []byte
	}{
		{s.seq, sk, v},
		{s.producer, timeKey(f.ProducerTime.UnixMilli(), f.Seq), []byte{}},
		{s.server, timeKey(f.ServerTime.UnixMilli(), f.Seq), []byte{}},
	} {
		if err := p.b.Put(p.key, p.val); err != nil {
			return err
		}
	}
	last, _, err := decodeLast(s.key.Get(keyLast))
	if err != nil {
		return err
	}
	if f.Seq > last {
		return s.key.Put(keyLast, encodeLast(f.Seq, loc))
	}
	return nil
}

// Import stores many entries of one stream in a single commit, without Batch: for bulk loads
// (an index rebuilt from media, benchmarks). headers maps every HeaderID used to its bytes.
func (d *DB) Import(ctx context.Context, k catalog.Key, headers map[string][]byte, entries []catalog.Entry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, e := range entries {
		if err := checkEntry(k, e.Fragment); err != nil {
			return err
		}
	}
	return d.db.Update(func(tx *bbolt.Tx) error {
		s, err := createStream(tx, k)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := putEntry(s, k, e.Fragment, e.Location, encodeEntry(e.Fragment, e.Location), headers[e.Fragment.HeaderID]); err != nil {
				return err
			}
		}
		return nil
	})
}

// GetFragment returns one entry.
func (d *DB) GetFragment(ctx context.Context, k catalog.Key, seq uint64) (*fragment.Fragment, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var f *fragment.Fragment
	err := d.db.View(func(tx *bbolt.Tx) error {
		s := openStream(tx, k)
		if s == nil || s.seq == nil {
			return fragNotFound(k, fmt.Sprintf("fragment %d", seq))
		}
		v := s.seq.Get(u64(seq))
		if v == nil {
			return fragNotFound(k, fmt.Sprintf("fragment %d", seq))
		}
		var err error
		f, _, err = decodeEntry(k, seq, v)
		return err
	})
	return f, err
}

// GetHeader returns a copy of the header stored under id.
func (d *DB) GetHeader(ctx context.Context, k catalog.Key, id string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var h []byte
	err := d.db.View(func(tx *bbolt.Tx) error {
		s := openStream(tx, k)
		if s != nil && s.headers != nil {
			if v := s.headers.Get([]byte(id)); v != nil {
				h = bytes.Clone(v)
				return nil
			}
		}
		return fragNotFound(k, fmt.Sprintf("header %q", id))
	})
	return h, err
}

// LastFragment returns the highest seq ever put for k and its Location.
func (d *DB) LastFragment(ctx context.Context, k catalog.Key) (uint64, catalog.Location, error) {
	if err := ctx.Err(); err != nil {
		return 0, catalog.Location{}, err
	}
	var seq uint64
	var loc catalog.Location
	err := d.db.View(func(tx *bbolt.Tx) error {
		if s := openStream(tx, k); s != nil {
			var err error
			seq, loc, err = decodeLast(s.key.Get(keyLast))
			return err
		}
		return nil
	})
	return seq, loc, err
}

// ListFragments walks the kind timeline from the later of fromMs and after, looking each
// key's entry up by seq.
func (d *DB) ListFragments(ctx context.Context, k catalog.Key, kind catalog.TimeKind, fromMs, toMs int64, after *catalog.Position, limit int) ([]*fragment.Fragment, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if limit < 1 || fromMs > toMs {
		return nil, false, nil
	}
	var out []*fragment.Fragment
	more := false
	err := d.db.View(func(tx *bbolt.Tx) error {
		s := openStream(tx, k)
		if s == nil || s.seq == nil {
			return nil
		}
		start := timeKey(fromMs, 0)
		var skip []byte
		if after != nil {
			if a := timeKey(after.Ms, after.Seq); bytes.Compare(a, start) >= 0 {
				start, skip = a, a
			}
		}
		c := s.timeline(kind).Cursor()
		for key, _ := c.Seek(start); key != nil; key, _ = c.Next() {
			if skip != nil && bytes.Equal(key, skip) {
				continue
			}
			if timeKeyMs(key) > toMs {
				break
			}
			if len(out) == limit {
				more = true
				break
			}
			f, err := d.entryAt(s, k, key)
			if err != nil {
				return err
			}
			out = append(out, f)
		}
		return nil
	})
	return out, more, err
}

// entryAt decodes the entry a timeline key points at.
func (d *DB) entryAt(s *streamBuckets, k catalog.Key, key []byte) (*fragment.Fragment, error) {
	seq := binary.BigEndian.Uint64(key[8:])
	v := s.seq.Get(key[8:])
	if v == nil {
		return nil, fmt.Errorf("index %s: timeline names fragment %d, which has no entry", k.Name, seq)
	}
	f, _, err := decodeEntry(k, seq, v)
	return f, err
}

// FragmentsAfter walks the seq bucket.
func (d *DB) FragmentsAfter(ctx context.Context, k catalog.Key, afterSeq uint64, limit int) ([]*fragment.Fragment, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit < 1 || afterSeq == math.MaxUint64 {
		return nil, nil
	}
	var out []*fragment.Fragment
	err := d.db.View(func(tx *bbolt.Tx) error {
		s := openStream(tx, k)
		if s == nil || s.seq == nil {
			return nil
		}
		c := s.seq.Cursor()
		for key, v := c.Seek(u64(afterSeq + 1)); key != nil && len(out) < limit; key, v = c.Next() {
			f, _, err := decodeEntry(k, binary.BigEndian.Uint64(key), v)
			if err != nil {
				return err
			}
			out = append(out, f)
		}
		return nil
	})
	return out, err
}

// SeqAt finds the latest start ≤ ms; among the entries starting then, the first whose duration
// reaches past ms wins; otherwise the first entry starting after ms.
func (d *DB) SeqAt(ctx context.Context, k catalog.Key, kind catalog.TimeKind, ms int64) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var seq uint64
	err := d.db.View(func(tx *bbolt.Tx) error {
		s := openStream(tx, k)
		if s == nil || s.seq == nil {
			return fragNotFound(k, "fragment at that time")
		}
		c := s.timeline(kind).Cursor()
		var key []byte
		if ms == math.MaxInt64 {
			key, _ = c.Last()
		} else if key, _ = c.Seek(timeKey(ms+1, 0)); key == nil {
			key, _ = c.Last()
		} else {
			key, _ = c.Prev()
		}
		if key != nil && timeKeyMs(key) <= ms {
			start := timeKeyMs(key)
			for key, _ = c.Seek(timeKey(start, 0)); key != nil && timeKeyMs(key) == start; key, _ = c.Next() {
				f, err := d.entryAt(s, k, key)
				if err != nil {
					return err
				}
				if start+f.Duration.Milliseconds() > ms {
					seq = f.Seq
					return nil
				}
			}
		} else if key == nil {
			key, _ = c.First() // empty before ms (or empty altogether)
		}
		// The first entry starting after ms.
		for ; key != nil && timeKeyMs(key) <= ms; key, _ = c.Next() {
		}
		if key == nil {
			return fragNotFound(k, "fragment at or after that time")
		}
		seq = binary.BigEndian.Uint64(key[8:])
		return nil
	})
	return seq, err
}

// ExpireFragments removes the oldest entries by server time. A read transaction looks first:
// most sweeps find nothing to remove, and even an empty write commit would cost fsyncs.
func (d *DB) ExpireFragments(ctx context.Context, k catalog.Key, cutoffMs int64, limit int) (int, []uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	if limit < 1 {
		return 0, nil, nil
	}
	due := false
	if err := d.db.View(func(tx *bbolt.Tx) error {
		if s := openStream(tx, k); s != nil && s.server != nil {
			key, _ := s.server.Cursor().First()
			due = key != nil && timeKeyMs(key) < cutoffMs
		}
		return nil
	}); err != nil || !due {
		return 0, nil, err
	}
	var removed int
	var freed []uint64
	err := d.db.Batch(func(tx *bbolt.Tx) error {
		removed, freed = 0, nil // Batch may run this more than once
		s := openStream(tx, k)
		if s == nil || s.server == nil {
			return nil
		}
		var keys [][]byte
		c := s.server.Cursor()
		for key, _ := c.First(); key != nil && timeKeyMs(key) < cutoffMs && len(keys) < limit; key, _ = c.Next() {
			keys = append(keys, bytes.Clone(key)) // deleting while a cursor walks can skip keys
		}
		for _, key := range keys {
			f, err := expireEntry(s, k, key)
			if err != nil {
				return err
			}
			removed++
			if f != nil {
				freed = append(freed, *f)
			}
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return removed, freed, nil
}

// expireEntry removes the entry a server-time key names, and returns its segment if no other
// entry uses it now.
func expireEntry(s *streamBuckets, k catalog.Key, key []byte) (*uint64, error) {
	seq := binary.BigEndian.Uint64(key[8:])
	if err := s.server.Delete(key); err != nil {
		return nil, err
	}
	v := s.seq.Get(key[8:])
	if v == nil {
		return nil, nil // a dangling timeline key: removing it was all there was to do
	}
	f, loc, err := decodeEntry(k, seq, v)
	if err != nil {
		return nil, err
	}
	if err := s.producer.Delete(timeKey(f.ProducerTime.UnixMilli(), seq)); err != nil {
		return nil, err
	}
	if err := s.seq.Delete(key[8:]); err != nil {
		return nil, err
	}
	id := []byte(f.HeaderID)
	if n, err := addCount(s.headerRefs, id, -1); err != nil {
		return nil, err
	} else if n == 0 {
		if err := s.headers.Delete(id); err != nil {
			return nil, err
		}
	}
	n, err := addCount(s.segments, u64(loc.Segment), -1)
	if err != nil || n > 0 {
		return nil, err
	}
	return &loc.Segment, nil
}

// DropFragments removes the entries of k with these Seqs, in one commit, whatever their times:
// `kvsd fsck --repair` drops entries whose media is gone or damaged. Seqs it does not hold are
// skipped. It returns how many it removed. LastFragment stays as it was (sequences never go
// back), and headers and segments no entry uses any more are released as by expiry.
func (d *DB) DropFragments(ctx context.Context, k catalog.Key, seqs []uint64) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	removed := 0
	err := d.db.Update(func(tx *bbolt.Tx) error {
		removed = 0
		s := openStream(tx, k)
		if s == nil || s.seq == nil {
			return nil
		}
		for _, seq := range seqs {
			v := s.seq.Get(u64(seq))
			if v == nil {
				continue
			}
			f, _, err := decodeEntry(k, seq, v)
			if err != nil {
				return err
			}
			if _, err := expireEntry(s, k, timeKey(f.ServerTime.UnixMilli(), seq)); err != nil {
				return err
			}
			removed++
		}
		return nil
	})
	return removed, err
}

// LiveSegments lists k's live segments: those with a non-zero count.
func (d *DB) LiveSegments(ctx context.Context, k catalog.Key) ([]uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []uint64
	err := d.db.View(func(tx *bbolt.Tx) error {
		s := openStream(tx, k)
		if s == nil || s.segments == nil {
			return nil
		}
		return s.segments.ForEach(func(key, _ []byte) error {
			out = append(out, binary.BigEndian.Uint64(key))
			return nil
		})
	})
	return out, err
}

// DeleteFragments drops k's bucket, entries, headers and last seq alike.
func (d *DB) DeleteFragments(ctx context.Context, k catalog.Key) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return d.db.Update(func(tx *bbolt.Tx) error {
		err := tx.Bucket(bucketFragments).DeleteBucket(keyName(k))
		if errors.Is(err, bberrors.ErrBucketNotFound) {
			return nil
		}
		return err
	})
}

// FragmentStreams lists the Keys with a bucket in the index.
func (d *DB) FragmentStreams(ctx context.Context) ([]catalog.Key, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []catalog.Key
	err := d.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketFragments).ForEachBucket(func(name []byte) error {
			k, ok := parseKeyName(name)
			if !ok {
				return fmt.Errorf("fragment index: bucket %q is not named <createdMs>_<stream name>", name)
			}
			out = append(out, k)
			return nil
		})
	})
	return out, err
}
