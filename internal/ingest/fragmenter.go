package ingest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/mkv"
)

// KVS limits on a fragment's producer metadata (§3.6, §5.2).
const (
	maxTracks        = 3
	maxUserTags      = 10
	maxTagNameBytes  = 128
	maxTagValueBytes = 256
)

// document is the EBML document the fragments being read belong to.
type document struct {
	raw    []byte // Header.Raw, stored once per id
	id     string
	scale  uint64 // ns per tick
	tracks []uint64
	start  time.Time // what RELATIVE cluster timecodes count from
}

// newDocument describes the document h starts; RELATIVE timecodes in it count from start.
func newDocument(h *mkv.Header, start time.Time) *document {
	sum := sha256.Sum256(h.Raw)
	d := &document{raw: h.Raw, id: hex.EncodeToString(sum[:16]), scale: h.TimecodeScale, start: start}
	for _, t := range h.Tracks {
		d.tracks = append(d.tracks, t.Number)
	}
	return d
}

// complete is a fragment whose bytes have all arrived.
type complete struct {
	frag  *fragment.Fragment
	doc   *document
	media []byte // cluster bytes and the Tags that followed, verbatim
}

// output is one step the session takes for the producer, in order: an ack to send, and with
// RECEIVED the fragment to persist and publish.
type output struct {
	ack  Ack
	done *complete
}

// span is the range of frame times of one track within a fragment, in ticks.
type span struct {
	first, last int64
	frames      int
}

// building is the fragment being received.
type building struct {
	complete
	spans    map[uint64]*span
	userTags int
	held     []byte // Tags held for this fragment, stored after its Cluster
}

// fragmenter turns the Reader's events into fragments and their acks, enforcing the KVS
// ingest rules. It is a plain state machine driven by one goroutine; it does no I/O.
type fragmenter struct {
	lim      *Config
	createMs int64     // stream incarnation, part of every fragment number
	relative bool      // RELATIVE timecodes: producer time = start + timecode
	start    time.Time // producer start for RELATIVE
	opened   time.Time // for MaxConnectionAge
	now      func() time.Time
	// nextSeq hands out the stream's next fragment sequence, shared by all its connections;
	// false when this connection was superseded by one that streams already.
	nextSeq func() (uint64, bool)
	// onHeader learns every document the producer starts, which a later connection that
	// continues it without a header plays with.
	onHeader func(*document)

	doc      *document
	prevTC   uint64 // last cluster timecode of doc, for the monotonicity rule
	havePrev bool
	cur      *building

	// Tags that arrive while no fragment is open (after END_OF_FRAGMENT) were written for the
	// next one, so they are held and go with it, stored after its Cluster (where readers look
	// for a fragment's tags) and counted against its limits.
	held     []byte
	heldTags []mkv.SimpleTag

	// skipping is set while a continuation body carries the rest of a fragment kvsd does not
	// hold (its start was on a connection before a restart): its blocks and Tags cannot be
	// placed, so they are counted here until the next Cluster.
	skipping bool
	skipped  skipped
}

// skipped counts what a continuation body carried that could not be placed.
type skipped struct {
	frames, tags int
	bytes        int64
}

// resume continues doc, the document an earlier connection of the stream carried, in a body
// that starts without a header. b is the fragment that connection left unfinished, if kvsd
// holds it; without one, what precedes the next Cluster is skipped.
func (f *fragmenter) resume(doc *document, b *building) {
	f.doc, f.cur, f.havePrev = doc, b, false
	f.skipping = b == nil
}

// handle feeds one Reader event (with the time it was read) and returns what to tell the
// producer. On error the outputs before it still apply; the session then ends.
func (f *fragmenter) handle(ev mkv.Event, at time.Time) ([]output, *ackError) {
	switch ev.Kind {
	case mkv.KindHeader:
		return f.header(ev.Header)
	case mkv.KindClusterStart:
		return f.clusterStart(ev.Timecode, at)
	case mkv.KindBlock:
		return nil, f.block(ev.Timecode, ev.Block)
	case mkv.KindClusterEnd:
		if c := f.cur; c != nil { // the cluster was refused at its start otherwise
			c.media = append(ev.Raw, c.held...)
			c.held = nil
		}
		return nil, f.checkSize()
	case mkv.KindTags:
		if f.skipping {
			f.skipped.tags += len(ev.Tags)
			f.skipped.bytes += int64(len(ev.Raw))
			return nil, nil
		}
		return f.tags(ev.Raw, ev.Tags)
	case mkv.KindStrayBlock:
		f.skipped.frames++
		f.skipped.bytes += ev.Size
	}
	return nil, nil
}

// end completes the open fragment when the body ends.
func (f *fragmenter) end() ([]output, *ackError) {
	return f.finish(0, false)
}

// header starts a new document: a producer that restarts its stream sends a fresh EBML header,
// and with it timecodes may start over.
func (f *fragmenter) header(h *mkv.Header) ([]output, *ackError) {
	out, err := f.finish(0, false)
	if err != nil {
		return out, err
	}
	if len(h.Tracks) > maxTracks {
		return out, failf(errTooManyTracks, nil, "the header declares %d tracks; at most %d are allowed", len(h.Tracks), maxTracks)
	}
	d := newDocument(h, f.start)
	f.doc, f.havePrev, f.skipping = d, false, false
	if f.onHeader != nil {
		f.onHeader(d)
	}
	return out, nil
}

// clusterStart completes the previous fragment and opens the next. The number is assigned
// now because BUFFERING carries it.
func (f *fragmenter) clusterStart(tc uint64, at time.Time) ([]output, *ackError) {
	out, err := f.finish(tc, true)
	if err != nil {
		return out, err
	}
	f.skipping = false
	seq, ok := f.nextSeq()
	if !ok {
		return out, errSuperseded
	}
	fr := &fragment.Fragment{
		Seq:        seq,
		Number:     fragment.FormatNumber(f.createMs, seq),
		Timecode:   tc,
		ServerTime: at.Truncate(time.Millisecond),
	}
	switch {
	case f.havePrev && tc < f.prevTC:
		return out, failf(errTimecodeLesser, fr, "cluster timecode %d follows %d", tc, f.prevTC)
	case f.now().Sub(f.opened) >= f.lim.MaxConnectionAge:
		return out, failf(errConnectionDuration, fr, "the connection is older than %s; reconnect", f.lim.MaxConnectionAge)
	case tc > math.MaxInt64/f.doc.scale:
		return out, failf(errProducerTimestamp, fr, "cluster timecode %d × %d ns overflows", tc, f.doc.scale)
	}
	pt := time.Duration(tc * f.doc.scale)
	if f.relative {
		fr.ProducerTime = f.doc.start.Add(pt)
	} else {
		fr.ProducerTime = time.Unix(0, int64(pt))
	}
	fr.ProducerTime = fr.ProducerTime.Truncate(time.Millisecond)
	if err := f.checkSkew(fr, at); err != nil {
		return out, err
	}
	f.prevTC, f.havePrev = tc, true
	f.cur = &building{complete: complete{frag: fr, doc: f.doc}, spans: map[uint64]*span{}, held: f.held}
	out = append(out, output{ack: ackFor(EventBuffering, fr)})
	tags := f.heldTags
	f.held, f.heldTags = nil, nil
	return out, f.cur.addTags(tags)
}

// checkSkew refuses a producer timestamp too far from the server clock (Config.MaxClockSkew).
func (f *fragmenter) checkSkew(fr *fragment.Fragment, at time.Time) *ackError {
	limit := f.lim.MaxClockSkew
	skew := fr.ProducerTime.Sub(at)
	if limit <= 0 || (skew <= limit && skew >= -limit) {
		return nil
	}
	dir := "ahead of"
	if skew < 0 {
		dir, skew = "behind", -skew
	}
	return failf(errProducerTimestamp, fr, "the producer timestamp %s is %s %s the server clock; the bound is %s (kvsd serve --max-clock-skew)",
		fr.ProducerTime.UTC().Format(time.RFC3339), roughDuration(skew), dir, roughDuration(limit))
}

// roughDuration says d in days when it is long, as clock errors usually are.
func roughDuration(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.Round(time.Second).String()
}

// block checks one frame against the tracks and the duration limit.
func (f *fragmenter) block(tc uint64, b mkv.Block) *ackError {
	c := f.cur
	if c == nil {
		return nil
	}
	if !slices.Contains(c.doc.tracks, b.Track) {
		return failf(errTrackMismatch, c.frag, "a block on track %d, which Tracks does not declare", b.Track)
	}
	t := int64(tc) + int64(b.RelTimecode) // tc fits: clusterStart checked it
	s := c.spans[b.Track]
	if s == nil {
		s = &span{first: t, last: t}
		c.spans[b.Track] = s
	}
	s.first, s.last, s.frames = min(s.first, t), max(s.last, t), s.frames+1
	first, last := c.bounds()
	if d := ticks(last-first, c.doc.scale); d > f.lim.MaxFragmentDuration {
		return failf(errFragmentDuration, c.frag, "the fragment spans %s; the limit is %s", d, f.lim.MaxFragmentDuration)
	}
	return nil
}

// tags attributes a Tags element to the open fragment, which END_OF_FRAGMENT completes at
// once: kvssink waits for the last fragment's PERSISTED before it ends the body.
func (f *fragmenter) tags(raw []byte, tags []mkv.SimpleTag) ([]output, *ackError) {
	c := f.cur
	if c == nil {
		if len(f.held)+len(raw) > int(f.lim.MaxFragmentSize) {
			return nil, failf(errFragmentSize, nil, "%d bytes of Tags after END_OF_FRAGMENT; the limit is %d", len(f.held)+len(raw), f.lim.MaxFragmentSize)
		}
		f.held = append(f.held, raw...)
		f.heldTags = append(f.heldTags, tags...)
		return nil, nil
	}
	c.media = append(c.media, raw...)
	if err := c.addTags(tags); err != nil {
		return nil, err
	}
	end := slices.ContainsFunc(tags, func(t mkv.SimpleTag) bool { return t.Name == fragment.TagEndOfFragment })
	if err := f.checkSize(); err != nil || !end {
		return nil, err
	}
	return f.finish(0, false)
}

// addTags attributes producer tags to the fragment within KVS's metadata limits.
func (b *building) addTags(tags []mkv.SimpleTag) *ackError {
	b.frag.Tags = append(b.frag.Tags, tags...)
	for _, t := range tags {
		switch {
		case len(t.Name) > maxTagNameBytes:
			return failf(errMetadataLimit, b.frag, "tag name of %d bytes; the limit is %d", len(t.Name), maxTagNameBytes)
		case len(t.Value) > maxTagValueBytes:
			return failf(errMetadataLimit, b.frag, "tag %s has a value of %d bytes; the limit is %d", t.Name, len(t.Value), maxTagValueBytes)
		case !strings.HasPrefix(t.Name, "AWS_"):
			if b.userTags++; b.userTags > maxUserTags {
				return failf(errMetadataLimit, b.frag, "more than %d metadata tags in one fragment", maxUserTags)
			}
		}
	}
	return nil
}

// checkSize enforces MaxFragmentSize on cluster and tags together (the Reader bounds the
// cluster alone).
func (f *fragmenter) checkSize() *ackError {
	if c := f.cur; c != nil && int64(len(c.media)) > f.lim.MaxFragmentSize {
		return failf(errFragmentSize, c.frag, "the fragment has %d bytes; the limit is %d", len(c.media), f.lim.MaxFragmentSize)
	}
	return nil
}

// finish completes the open fragment, if any. next is the following cluster's timecode when
// that is what ended it: the only end time a single-frame track has.
func (f *fragmenter) finish(next uint64, haveNext bool) ([]output, *ackError) {
	c := f.cur
	if c == nil {
		return nil, nil
	}
	f.cur = nil
	for _, n := range c.doc.tracks {
		if c.spans[n] == nil {
			return nil, failf(errFramesMissing, c.frag, "track %d has no frame in this fragment", n)
		}
	}
	first, _ := c.bounds()
	end := first
	for _, s := range c.spans {
		// A frame lasts the track's mean frame interval; Matroska's DefaultDuration would be
		// better, but the Reader does not decode it.
		frame := int64(0)
		switch {
		case s.frames > 1:
			frame = (s.last - s.first) / int64(s.frames-1)
		case haveNext && next <= math.MaxInt64 && int64(next) > s.last:
			frame = int64(next) - s.last
		}
		end = max(end, s.last+frame)
	}
	c.frag.Duration = ticks(end-first, c.doc.scale).Truncate(time.Millisecond)
	c.frag.HeaderID = c.doc.id
	c.frag.Size = int64(len(c.media))
	return []output{{ack: ackFor(EventReceived, c.frag), done: &c.complete}}, nil
}

// frames counts the fragment's frames so far.
func (b *building) frames() int {
	n := 0
	for _, s := range b.spans {
		n += s.frames
	}
	return n
}

// bounds returns the earliest and latest frame time of the fragment.
func (b *building) bounds() (first, last int64) {
	first, last = math.MaxInt64, math.MinInt64
	for _, s := range b.spans {
		first, last = min(first, s.first), max(last, s.last)
	}
	if len(b.spans) == 0 {
		return 0, 0
	}
	return first, last
}

// ticks converts a tick count to a duration, saturating instead of overflowing.
func ticks(n int64, scale uint64) time.Duration {
	if n <= 0 {
		return 0
	}
	if uint64(n) > math.MaxInt64/scale {
		return math.MaxInt64
	}
	return time.Duration(uint64(n) * scale)
}

// open returns the fragment being received, if any: the one a read failure interrupts.
func (f *fragmenter) open() *fragment.Fragment {
	if f.cur == nil {
		return nil
	}
	return f.cur.frag
}
