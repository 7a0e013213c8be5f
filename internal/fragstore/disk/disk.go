// Package disk is the embedded fragstore.Media: each stream's fragments are appended to segment
// files under one media directory, synced before Append returns.
//
// Layout (docs/format/media.md has the byte format):
//
//	<Dir>/<createdMs>_<name>/<20-digit segment number>.seg
//
// Names too long for one path element (KVS allows 256 characters) are shortened and suffixed
// with a hash of the full name; the segment headers always carry the full name. A segment rolls
// when its records would span SegmentSpan of server time or exceed SegmentSize, so retention
// frees space by deleting whole files soon after their fragments expire. A new segment is
// numbered by the sequence of its first record (or one past the previous segment, if higher),
// so file names sort in fragment order and point at the fragments they hold.
//
// Every new file is written as <name>.tmp, synced, renamed and its directory synced, so a crash
// never leaves a segment without its header; Open deletes leftover .tmp files.
package disk

import (
	"context"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/keys"
)

// Defaults of Config.
const (
	DefaultSegmentSpan = 30 * time.Second
	DefaultSegmentSize = 256 << 20
)

// maxDirName keeps a stream directory within the 255-byte limit of common file systems.
const maxDirName = 200

var _ fragstore.Media = (*Media)(nil)

var errClosed = errors.New("disk media: closed")

// Config says where and how Media stores segments.
type Config struct {
	Dir         string        // media root, e.g. <data-dir>/media; created if missing
	Logger      *slog.Logger  // nil: discard
	SegmentSpan time.Duration // 0: DefaultSegmentSpan
	SegmentSize int64         // 0: DefaultSegmentSize
	// Buffered writes segments through the page cache even where O_DIRECT works (tests use it
	// to cover the path taken on file systems without O_DIRECT, such as tmpfs).
	Buffered bool
	// Keys encrypts new records with each stream's data key (keys.Ring); segments of version 3
	// need it to be read. nil writes records in clear (version 2): benchmarks compare the two.
	Keys Keys
}

// Keys hands out data keys (keys.Ring): a stream's current one for new segments, and the one a
// segment header names for reading it.
type Keys interface {
	DataKey(ctx context.Context, k fragstore.Key) (*keys.DataKey, error)
	Open(ctx context.Context, w keys.Wrapped) (cipher.AEAD, error)
}

// Media is the disk fragstore.Media. It is safe for concurrent use.
type Media struct {
	root *os.Root
	log  *slog.Logger
	keys Keys // nil: records in clear
	span time.Duration
	size int64

	writeFlags int // open flags of segment files being written: oDSync, and oDirect if it works

	closed atomic.Bool  // read by writers that hold a streamFiles lock, so not under mu
	used   atomic.Int64 // bytes of all segment files: Usage

	mu      sync.Mutex                     // guards streams; taken before any streamFiles.mu
	streams map[fragstore.Key]*streamFiles // never shrinks: see fragstore's streamState
}

// streamFiles is one stream's append state; mu serialises its writers (Append, deletions,
// truncation). Reads open the segment file by name and need no lock.
type streamFiles struct {
	mu     sync.Mutex
	dir    string
	ready  bool   // dir exists and maxSeg is known
	maxSeg uint64 // highest segment number in use or used
	cur    *os.File
	seg    uint64        // cur's number
	dk     *keys.DataKey // cur's data key (the one its header names); nil: in clear
	size   int64         // cur's size: where the next record goes
	minT   time.Time
	maxT   time.Time

	// lastKey is the data key of the newest segment started: Prepare seals with it without
	// taking mu, which every write holds.
	lastKey atomic.Pointer[keys.DataKey]
}

// Open opens (creating it if needed) the media root and deletes temporary files a crash left.
func Open(cfg Config) (*Media, error) {
	if cfg.Dir == "" {
		return nil, errors.New("disk media: Config.Dir is empty")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("disk media: %w", err)
	}
	root, err := os.OpenRoot(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("disk media: %w", err)
	}
	m := &Media{root: root, log: cfg.Logger, keys: cfg.Keys, span: cfg.SegmentSpan, size: cfg.SegmentSize, streams: map[fragstore.Key]*streamFiles{}}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.span <= 0 {
		m.span = DefaultSegmentSpan
	}
	if m.size <= 0 {
		m.size = DefaultSegmentSize
	}
	if err := m.removeTemp(); err != nil {
		_ = root.Close()
		return nil, fmt.Errorf("disk media: %w", err)
	}
	for _, d := range m.streamDirs() {
		m.used.Add(m.dirBytes(d))
	}
	m.writeFlags = oDSync
	if !cfg.Buffered {
		if err := m.probeDirect(); err != nil {
			m.log.Info("media writes go through the page cache: the file system refuses O_DIRECT", "dir", cfg.Dir, "err", err)
		} else {
			m.writeFlags |= oDirect
		}
	}
	return m, nil
}

// probeDirect writes one block with O_DIRECT to a scratch file, as Append would. File systems
// without O_DIRECT (tmpfs; some FUSE and network file systems) refuse the open or the write.
func (m *Media) probeDirect() error {
	if oDirect == 0 {
		return errors.New("not available on this OS")
	}
	const name = ".direct-probe.tmp"
	f, err := m.root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC|oDirect, 0o600)
	if err != nil {
		return err
	}
	defer func() { _ = m.root.Remove(name) }()
	buf := getStage(blockSize)
	defer putStage(buf)
	_, err = f.WriteAt(buf.b[:blockSize], 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// removeTemp deletes the .tmp files of interrupted segment creations.
func (m *Media) removeTemp() error {
	dirs, err := fs.ReadDir(m.root.FS(), ".")
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if !d.IsDir() || !isStreamDir(d.Name()) {
			continue
		}
		files, err := fs.ReadDir(m.root.FS(), d.Name())
		if err != nil {
			return err
		}
		for _, f := range files {
			if !strings.HasSuffix(f.Name(), ".tmp") {
				continue
			}
			var size int64
			if fi, err := f.Info(); err == nil {
				size = fi.Size()
			}
			if err := m.root.Remove(path.Join(d.Name(), f.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			m.log.Info("deleted temporary media file", "stream", d.Name(), "segment", f.Name(), "bytes", size)
		}
	}
	return nil
}

// Usage is the disk space of every segment file, kept up to date by every write and deletion
// so that the disk budget (diskuse) reads it for free.
func (m *Media) Usage() int64 { return m.used.Load() }

// streamDirs lists the stream directories under the root.
func (m *Media) streamDirs() []string {
	dirs, _ := fs.ReadDir(m.root.FS(), ".")
	var out []string
	for _, d := range dirs {
		if d.IsDir() && isStreamDir(d.Name()) {
			out = append(out, d.Name())
		}
	}
	return out
}

// dirBytes sums the sizes of the segment files in dir (0 when it is gone).
func (m *Media) dirBytes(dir string) int64 {
	files, _ := fs.ReadDir(m.root.FS(), dir)
	var n int64
	for _, f := range files {
		if _, ok := parseSegName(f.Name()); !ok {
			continue
		}
		if fi, err := f.Info(); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// dirName is k's directory: "<createdMs>_<name>", shortened with a hash suffix when too long.
func dirName(k fragstore.Key) string {
	d := strconv.FormatInt(k.CreatedMs, 10) + "_" + k.Name
	if len(d) <= maxDirName {
		return d
	}
	sum := sha256.Sum256([]byte(k.Name))
	keep := maxDirName - 1 - 16 - (len(d) - len(k.Name))
	return strconv.FormatInt(k.CreatedMs, 10) + "_" + k.Name[:keep] + "~" + hex.EncodeToString(sum[:8])
}

// isStreamDir reports whether a root entry is named like a stream directory; Retain leaves
// everything else alone.
func isStreamDir(name string) bool {
	ms, _, ok := strings.Cut(name, "_")
	_, err := strconv.ParseInt(ms, 10, 64)
	return ok && err == nil
}

func segName(n uint64) string { return fmt.Sprintf("%020d.seg", n) }

func parseSegName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, ".seg")
	if !ok || len(digits) != 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	return n, err == nil
}

func checkKey(k fragstore.Key) error {
	if k.Name == "" || len(k.Name) > maxNameLen || strings.ContainsAny(k.Name, "/\x00") {
		return fmt.Errorf("disk media: stream name %q cannot be stored", k.Name)
	}
	return nil
}

// files returns k's append state.
func (m *Media) files(k fragstore.Key) (*streamFiles, error) {
	if err := checkKey(k); err != nil {
		return nil, err
	}
	if m.closed.Load() {
		return nil, errClosed
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	sf := m.streams[k]
	if sf == nil {
		sf = &streamFiles{dir: dirName(k)}
		m.streams[k] = sf
	}
	return sf, nil
}

func (m *Media) segPath(k fragstore.Key, seg uint64) string {
	return path.Join(dirName(k), segName(seg))
}

// Keys returns the data keys Media was opened with; nil when it writes in clear.
func (m *Media) Keys() Keys { return m.keys }

// Read returns the data at loc after checking its record's checksums.
func (m *Media) Read(ctx context.Context, k fragstore.Key, loc fragstore.Location) ([]byte, error) {
	f, err := m.openRecord(ctx, k, loc)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	_, data, _, err := readRecord(f, loc.Offset, loc.Length, false, m.opener(ctx, f))
	if err != nil {
		return nil, fmt.Errorf("segment %d of %s: %w", loc.Segment, k.Name, err)
	}
	return data, nil
}

// ReadAppend is Read appending the data to dst (fragstore.Store.MediaAppend uses it): a
// reader of fragment after fragment, like the image generator, reuses one buffer instead of
// allocating one per fragment. On error dst is returned as it was.
func (m *Media) ReadAppend(ctx context.Context, k fragstore.Key, loc fragstore.Location, dst []byte) ([]byte, error) {
	f, err := m.openRecord(ctx, k, loc)
	if err != nil {
		return dst, err
	}
	defer f.Close()
	out, err := readRecordAppend(f, loc.Offset, loc.Length, dst, m.opener(ctx, f))
	if err != nil {
		return dst, fmt.Errorf("segment %d of %s: %w", loc.Segment, k.Name, err)
	}
	return out, nil
}

// opener returns the data key of the segment f for its version 3 records, read from its header
// when a record needs it. Unwrapped keys are cached by the Keys, so only the header is read
// again per record.
func (m *Media) opener(ctx context.Context, f io.ReaderAt) opener {
	return func() (cipher.AEAD, fragstore.Key, error) {
		info, err := readSegmentHeader(f)
		if err != nil {
			return nil, fragstore.Key{}, err
		}
		if info.DataKey == nil {
			return nil, fragstore.Key{}, corrupt("encrypted record in a version %d segment", info.Version)
		}
		if m.keys == nil {
			return nil, fragstore.Key{}, errNoKeys
		}
		aead, err := m.keys.Open(ctx, *info.DataKey)
		if err != nil {
			return nil, fragstore.Key{}, fmt.Errorf("data key of segment %d: %w", info.Number, err)
		}
		return aead, info.Key, nil
	}
}

// openRecord opens the segment holding loc for reading; a missing one is ErrNotFound.
func (m *Media) openRecord(ctx context.Context, k fragstore.Key, loc fragstore.Location) (*os.File, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkKey(k); err != nil {
		return nil, err
	}
	f, err := m.root.Open(m.segPath(k, loc.Segment))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: segment %d of %s is gone", fragstore.ErrNotFound, loc.Segment, k.Name)
	}
	return f, err
}

// Segments lists k's segment files.
func (m *Media) Segments(ctx context.Context, k fragstore.Key) ([]fragstore.Segment, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkKey(k); err != nil {
		return nil, err
	}
	entries, err := fs.ReadDir(m.root.FS(), dirName(k))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []fragstore.Segment
	for _, e := range entries {
		n, ok := parseSegName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since the listing
		}
		if err != nil {
			return nil, err
		}
		out = append(out, fragstore.Segment{Number: n, Size: fi.Size()})
	}
	slices.SortFunc(out, func(a, b fragstore.Segment) int { return cmpU64(a.Number, b.Number) })
	return out, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// DeleteSegment removes one segment file; the open one is closed first, so the next Append
// starts a new segment.
func (m *Media) DeleteSegment(ctx context.Context, k fragstore.Key, seg uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sf, err := m.files(k)
	if err != nil {
		return err
	}
	sf.mu.Lock()
	defer sf.mu.Unlock()
	if sf.cur != nil && sf.seg == seg {
		sf.closeCur()
	}
	// No directory sync: a deletion lost to power failure is repeated by fragstore's recovery,
	// which finds the segment unreferenced.
	fi, serr := m.root.Lstat(m.segPath(k, seg))
	if err := m.root.Remove(m.segPath(k, seg)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	if serr == nil {
		m.used.Add(-fi.Size())
	}
	return nil
}

// DeleteStream removes k's directory.
func (m *Media) DeleteStream(ctx context.Context, k fragstore.Key) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sf, err := m.files(k)
	if err != nil {
		return err
	}
	sf.mu.Lock()
	defer sf.mu.Unlock()
	sf.closeCur()
	sf.ready, sf.maxSeg = false, 0
	n := m.dirBytes(sf.dir)
	if err := m.root.RemoveAll(sf.dir); err != nil {
		m.used.Add(n - m.dirBytes(sf.dir))
		return err
	}
	m.used.Add(-n)
	return nil
}

// Retain removes the directories of streams not in keep. Entries not named like stream
// directories are not kvsd's and are left alone.
func (m *Media) Retain(ctx context.Context, keep []fragstore.Key) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	want := make(map[string]bool, len(keep))
	for _, k := range keep {
		want[dirName(k)] = true
	}
	entries, err := fs.ReadDir(m.root.FS(), ".")
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		if !e.IsDir() || !isStreamDir(e.Name()) || want[e.Name()] {
			continue
		}
		m.forget(e.Name())
		n := m.dirBytes(e.Name())
		if err := m.root.RemoveAll(e.Name()); err != nil {
			m.used.Add(n - m.dirBytes(e.Name()))
			return removed, err
		}
		m.used.Add(-n)
		removed = append(removed, e.Name())
	}
	return removed, nil
}

// forget closes the open segment of whichever stream lives in dir.
func (m *Media) forget(dir string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, sf := range m.streams {
		if sf.dir == dir {
			sf.mu.Lock()
			sf.closeCur()
			sf.ready, sf.maxSeg = false, 0
			sf.mu.Unlock()
		}
	}
}

// Close closes every open segment; later appends fail.
func (m *Media) Close() error {
	if m.closed.Swap(true) {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, sf := range m.streams {
		sf.mu.Lock()
		sf.closeCur()
		sf.mu.Unlock()
	}
	return m.root.Close()
}

// closeCur drops the open segment. Its records are synced already, so a close error loses
// nothing.
func (sf *streamFiles) closeCur() {
	if sf.cur != nil {
		_ = sf.cur.Close()
		sf.cur, sf.dk = nil, nil
	}
}
