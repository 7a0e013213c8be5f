package disk

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"

	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/keys"
)

// Append writes rec at the end of k's open segment (starting a new one when the open one is
// full or spans too long) and syncs it.
//
// The record goes out in one pwrite of whole blocks from an aligned buffer, to a file opened
// with O_DIRECT|O_DSYNC where the file system allows it: the media bypasses the page cache,
// whose copy and writeback cost more CPU than anything else on the ingest path, and the write
// returns once durable, without a separate fdatasync. Readers read the file normally.
func (m *Media) Append(ctx context.Context, k fragstore.Key, rec fragstore.Record) (fragstore.Location, error) {
	p, err := m.Prepare(ctx, k, rec)
	if err != nil {
		return fragstore.Location{}, err
	}
	return m.AppendPrepared(ctx, k, p)
}

var _ fragstore.Preparer = (*Media)(nil)

// prepared is a record assembled in its stage ahead of its Append: header, data (sealed, or
// copied in clear), meta and fill, exactly the bytes Append writes, unless the data key
// changed in between (sealed with another key than the segment's), which AppendPrepared
// catches and repairs by sealing again.
type prepared struct {
	k      fragstore.Key
	rec    fragstore.Record
	h      recHeader
	buf    *stage
	padded int64
	sealed bool          // the data field and the header are final for dk
	dk     *keys.DataKey // the key the data was sealed with; nil in clear
}

// Release returns the stage to the pool.
func (p *prepared) Release() {
	if p.buf != nil {
		putStage(p.buf)
		p.buf = nil
	}
}

// Prepare assembles rec in a stage without taking the stream's lock, so that it may run while
// the stream's previous record is being written: the seal, the CRCs and the copies are most of
// an Append's CPU. It seals with the data key of the stream's newest segment, which the record
// will almost always get; the first record a stream writes in this process is sealed by
// AppendPrepared, once its segment has its key.
func (m *Media) Prepare(ctx context.Context, k fragstore.Key, rec fragstore.Record) (fragstore.PreparedRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if int64(len(rec.Data)) > maxDataLen || len(rec.Meta) > maxMetaLen {
		return nil, fmt.Errorf("disk media: record of %d+%d bytes is too large", len(rec.Data), len(rec.Meta))
	}
	sf, err := m.files(k)
	if err != nil {
		return nil, err
	}
	p := &prepared{k: k, rec: rec}
	p.h = recHeader{version: versionClear, seq: rec.Seq, dataLen: int64(len(rec.Data)), metaLen: int64(len(rec.Meta)), metaCRC: crc(rec.Meta)}
	if m.keys != nil {
		p.h.version = versionEncrypted // every segment this Media starts is, so cur is too
	}
	stored := int(p.h.stored())
	total := recHeaderLen + stored + len(rec.Meta)
	p.padded = alignUp(int64(total))
	p.buf = getStage(int(p.padded))
	b := p.buf.b[:p.padded]
	copy(b[recHeaderLen+stored:], rec.Meta)
	clear(b[total:])
	if m.keys == nil {
		copy(b[recHeaderLen:], rec.Data)
		p.finish(nil)
	} else if dk := sf.lastKey.Load(); dk != nil {
		if err := p.seal(dk); err != nil {
			p.Release()
			return nil, err
		}
	}
	return p, nil
}

// seal encrypts the record's data into the stage with dk and completes the header.
func (p *prepared) seal(dk *keys.DataKey) error {
	data := p.buf.b[recHeaderLen : recHeaderLen+p.h.stored()]
	// Sealed straight into the stage: encryption replaces the copy a record in clear needs.
	nonce := data[:nonceLen]
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	dk.AEAD.Seal(data[nonceLen:nonceLen], nonce, p.rec.Data, recordAAD(p.k, p.rec.Seq))
	p.finish(dk)
	return nil
}

// finish checksums the data field in the stage and encodes the header before it.
func (p *prepared) finish(dk *keys.DataKey) {
	b := p.buf.b
	p.h.dataCRC = crc(b[recHeaderLen : recHeaderLen+p.h.stored()])
	p.h.encode(b)
	p.sealed, p.dk = true, dk
}

// AppendPrepared is Append of a record Prepare made: under the stream's lock only the segment
// choice, the write and the bookkeeping remain. The record is sealed again when the segment it
// goes to has another data key than the one Prepare used (a new segment after the stream's key
// was renewed), so every record is sealed with the key its segment header names.
func (m *Media) AppendPrepared(ctx context.Context, k fragstore.Key, pr fragstore.PreparedRecord) (fragstore.Location, error) {
	p, ok := pr.(*prepared)
	if !ok || p.buf == nil || p.k != k {
		return fragstore.Location{}, fmt.Errorf("disk media: append to %s: not a pending record this Media prepared for it", k.Name)
	}
	defer p.Release()
	if err := ctx.Err(); err != nil {
		return fragstore.Location{}, err
	}
	sf, err := m.files(k)
	if err != nil {
		return fragstore.Location{}, err
	}
	rec := p.rec
	sf.mu.Lock()
	defer sf.mu.Unlock()
	if m.closed.Load() {
		return fragstore.Location{}, errClosed
	}
	if sf.cur != nil && m.mustRoll(sf, rec, p.padded) {
		sf.closeCur()
	}
	if sf.cur == nil {
		if err := m.startSegment(ctx, k, sf, rec); err != nil {
			return fragstore.Location{}, fmt.Errorf("disk media: new segment for %s: %w", k.Name, err)
		}
	}
	if !p.sealed || p.dk != sf.dk {
		if err := p.seal(sf.dk); err != nil {
			return fragstore.Location{}, err
		}
	}
	off := sf.size
	_, err = sf.cur.WriteAt(p.buf.b[:p.padded], off) // O_DSYNC: durable when it returns
	if err != nil {
		// Put the file back to its last good size and stop appending to it: whatever reached
		// the disk of this record is garbage no index will point at.
		_ = sf.cur.Truncate(off)
		sf.closeCur()
		return fragstore.Location{}, fmt.Errorf("disk media: append to segment %d of %s: %w", sf.seg, k.Name, err)
	}
	sf.size = off + p.padded
	m.used.Add(p.padded)
	if rec.Time.Before(sf.minT) {
		sf.minT = rec.Time
	}
	if rec.Time.After(sf.maxT) {
		sf.maxT = rec.Time
	}
	return fragstore.Location{Segment: sf.seg, Offset: off + recHeaderLen, Length: int64(len(rec.Data))}, nil
}

// mustRoll reports whether rec must go to a new segment: the open one would exceed the size
// limit (a single record larger than the limit still gets a segment of its own), or its
// records would span SegmentSpan of time, either way round in case the clock stepped back.
func (m *Media) mustRoll(sf *streamFiles, rec fragstore.Record, size int64) bool {
	if sf.size+size > m.size {
		return true
	}
	lo, hi := sf.minT, sf.maxT
	if rec.Time.Before(lo) {
		lo = rec.Time
	}
	if rec.Time.After(hi) {
		hi = rec.Time
	}
	return hi.Sub(lo) >= m.span
}

// startSegment creates the next segment of k: header written to a .tmp file and synced, then
// renamed into place and the directory synced, so a segment file always has its header and
// survives power loss once a record in it was acknowledged.
func (m *Media) startSegment(ctx context.Context, k fragstore.Key, sf *streamFiles, rec fragstore.Record) error {
	var dk *keys.DataKey
	if m.keys != nil {
		var err error
		if dk, err = m.keys.DataKey(ctx, k); err != nil {
			return err
		}
		if len(dk.Wrapped.KeyID) > keys.MaxKeyIDLen || len(dk.Wrapped.Blob) > keys.MaxWrappedLen {
			return fmt.Errorf("wrapped data key (key id %d bytes, %d bytes wrapped) exceeds what a segment header holds", len(dk.Wrapped.KeyID), len(dk.Wrapped.Blob))
		}
	}
	if !sf.ready {
		if err := m.prepareDir(k, sf); err != nil {
			return err
		}
	}
	n := max(rec.Seq, sf.maxSeg+1)
	name := path.Join(sf.dir, segName(n))
	f, err := m.root.OpenFile(name+".tmp", os.O_RDWR|os.O_CREATE|os.O_TRUNC|m.writeFlags, 0o600)
	if err != nil {
		return err
	}
	var wk *keys.Wrapped
	if dk != nil {
		wk = &dk.Wrapped
	}
	hdr := segmentHeader(k, n, wk)
	size := alignUp(int64(len(hdr)))
	buf := getStage(int(size))
	b := buf.b[:size]
	clear(b[copy(b, hdr):])
	_, err = f.WriteAt(b, 0)
	putStage(buf)
	if _, serr := m.root.Lstat(name); err == nil && serr == nil {
		err = fmt.Errorf("segment %s exists already", name) // never replace records
	}
	if err == nil {
		err = m.root.Rename(name+".tmp", name)
	}
	if err == nil {
		err = m.syncDir(sf.dir)
	}
	if err != nil {
		_ = f.Close()
		_ = m.root.Remove(name + ".tmp")
		return err
	}
	sf.cur, sf.seg, sf.size, sf.maxSeg, sf.dk = f, n, int64(len(b)), n, dk
	if dk != nil {
		sf.lastKey.Store(dk)
	}
	m.used.Add(int64(len(b)))
	sf.minT, sf.maxT = rec.Time, rec.Time
	return nil
}

// prepareDir creates k's directory if needed (syncing the root so that it survives) and finds
// the highest segment number already used, so that new segments number above it.
func (m *Media) prepareDir(k fragstore.Key, sf *streamFiles) error {
	err := m.root.Mkdir(sf.dir, 0o700)
	switch {
	case err == nil:
		if err := m.syncDir("."); err != nil {
			return err
		}
	case !errors.Is(err, fs.ErrExist):
		return err
	}
	segs, err := m.Segments(context.Background(), k)
	if err != nil {
		return err
	}
	sf.maxSeg = 0
	if len(segs) > 0 {
		sf.maxSeg = segs[len(segs)-1].Number
	}
	sf.ready = true
	return nil
}

func (m *Media) syncDir(dir string) error {
	d, err := m.root.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// TruncateAfter checks the record at loc, data and meta, and cuts its segment right after it.
func (m *Media) TruncateAfter(ctx context.Context, k fragstore.Key, loc fragstore.Location) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	sf, err := m.files(k)
	if err != nil {
		return 0, err
	}
	sf.mu.Lock()
	defer sf.mu.Unlock()
	f, err := m.root.OpenFile(m.segPath(k, loc.Segment), os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("%w: segment %d of %s is gone", fragstore.ErrNotFound, loc.Segment, k.Name)
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	info, err := readSegmentHeader(f)
	if err != nil {
		return 0, fmt.Errorf("segment %d of %s: %w", loc.Segment, k.Name, err)
	}
	// Checksums only, no decryption: recovery must not depend on the keys being at hand.
	h, _, _, err := readRecord(f, loc.Offset, loc.Length, true, nil)
	if err != nil {
		return 0, fmt.Errorf("segment %d of %s: %w", loc.Segment, k.Name, err)
	}
	end := info.recordEnd(loc.Offset + h.stored() + h.metaLen)
	fi, err := f.Stat()
	if err != nil || fi.Size() <= end {
		return 0, err
	}
	if err := f.Truncate(end); err != nil {
		return 0, err
	}
	m.used.Add(end - fi.Size())
	if err := datasync(f); err != nil {
		return 0, err
	}
	if sf.cur != nil && sf.seg == loc.Segment {
		sf.closeCur() // its size is stale now; the next Append starts afresh
	}
	return fi.Size() - end, nil
}

// RecordsAfter counts the records with whole headers after the one at loc in its segment and
// in k's segments numbered above it: what recovery would remove as never committed. Crash
// recovery uses it to tell a crash (a few records) from an older catalog restored over newer
// media (many), which it must not cut. It reads record headers only (36 bytes a record), so
// every start stays quick.
func (m *Media) RecordsAfter(ctx context.Context, k fragstore.Key, loc fragstore.Location) (int, error) {
	segs, err := m.Segments(ctx, k)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, seg := range segs {
		if seg.Number < loc.Segment {
			continue
		}
		f, err := m.root.Open(m.segPath(k, seg.Number))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return n, err
		}
		after := int64(-1) // every record of a later segment
		if seg.Number == loc.Segment {
			after = loc.Offset
		}
		n += countRecords(f, seg.Size, after)
		_ = f.Close()
	}
	return n, nil
}

// countRecords counts the records of the segment in r (size bytes) whose data starts after
// offset `after`, following record headers until one does not check out.
func countRecords(r io.ReaderAt, size, after int64) int {
	info, err := readSegmentHeader(r)
	if err != nil {
		return 0
	}
	n := 0
	for end := info.Size; end+recHeaderLen <= size; {
		var hb [recHeaderLen]byte
		if _, err := r.ReadAt(hb[:], end); err != nil {
			break
		}
		h, err := decodeRecHeader(hb[:])
		if err != nil {
			break
		}
		next := end + recHeaderLen + h.stored() + h.metaLen
		if next > size {
			break
		}
		if end+recHeaderLen > after {
			n++
		}
		end = info.recordEnd(next)
	}
	return n
}
