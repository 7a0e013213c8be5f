package producer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/kvsd/kvsd/internal/mkv"
)

// Reserved tag names (§5.2).
const (
	tagImage       = "AWS_KINESISVIDEO_IMAGE_GENERATION"
	tagImagePrefix = "AWS_KINESISVIDEO_IMAGE_PREFIX"
	tagNotify      = "AWS_KINESISVIDEO_NOTIFICATION"
)

// cutMargin keeps fragments of very long GOPs under the 20 s limit: a
// fragment is cut at a non-key frame once it spans MaxFragmentDuration
// minus this.
const cutMargin = time.Second

// builder turns the source's frames into fragments in the buffer. It runs
// on one goroutine.
type builder struct {
	src    Source
	buf    *buffer
	target time.Duration
	tags   tagPlan
	live   bool
	fast   bool
	start  time.Time // file: producer time of PTS 0
	now    func() time.Time
	sleep  func(context.Context, time.Duration) error

	cur       *fragment
	count     int   // fragments started
	prevTC    int64 // last Cluster timecode
	anchor    time.Time
	pts0      time.Duration
	began     bool
	paceStart time.Time // when the first frame was read
	warnedGO  bool
}

// run reads frames until the source ends or ctx is done, then completes the
// last fragment. It returns nil at the source's end or on cancellation.
func (b *builder) run(ctx context.Context) error {
	defer b.buf.finish()
	for {
		fr, err := b.src.ReadFrame(ctx)
		if err != nil {
			cerr := b.closeCurrent(0)
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return cerr
			}
			return fmt.Errorf("read the source: %w", err)
		}
		if err := b.frame(ctx, fr); err != nil {
			_ = b.closeCurrent(0)
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// timestamp maps a frame's PTS to epoch milliseconds, pacing files to real
// time unless fast.
func (b *builder) timestamp(ctx context.Context, pts time.Duration) (int64, error) {
	if !b.began {
		b.began, b.pts0, b.anchor, b.paceStart = true, pts, b.now(), b.now()
		if !b.live {
			b.anchor = b.start.Add(pts) // the file's own offset is kept
		}
	}
	at := b.anchor.Add(pts - b.pts0)
	if !b.live && !b.fast {
		// A frame is due (pts-pts0) after the first one was read.
		due := (pts - b.pts0) - b.now().Sub(b.paceStart)
		if due > 0 {
			if err := b.sleep(ctx, due); err != nil {
				return 0, err
			}
		}
	}
	return at.UnixMilli(), nil
}

// frame adds one frame, starting a new fragment on a keyframe once the
// current one reached the target duration.
func (b *builder) frame(ctx context.Context, fr Frame) error {
	ts, err := b.timestamp(ctx, fr.PTS)
	if err != nil {
		return err
	}
	limit := (MaxFragmentDuration - cutMargin).Milliseconds()
	switch {
	case b.cur == nil:
		if !fr.Keyframe && b.count == 0 {
			return nil // nothing decodes before the first keyframe
		}
		b.open(ts)
	case fr.Keyframe && ts-b.cur.first >= b.target.Milliseconds():
		if err := b.closeCurrent(ts); err != nil {
			return err
		}
		b.open(ts)
	case ts-b.cur.first >= limit || ts-b.cur.timecode < -32768:
		if !b.warnedGO {
			b.warnedGO = true
			b.buf.warn(fmt.Errorf("no keyframe for %s: fragments are limited to %s, so this one is cut at a non-key frame (it plays only after the fragment before it); encode with keyframes at most every few seconds",
				time.Duration(ts-b.cur.first)*time.Millisecond, MaxFragmentDuration))
		}
		if err := b.closeCurrent(ts); err != nil {
			return err
		}
		b.open(ts)
	}
	rel := ts - b.cur.timecode
	if rel > 32767 {
		rel = 32767 // unreachable: fragments are cut before 20 s
	}
	block := appendSimpleBlock(make([]byte, 0, simpleBlockOverhead+len(fr.Data)), int16(rel), fr.Keyframe, fr.Data)
	return b.buf.add(ctx, b.cur, block, ts, true)
}

// open starts a fragment at ts. Cluster timecodes must increase within a
// connection, so a source whose clock stands still is nudged forward.
func (b *builder) open(ts int64) {
	tc := ts
	if b.count > 0 && tc <= b.prevTC {
		tc = b.prevTC + 1
	}
	b.prevTC = tc
	b.cur = b.buf.start(tc)
	b.cur.first, b.cur.last = ts, ts
	_ = b.buf.add(context.Background(), b.cur, appendClusterStart(nil, tc), 0, false)
	b.count++
}

// closeCurrent writes the current fragment's tags and completes it; next
// is the following fragment's start (0 at the end).
func (b *builder) closeCurrent(next int64) error {
	if b.cur == nil {
		return nil
	}
	f := b.cur
	b.cur = nil
	return b.buf.close(context.Background(), f, b.tags.bytes(b.count-1), next)
}

// bytes returns the Tags elements of fragment n (0-based), in the SDK's
// order: the notification event, then the image event, each a Tags element
// of its own carrying the custom pairs; without an event, one Tags element
// per custom pair.
func (p *tagPlan) bytes(n int) []byte {
	image := p.image && n%p.imageEvery == 0
	var out []byte
	if p.notify {
		out = appendTags(out, p.simple(tagNotify, ""))
	}
	if image {
		out = appendTags(out, p.simple(tagImage, p.prefix))
	}
	if !p.notify && !image {
		for _, t := range p.pairs {
			out = appendTags(out, []mkv.SimpleTag{{Name: t.Name, Value: t.Value}})
		}
	}
	return out
}

// simple lists an event's SimpleTags: the event, the prefix (image events)
// and the custom pairs.
func (p *tagPlan) simple(event, prefix string) []mkv.SimpleTag {
	st := []mkv.SimpleTag{{Name: event}}
	if prefix != "" {
		st = append(st, mkv.SimpleTag{Name: tagImagePrefix, Value: prefix})
	}
	for _, t := range p.pairs {
		st = append(st, mkv.SimpleTag{Name: t.Name, Value: t.Value})
	}
	return st
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
