// Package s3media is the fragstore.Media of scale-out: one object per fragment in an
// S3-compatible bucket, so that media outlives any node. Fragments are well under the 5 MiB
// multipart minimum, so each is one PutObject, and Append returns once S3 answered it (S3
// stores an object whole and durably before it answers, or not at all).
//
// Layout (docs/format/media-s3.md has the byte format):
//
//	<prefix>/<createdMs>_<name>/<20-digit segment>/<20-digit seq>.rec
//
// A segment is a key prefix: the records of up to SegmentSpan of server time (either
// direction, so a clock stepping back starts a new one) and at most maxSegmentRecords, so
// that deleting a segment is one listing and one DeleteObjects. A new segment is numbered by
// the sequence of its first record, or one past the highest segment the stream has, if that
// is higher; the first Append of a stream in a process lists its segments to learn that.
//
// Location.Offset names the record inside its segment: it is the record's Seq (a byte offset
// means nothing in an object store). Objects are written with If-None-Match: * so that no
// write ever replaces a stored object: a repeated PUT of the same bytes (a retry whose first
// answer was lost) is accepted, different bytes under the same key are refused.
//
// With Config.Keys (as kvsd runs) every object's media is sealed with its stream's data key
// (AES-256-GCM), the wrapped data key in the object's header, as the disk media seals its
// records: any node given the same key file or KMS reads any node's objects.
package s3media

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/kvsd/kvsd/internal/bufpool"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/keys"
)

// DefaultSegmentSpan is Config.SegmentSpan's default, the disk media's.
const DefaultSegmentSpan = 30 * time.Second

// maxSegmentRecords bounds a segment to one page of ListObjectsV2 and one DeleteObjects.
const maxSegmentRecords = 1000

var (
	_ fragstore.Media    = (*Media)(nil)
	_ fragstore.Preparer = (*Media)(nil)
)

var errClosed = errors.New("s3 media: closed")

// ErrObjectExists is Append's answer when another object is stored under the record's key:
// another writer (a node that lost the stream) wrote that sequence there.
var ErrObjectExists = errors.New("another object is stored under the fragment's key")

// API is the part of the S3 client Media uses; *s3.Client implements it.
type API interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	DeleteObjects(ctx context.Context, in *s3.DeleteObjectsInput, opts ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error)
}

var _ API = (*s3.Client)(nil)

// Config says where Media keeps objects.
type Config struct {
	Client      API
	Bucket      string
	Prefix      string        // key prefix, without leading or trailing slash; "" for the bucket's root
	SegmentSpan time.Duration // 0: DefaultSegmentSpan
	Logger      *slog.Logger  // nil: discard
	// Keys seals new records with each stream's data key (keys.Ring), and opens version 2
	// objects. nil writes records in clear (version 1): tests and benchmarks compare the two.
	Keys Keys
}

// Keys hands out data keys (keys.Ring): a stream's current one for new records, and the one
// an object header names for reading it.
type Keys interface {
	DataKey(ctx context.Context, k fragstore.Key) (*keys.DataKey, error)
	Open(ctx context.Context, w keys.Wrapped) (cipher.AEAD, error)
}

// Media is the S3 fragstore.Media. It is safe for concurrent use.
type Media struct {
	api    API
	bucket string
	prefix string // "" or ending in "/"
	span   time.Duration
	log    *slog.Logger
	keys   Keys // nil: records in clear
	closed atomic.Bool

	mu      sync.Mutex
	streams map[fragstore.Key]*streamState // never shrinks, like fragstore's own
}

// streamState is one stream's append state; mu serialises its appends and deletions.
type streamState struct {
	mu         sync.Mutex
	ready      bool   // maxSeg was learnt from a listing
	maxSeg     uint64 // highest segment number seen or used
	cur        uint64 // the segment appends go to; 0: the next Append starts one
	count      int    // records in cur
	minT, maxT time.Time
}

// Open returns a Media over cfg's bucket and prefix; it does no I/O.
func Open(cfg Config) (*Media, error) {
	if cfg.Client == nil || cfg.Bucket == "" {
		return nil, errors.New("s3 media: Config.Client and Config.Bucket are required")
	}
	m := &Media{api: cfg.Client, bucket: cfg.Bucket, span: cfg.SegmentSpan, log: cfg.Logger, keys: cfg.Keys, streams: map[fragstore.Key]*streamState{}}
	if p := strings.Trim(cfg.Prefix, "/"); p != "" {
		m.prefix = p + "/"
	}
	if m.span <= 0 {
		m.span = DefaultSegmentSpan
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	return m, nil
}

// maxStreamPart keeps a stream's key part within the 255-byte file names of S3 servers that
// map keys onto a file system (versitygw's POSIX backend); S3 itself takes 1024-byte keys.
const maxStreamPart = 200

// streamPrefix is k's key prefix: <prefix><createdMs>_<name>/, the name cut and suffixed with
// a hash of the whole name when too long (as the disk media names directories). Object
// headers always hold the full name.
func (m *Media) streamPrefix(k fragstore.Key) string {
	d := strconv.FormatInt(k.CreatedMs, 10) + "_" + k.Name
	if len(d) > maxStreamPart {
		sum := sha256.Sum256([]byte(k.Name))
		keep := maxStreamPart - 1 - 16 - (len(d) - len(k.Name))
		d = strconv.FormatInt(k.CreatedMs, 10) + "_" + k.Name[:keep] + "~" + hex.EncodeToString(sum[:8])
	}
	return m.prefix + d + "/"
}

func segPrefix(seg uint64) string { return fmt.Sprintf("%020d/", seg) }

func (m *Media) objectKey(k fragstore.Key, seg, seq uint64) string {
	return m.streamPrefix(k) + segPrefix(seg) + fmt.Sprintf("%020d.rec", seq)
}

// parseObject splits a key below a stream prefix into segment and seq.
func parseObject(rest string) (seg, seq uint64, ok bool) {
	s, r, ok := strings.Cut(rest, "/")
	if !ok || len(s) != 20 || len(r) != 24 || !strings.HasSuffix(r, ".rec") {
		return 0, 0, false
	}
	seg, err1 := strconv.ParseUint(s, 10, 64)
	seq, err2 := strconv.ParseUint(r[:20], 10, 64)
	return seg, seq, err1 == nil && err2 == nil
}

func checkKey(k fragstore.Key) error {
	if k.Name == "" || strings.Contains(k.Name, "/") || len(k.Name) > 0xffff {
		return fmt.Errorf("s3 media: stream name %.40q cannot name objects", k.Name)
	}
	return nil
}

func (m *Media) state(k fragstore.Key) *streamState {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.streams[k]
	if st == nil {
		st = &streamState{}
		m.streams[k] = st
	}
	return st
}

// Append puts rec as its own object in k's current segment, starting a segment when needed.
func (m *Media) Append(ctx context.Context, k fragstore.Key, rec fragstore.Record) (fragstore.Location, error) {
	p, err := m.Prepare(ctx, k, rec)
	if err != nil {
		return fragstore.Location{}, err
	}
	return m.AppendPrepared(ctx, k, p)
}

// prepared is a record sealed into its object body by Prepare, its segment not yet set.
type prepared struct {
	k    fragstore.Key
	rec  fragstore.Record
	body []byte // from bodies; nil once released
}

// Release returns the body's buffer for reuse.
func (p *prepared) Release() {
	if p.body != nil {
		bodies.Put(p.body)
		p.body = nil
	}
}

// bodies recycles object bodies: a fragment's object is hundreds of KB, and one allocated per
// fragment made the garbage collector a large part of a node's CPU.
var bodies bufpool.Pool

// Prepare seals rec into its object body with the stream's current data key, without taking
// the stream's turn: the seal and the checksums are most of an Append's CPU, and a writer does
// them for a stream's next record while the previous one's PUT is in flight. The seal does not
// cover the segment number, which AppendPrepared sets.
func (m *Media) Prepare(ctx context.Context, k fragstore.Key, rec fragstore.Record) (fragstore.PreparedRecord, error) {
	if m.closed.Load() {
		return nil, errClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkKey(k); err != nil {
		return nil, err
	}
	if len(rec.Meta) > maxMeta || int64(len(rec.Data)) > 1<<32-1 {
		return nil, fmt.Errorf("s3 media: record %d of %s is too large", rec.Seq, k.Name)
	}
	var dk *keys.DataKey
	if m.keys != nil {
		var err error
		if dk, err = m.keys.DataKey(ctx, k); err != nil {
			return nil, fmt.Errorf("s3 media: data key of %s: %w", k.Name, err)
		}
	}
	body := bodies.Get(0)
	b, err := appendObject(body, k, 0, rec, dk)
	if err != nil {
		bodies.Put(body)
		return nil, fmt.Errorf("s3 media: record %d of %s: %w", rec.Seq, k.Name, err)
	}
	return &prepared{k: k, rec: rec, body: b}, nil
}

// AppendPrepared puts a record Prepare made as its own object in k's current segment,
// starting a segment when needed.
func (m *Media) AppendPrepared(ctx context.Context, k fragstore.Key, pr fragstore.PreparedRecord) (fragstore.Location, error) {
	p, ok := pr.(*prepared)
	if !ok || p.body == nil || p.k != k {
		return fragstore.Location{}, fmt.Errorf("s3 media: append to %s: not a pending record this Media prepared for it", k.Name)
	}
	defer p.Release()
	if m.closed.Load() {
		return fragstore.Location{}, errClosed
	}
	if err := ctx.Err(); err != nil {
		return fragstore.Location{}, err
	}
	rec := p.rec
	st := m.state(k)
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.ready {
		segs, err := m.segmentNumbers(ctx, k)
		if err != nil {
			return fragstore.Location{}, fmt.Errorf("s3 media: segments of %s: %w", k.Name, err)
		}
		if len(segs) > 0 {
			st.maxSeg = max(st.maxSeg, segs[len(segs)-1])
		}
		st.ready = true
	}
	if st.cur == 0 || st.count >= maxSegmentRecords || rec.Time.Sub(st.minT) >= m.span || st.maxT.Sub(rec.Time) >= m.span {
		st.cur = max(rec.Seq, st.maxSeg+1)
		st.maxSeg = st.cur
		st.count, st.minT, st.maxT = 0, rec.Time, rec.Time
	}
	body := p.body
	setSegment(body, k, st.cur)
	done, err := m.put(ctx, m.objectKey(k, st.cur, rec.Seq), body)
	if !done {
		p.body = nil // still read, maybe: left to the garbage collector
	}
	if err != nil {
		return fragstore.Location{}, fmt.Errorf("s3 media: record %d of %s: %w", rec.Seq, k.Name, err)
	}
	st.count++
	if rec.Time.Before(st.minT) {
		st.minT = rec.Time
	}
	if rec.Time.After(st.maxT) {
		st.maxT = rec.Time
	}
	return fragstore.Location{Segment: st.cur, Offset: int64(rec.Seq), Length: int64(len(rec.Data))}, nil
}

// put stores body under key unless an object is there (If-None-Match: *). When one is, it
// is read back: the same bytes are a write that already happened, other bytes ErrObjectExists.
// done says whether the PUT itself succeeded, so that the server read all of body. Otherwise
// net/http may still be reading body after the call (a server may answer before it read the
// request, as a 412 can), and its buffer must not be reused.
func (m *Media) put(ctx context.Context, key string, body []byte) (done bool, err error) {
	// A store that accepts the connection and never answers (hung, or a black hole) would hold
	// the fragment's ack, and the stream, until TCP gives up: minutes.
	ctx, cancel := context.WithTimeout(ctx, putTimeout)
	defer cancel()
	_, err = m.api.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(m.bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))), ContentType: aws.String("application/octet-stream"),
		IfNoneMatch: aws.String("*"),
	})
	if err == nil {
		return true, nil
	}
	if httpStatus(err) != http.StatusPreconditionFailed {
		return false, err
	}
	stored, gerr := m.get(ctx, key, "")
	if gerr != nil {
		return false, fmt.Errorf("%w (and reading it back: %v)", ErrObjectExists, gerr)
	}
	if !bytes.Equal(stored, body) {
		// Another writer's record under this key: a node that lost the stream, or two nodes
		// writing one prefix. The index's fencing keeps it from being acknowledged twice.
		m.log.Warn("refused to replace a stored object with other bytes", "key", key)
		return false, fmt.Errorf("%w: %s", ErrObjectExists, key)
	}
	m.log.Debug("PUT repeated after a lost answer: the object holds these bytes already", "key", key)
	return false, nil
}

// putTimeout bounds one record's PUT, the SDK's retries included, as fragstore's commit
// timeout bounds its index commit: past it the fragment is answered ERROR 5001 and the
// producer resends.
const putTimeout = 10 * time.Second

// get reads key, or the range given ("" for all); ErrNotFound when there is no such object.
func (m *Media) get(ctx context.Context, key, rng string) ([]byte, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(m.bucket), Key: aws.String(key)}
	if rng != "" {
		in.Range = aws.String(rng)
	}
	out, err := m.api.GetObject(ctx, in)
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("%w: object %s", fragstore.ErrNotFound, key)
		}
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

// Read fetches the record's header and data in one ranged GET (most of the meta is left
// behind), checks them against loc and opens the seal.
func (m *Media) Read(ctx context.Context, k fragstore.Key, loc fragstore.Location) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkKey(k); err != nil {
		return nil, err
	}
	if loc.Length <= 0 || loc.Offset <= 0 || loc.Length > 1<<32-1 {
		return nil, fmt.Errorf("s3 media: %+v of %s is not a location of this media", loc, k.Name)
	}
	// The header's length depends on the wrapped data key it holds: ask for the longest
	// header and the sealed data; what comes of the meta beyond them is ignored.
	b, err := m.get(ctx, m.objectKey(k, loc.Segment, uint64(loc.Offset)), fmt.Sprintf("bytes=0-%d", headerLen(k)+maxKeyFields+loc.Length+sealOverhead-1))
	if err != nil {
		return nil, fmt.Errorf("s3 media: fragment %d in segment %d of %s: %w", loc.Offset, loc.Segment, k.Name, err)
	}
	h, err := decodeHeader(k, loc, b)
	if err != nil {
		return nil, err
	}
	if h.dataLen != loc.Length || int64(len(b)) < h.len+h.stored() {
		return nil, fmt.Errorf("%w: fragment %d of %s holds %d bytes, not the %d its location says", fragstore.ErrCorrupt, loc.Offset, k.Name, h.dataLen, loc.Length)
	}
	var aead cipher.AEAD
	if h.key != nil {
		if m.keys == nil {
			return nil, errNoKeys
		}
		if aead, err = m.keys.Open(ctx, *h.key); err != nil {
			return nil, fmt.Errorf("s3 media: data key of fragment %d of %s: %w", loc.Offset, k.Name, err)
		}
	}
	return openData(k, loc, h, b[h.len:h.len+h.stored()], aead)
}

// object is one listed record object.
type object struct {
	key      string
	seg, seq uint64
	size     int64
	modified time.Time
}

// Record is one stored record object, as Records lists it.
type Record struct {
	Key          string
	Segment, Seq uint64
	Size         int64
	Modified     time.Time // S3's Last-Modified: when the object was written
}

// Records lists k's record objects in (segment, seq) order, for the clean-up of objects no
// index entry names (package orphans).
func (m *Media) Records(ctx context.Context, k fragstore.Key) ([]Record, error) {
	if err := checkKey(k); err != nil {
		return nil, err
	}
	objs, err := m.list(ctx, k, "")
	if err != nil {
		return nil, fmt.Errorf("s3 media: list %s: %w", k.Name, err)
	}
	out := make([]Record, len(objs))
	for i, o := range objs {
		out[i] = Record{Key: o.key, Segment: o.seg, Seq: o.seq, Size: o.size, Modified: o.modified}
	}
	return out, nil
}

// UnknownRecords lists the record objects under stream prefixes not in known: what is left of
// streams deleted from the catalog whose objects were not all deleted (the node deleting them
// died), for package orphans. Prefixes not named <createdMs>_<name>/ are not kvsd's and are
// left alone.
func (m *Media) UnknownRecords(ctx context.Context, known []fragstore.Key) ([]Record, error) {
	pres, err := m.unknownPrefixes(ctx, known)
	if err != nil {
		return nil, err
	}
	var out []Record
	for _, pre := range pres {
		objs, err := m.listPrefix(ctx, pre, "")
		if err != nil {
			return nil, fmt.Errorf("s3 media: list %s: %w", pre, err)
		}
		for _, o := range objs {
			out = append(out, Record{Key: o.key, Segment: o.seg, Seq: o.seq, Size: o.size, Modified: o.modified})
		}
	}
	return out, nil
}

// unknownPrefixes lists the stream prefixes (named <createdMs>_<name>/) of streams not in known.
func (m *Media) unknownPrefixes(ctx context.Context, known []fragstore.Key) ([]string, error) {
	want := make(map[string]bool, len(known))
	for _, k := range known {
		want[m.streamPrefix(k)] = true
	}
	var out []string
	p := s3.NewListObjectsV2Paginator(m.api, &s3.ListObjectsV2Input{Bucket: aws.String(m.bucket), Prefix: aws.String(m.prefix), Delimiter: aws.String("/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("s3 media: list streams: %w", err)
		}
		for _, cp := range page.CommonPrefixes {
			if pre := aws.ToString(cp.Prefix); isStreamPrefix(strings.TrimPrefix(pre, m.prefix)) && !want[pre] {
				out = append(out, pre)
			}
		}
	}
	return out, nil
}

// DeleteRecords deletes the record objects named, and returns their bytes.
func (m *Media) DeleteRecords(ctx context.Context, recs []Record) (int64, error) {
	objs := make([]object, len(recs))
	for i, r := range recs {
		objs[i] = object{key: r.Key, seg: r.Segment, seq: r.Seq, size: r.Size}
	}
	n, err := m.remove(ctx, objs)
	if err != nil {
		return n, fmt.Errorf("s3 media: delete records: %w", err)
	}
	return n, nil
}

// list lists the record objects under k's prefix plus sub ("" or a segment prefix), in key
// order, which is (segment, seq) order.
func (m *Media) list(ctx context.Context, k fragstore.Key, sub string) ([]object, error) {
	return m.listPrefix(ctx, m.streamPrefix(k), sub)
}

func (m *Media) listPrefix(ctx context.Context, pre, sub string) ([]object, error) {
	var out []object
	p := s3.NewListObjectsV2Paginator(m.api, &s3.ListObjectsV2Input{Bucket: aws.String(m.bucket), Prefix: aws.String(pre + sub)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			seg, seq, ok := parseObject(strings.TrimPrefix(key, pre))
			if !ok {
				continue // not kvsd's
			}
			out = append(out, object{key: key, seg: seg, seq: seq, size: aws.ToInt64(o.Size), modified: aws.ToTime(o.LastModified)})
		}
	}
	return out, nil
}

// segmentNumbers lists k's segment prefixes (one delimiter listing, not every object).
func (m *Media) segmentNumbers(ctx context.Context, k fragstore.Key) ([]uint64, error) {
	pre := m.streamPrefix(k)
	var out []uint64
	p := s3.NewListObjectsV2Paginator(m.api, &s3.ListObjectsV2Input{Bucket: aws.String(m.bucket), Prefix: aws.String(pre), Delimiter: aws.String("/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, cp := range page.CommonPrefixes {
			s := strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), pre), "/")
			if n, err := strconv.ParseUint(s, 10, 64); err == nil && len(s) == 20 {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// Segments lists k's segments with the bytes their objects hold.
func (m *Media) Segments(ctx context.Context, k fragstore.Key) ([]fragstore.Segment, error) {
	if err := checkKey(k); err != nil {
		return nil, err
	}
	objs, err := m.list(ctx, k, "")
	if err != nil {
		return nil, fmt.Errorf("s3 media: segments of %s: %w", k.Name, err)
	}
	var out []fragstore.Segment
	for _, o := range objs {
		if n := len(out); n > 0 && out[n-1].Number == o.seg {
			out[n-1].Size += o.size
		} else {
			out = append(out, fragstore.Segment{Number: o.seg, Size: o.size})
		}
	}
	return out, nil
}

// remove deletes objs, up to 1000 per DeleteObjects, and returns their bytes.
func (m *Media) remove(ctx context.Context, objs []object) (int64, error) {
	var n int64
	for chunk := range slices.Chunk(objs, 1000) {
		ids := make([]types.ObjectIdentifier, len(chunk))
		for i, o := range chunk {
			ids[i] = types.ObjectIdentifier{Key: aws.String(o.key)}
		}
		out, err := m.api.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(m.bucket), Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
		if err != nil {
			return n, err
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return n, fmt.Errorf("delete %s: %s %s (and %d more)", aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message), len(out.Errors)-1)
		}
		for _, o := range chunk {
			n += o.size
		}
	}
	return n, nil
}

// DeleteSegment deletes the segment's objects. When it is the segment appends go to, the next
// Append starts a new one.
func (m *Media) DeleteSegment(ctx context.Context, k fragstore.Key, seg uint64) error {
	if err := checkKey(k); err != nil {
		return err
	}
	st := m.state(k)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.cur == seg {
		st.cur = 0
	}
	objs, err := m.list(ctx, k, segPrefix(seg))
	if err == nil {
		_, err = m.remove(ctx, objs)
	}
	if err != nil {
		return fmt.Errorf("s3 media: delete segment %d of %s: %w", seg, k.Name, err)
	}
	return nil
}

// TruncateAfter checks the record at loc and deletes the objects after it in its segment.
func (m *Media) TruncateAfter(ctx context.Context, k fragstore.Key, loc fragstore.Location) (int64, error) {
	if err := checkKey(k); err != nil {
		return 0, err
	}
	st := m.state(k)
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := m.verify(ctx, k, loc); err != nil {
		return 0, err
	}
	objs, err := m.list(ctx, k, segPrefix(loc.Segment))
	if err != nil {
		return 0, fmt.Errorf("s3 media: segment %d of %s: %w", loc.Segment, k.Name, err)
	}
	var after []object
	for _, o := range objs {
		if o.seq > uint64(loc.Offset) {
			after = append(after, o)
		}
	}
	n, err := m.remove(ctx, after)
	if err != nil {
		return n, fmt.Errorf("s3 media: truncate segment %d of %s: %w", loc.Segment, k.Name, err)
	}
	return n, nil
}

// verify reads the whole object at loc and checks data and meta.
func (m *Media) verify(ctx context.Context, k fragstore.Key, loc fragstore.Location) error {
	b, err := m.get(ctx, m.objectKey(k, loc.Segment, uint64(loc.Offset)), "")
	if err != nil {
		return fmt.Errorf("s3 media: fragment %d in segment %d of %s: %w", loc.Offset, loc.Segment, k.Name, err)
	}
	h, err := decodeHeader(k, loc, b)
	if err != nil {
		return err
	}
	// The CRCs, not the seal: a check that needs no key, as recovery on disk.
	end := h.len + h.stored()
	if h.dataLen != loc.Length || int64(len(b)) != end+h.metaLen ||
		crc(b[h.len:end]) != h.dataCRC || crc(b[end:]) != h.metaCRC {
		return fmt.Errorf("%w: fragment %d in segment %d of %s fails its checks", fragstore.ErrCorrupt, loc.Offset, loc.Segment, k.Name)
	}
	return nil
}

// DeleteStream deletes every object of k.
func (m *Media) DeleteStream(ctx context.Context, k fragstore.Key) error {
	if err := checkKey(k); err != nil {
		return err
	}
	st := m.state(k)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.cur, st.ready, st.maxSeg = 0, false, 0
	objs, err := m.list(ctx, k, "")
	if err == nil {
		_, err = m.remove(ctx, objs)
	}
	if err != nil {
		return fmt.Errorf("s3 media: delete stream %s: %w", k.Name, err)
	}
	return nil
}

// Retain deletes the objects of every stream prefix not in keep. Prefixes not named
// <createdMs>_<name>/ are not kvsd's and are left alone.
func (m *Media) Retain(ctx context.Context, keep []fragstore.Key) ([]string, error) {
	pres, err := m.unknownPrefixes(ctx, keep)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, pre := range pres {
		unlock := m.lockPrefix(pre)
		objs, err := m.listPrefix(ctx, pre, "")
		var n int64
		if err == nil {
			n, err = m.remove(ctx, objs)
		}
		unlock()
		if err != nil {
			return removed, fmt.Errorf("s3 media: remove stream %s: %w", pre, err)
		}
		if len(objs) > 0 { // an empty prefix (a directory left by a POSIX-backed server) is nothing removed
			removed = append(removed, fmt.Sprintf("%s (%d objects, %d bytes)", pre, len(objs), n))
		}
	}
	return removed, nil
}

// isStreamPrefix reports whether a listed prefix (below Config.Prefix) is named like a
// stream's, <createdMs>_<name>/; Retain leaves everything else alone.
func isStreamPrefix(s string) bool {
	ms, name, ok := strings.Cut(s, "_")
	_, err := strconv.ParseInt(ms, 10, 64)
	return ok && err == nil && len(name) > 1 && strings.HasSuffix(name, "/")
}

// lockPrefix locks, and resets, the append state of the streams stored under pre (those this
// process appended to), so that their next Append starts afresh; it returns the unlock.
func (m *Media) lockPrefix(pre string) (unlock func()) {
	m.mu.Lock()
	var locked []*streamState
	for k, st := range m.streams {
		if m.streamPrefix(k) == pre {
			locked = append(locked, st)
		}
	}
	m.mu.Unlock()
	for _, st := range locked {
		st.mu.Lock()
		st.cur, st.ready, st.maxSeg = 0, false, 0
	}
	return func() {
		for _, st := range locked {
			st.mu.Unlock()
		}
	}
}

// Check lists one key under the prefix, so that a missing bucket, a wrong endpoint or
// refused credentials show at start rather than at the first fragment.
func (m *Media) Check(ctx context.Context) error {
	_, err := m.api.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(m.bucket), Prefix: aws.String(m.prefix), MaxKeys: aws.Int32(1)})
	if err != nil {
		return fmt.Errorf("s3 media: bucket %s: %w", m.bucket, err)
	}
	return nil
}

// Close makes later appends fail; there is nothing to release.
func (m *Media) Close() error {
	m.closed.Store(true)
	return nil
}

func httpStatus(err error) int {
	if re, ok := errors.AsType[*awshttp.ResponseError](err); ok {
		return re.HTTPStatusCode()
	}
	return 0
}

func isNotFound(err error) bool {
	if api, ok := errors.AsType[smithy.APIError](err); ok && (api.ErrorCode() == "NoSuchKey" || api.ErrorCode() == "NotFound") {
		return true
	}
	return httpStatus(err) == http.StatusNotFound
}
