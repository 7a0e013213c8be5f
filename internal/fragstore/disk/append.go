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
	if err := ctx.Err(); err != nil {
		return fragstore.Location{}, err
	}
	if int64(len(rec.Data)) > maxDataLen || len(rec.Meta) > maxMetaLen {
		return fragstore.Location{}, fmt.Errorf("disk media: record of %d+%d bytes is too large", len(rec.Data), len(rec.Meta))
	}
	sf, err := m.files(k)
	if err != nil {
		return fragstore.Location{}, err
	}
	sf.mu.Lock()
	defer sf.mu.Unlock()
	if m.closed.Load() {
		return fragstore.Location{}, errClosed
	}
	h := recHeader{version: versionClear, seq: rec.Seq, dataLen: int64(len(rec.Data)), metaLen: int64(len(rec.Meta)), metaCRC: crc(rec.Meta)}
	if m.keys != nil {
		h.version = versionEncrypted // every segment this Media starts is, so cur is too
	}
	stored := int(h.stored())
	total := recHeaderLen + stored + len(rec.Meta)
	padded := alignUp(int64(total))
	if sf.cur != nil && m.mustRoll(sf, rec, padded) {
		sf.closeCur()
	}
	if sf.cur == nil {
		if err := m.startSegment(ctx, k, sf, rec); err != nil {
			return fragstore.Location{}, fmt.Errorf("disk media: new segment for %s: %w", k.Name, err)
		}
	}
	off := sf.size
	buf := getStage(int(padded))
	b := buf.b[:padded]
	data := b[recHeaderLen : recHeaderLen+stored]
	if sf.dk != nil {
		// Sealed straight into the stage: encryption replaces the copy a record in clear needs.
		nonce := data[:nonceLen]
		if _, err := rand.Read(nonce); err != nil {
			putStage(buf)
			return fragstore.Location{}, err
		}
		sf.dk.AEAD.Seal(data[nonceLen:nonceLen], nonce, rec.Data, recordAAD(k, rec.Seq))
	} else {
		copy(data, rec.Data)
	}
	h.dataCRC = crc(data)
	h.encode(b)
	copy(b[recHeaderLen+stored:], rec.Meta)
	clear(b[total:])
	_, err = sf.cur.WriteAt(b, off) // O_DSYNC: durable when it returns
	putStage(buf)
	if err != nil {
		// Put the file back to its last good size and stop appending to it: whatever reached
		// the disk of this record is garbage no index will point at.
		_ = sf.cur.Truncate(off)
		sf.closeCur()
		return fragstore.Location{}, fmt.Errorf("disk media: append to segment %d of %s: %w", sf.seg, k.Name, err)
	}
	sf.size = off + padded
	m.used.Add(padded)
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
