package imagegen

import (
	"context"
	"errors"
	"time"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/imaging"
	"github.com/kvsd/kvsd/internal/keys"
	"github.com/kvsd/kvsd/internal/objstore"
	"github.com/kvsd/kvsd/internal/stream"
	"github.com/kvsd/kvsd/internal/streamwork"
)

const (
	// cursorEvery is how many fragments a stream working through a backlog handles between
	// two records of its cursor (each is a sync of the local folder and a catalog commit,
	// which cost as much CPU as a large part of an image); a stream that has caught up records
	// it after every turn.
	cursorEvery = 8
	// turnFragments is how many fragments a worker handles for one stream before it queues
	// the stream behind the others, so a backlog on one stream does not starve the rest.
	turnFragments = 4
	// queueProbe bounds how far ahead the queue-depth gauge counts (one index read per turn).
	queueProbe = 64
	// codeMediaError labels images that could not be rendered.
	codeMediaError = "MEDIA_ERROR"
)

// pendingFragment is a fragment whose images are rendered but not all stored. It survives
// failed uploads (no second decode on retry), not restarts (the fragment is rendered again).
type pendingFragment struct {
	frag   *fragment.Fragment
	meta   map[string]string
	images []renderedImage
	next   int // images[:next] are stored
}

type renderedImage struct {
	at     time.Time
	format imaging.Format
	data   []byte
}

// process is one worker turn on a stream.
func (g *Generator) process(ctx context.Context, t *task) streamwork.Outcome {
	st, err := g.cfg.Catalog.GetStream(ctx, t.key.Name)
	if errors.Is(err, stream.ErrNotFound) || (err == nil && st.CreationTime.UnixMilli() != t.key.CreatedMs) {
		g.forget(t)
		return streamwork.Drop() // the engine deletes the cursor
	}
	if err == nil {
		err = g.observe(ctx, t, st)
	}
	if err != nil {
		return g.retryAfterError(ctx, t, err)
	}
	if !t.enabled {
		return streamwork.Done()
	}
	frags, err := g.cfg.Store.After(ctx, t.key, t.cursor, queueProbe+1)
	if err != nil {
		return g.retryAfterError(ctx, t, err)
	}
	g.setQueue(t, st, len(frags))
	if len(frags) > 0 {
		g.setBehind(t, frags[0])
	}
	g.checkExpired(ctx, t, frags)
	n := min(len(frags), turnFragments)
	more := len(frags) > n
	// The cursor is recorded at the end of a turn that leaves nothing to do (caught up, or
	// waiting for a retry), and during a backlog once cursorEvery fragments are handled: a
	// crash redoes at most that many fragments' images, under the same keys.
	defer func() {
		if t.unsaved > 0 && (!more || t.unsaved >= cursorEvery) &&
			g.syncObjects(ctx, t) == nil && g.saveCursor(ctx, t) == nil {
			t.unsaved = 0
		}
	}()
	for i, f := range frags[:n] {
		if ctx.Err() != nil {
			more = false
			return streamwork.Done()
		}
		if retry := g.handle(ctx, t, st, f); retry != nil {
			more = false
			g.setQueue(t, st, len(frags)-i)
			g.setBehind(t, f)
			return *retry
		}
		t.cursor = f.Seq
		t.unsaved++
		if i+1 < len(frags) {
			g.setBehind(t, frags[i+1]) // the lag counts from the oldest fragment still without images
		}
	}
	g.setQueue(t, st, len(frags)-n)
	switch {
	case more:
		g.setBehind(t, frags[n])
	default:
		// Caught up with what the turn listed; a fragment stored since (its wake came while
		// the turn ran, so the next turn is due) keeps the stream behind from that fragment,
		// or the stream would show no lag while it waits for a worker.
		g.setBehind(t, g.firstAfter(ctx, t))
	}
	if more {
		return streamwork.More()
	}
	return streamwork.Done()
}

// firstAfter returns the first fragment after the task's cursor, or nil (none, or the store
// could not say: the next turn reads it again).
func (g *Generator) firstAfter(ctx context.Context, t *task) *fragment.Fragment {
	frags, err := g.cfg.Store.After(ctx, t.key, t.cursor, 1)
	if err != nil || len(frags) == 0 {
		return nil
	}
	return frags[0]
}

// observe brings the task's view of the stream up to date. While a stream is not enabled its
// cursor follows the newest fragment (in memory: resume handles restarts), so that enabling
// applies from the next fragment; when it becomes enabled the cursor is recorded durably.
func (g *Generator) observe(ctx context.Context, t *task, st *stream.Stream) error {
	on := enabled(st)
	if !t.known {
		// A stream created after Run started (resume knows all older ones): every fragment it
		// has was persisted while this process watched, and this is the first wake.
		t.known = true
	}
	switch {
	case on && !t.enabled:
		// Recorded before any image: after a restart the stream resumes here. Until the
		// save succeeds the stream stays "not enabled" and the next wake tries again.
		if err := g.saveCursor(ctx, t); err != nil {
			return err
		}
		t.enabled, t.unsaved = true, 0
		return nil
	case on:
		return nil
	case t.enabled:
		t.enabled, t.pending, t.failures = false, nil, 0
		t.mu.Lock()
		t.status.tracked, t.status.behindSince, t.status.lagWarned = false, time.Time{}, false
		t.mu.Unlock()
		t.setFailing(nil)
		g.setQueue(t, st, 0)
		if err := g.cursors.Delete(ctx, t.key); err != nil {
			return err
		}
	}
	last, err := g.cfg.Store.LastSeq(ctx, t.key)
	if err != nil {
		return err
	}
	t.cursor = last
	return nil
}

// handle makes and delivers fragment f's images. It returns the turn's outcome when the
// fragment must be tried again, nil when it is done.
func (g *Generator) handle(ctx context.Context, t *task, st *stream.Stream, f *fragment.Fragment) *streamwork.Outcome {
	if !eligible(st, f) {
		if t.untagged++; t.untagged >= g.cfg.UntaggedWarnAfter && !t.warned {
			t.warned = true
			g.log.Warn("image generation is ENABLED but the stream's fragments carry no "+fragment.TagImageGeneration+
				" tag, so no images are made; tag fragments in the producer, or make every fragment eligible with "+
				"`aws kinesisvideo tag-stream --stream-name "+st.Name+" --tags "+StreamTag+"="+AllFragments+" --endpoint-url …`",
				"stream", st.Name, "fragments", t.untagged)
		}
		return nil
	}
	t.untagged = 0
	if t.pending == nil || t.pending.frag.Seq != f.Seq {
		p, err := g.renderFragment(ctx, t, st, f)
		switch {
		case ctx.Err() != nil:
			return retryIn(0, ctx.Err()) // stopping: the engine does not count it
		case errors.Is(err, fragstore.ErrNotFound):
			// Removed (retention, the disk budget) between the listing and the read.
			g.noteExpired(t, 1, "removed from the store while being read")
			return nil
		case errors.Is(err, imaging.ErrUnavailable) || errors.Is(err, keys.ErrKey):
			// Not the media's fault: keep the fragment until a kvsd with the media package runs,
			// or its key (key file, KMS) can be used again.
			t.setRenderError(err, "", g.cfg.Now())
			return retryIn(g.cfg.RetryMax, err)
		case err != nil:
			// The media cannot be decoded, now or later: count its images as failed, move on.
			t.setRenderError(err, t.dec.codecID, g.cfg.Now())
			g.metrics.failed.WithLabelValues(st.Name, codeMediaError).Inc()
			g.log.Warn("cannot render images of fragment; skipping it", "stream", st.Name, "fragment", f.Number, "err", err)
			return nil
		}
		t.pending = p
	}
	return g.deliver(ctx, t, st)
}

// renderFragment decodes f and encodes the images of its sample times.
func (g *Generator) renderFragment(ctx context.Context, t *task, st *stream.Stream, f *fragment.Fragment) (*pendingFragment, error) {
	cfg := st.ImageGeneration
	start := timeline(cfg, f)
	interval := time.Duration(*cfg.SamplingInterval) * time.Millisecond
	offsets := sampleOffsets(start, f.Duration, interval)
	p := &pendingFragment{frag: f, meta: metadata(f)}
	if len(offsets) == 0 {
		t.noteNoSample(f, start, interval, cfg.ImageSelectorType)
		return p, nil // nothing to decode: the stream's next sample time lies in a later fragment
	}
	v, err := loadVideo(ctx, g.cfg.Store, t.key, f, t.buf)
	if err != nil {
		return nil, err
	}
	// Render is done with the packets when it returns (images are copies), so the buffer is
	// the next fragment's.
	defer func() { t.buf = v.doc }()
	g.leadIn(ctx, t.key, f, v)
	dec, err := t.dec.get(g.cfg.NewDecoder, v)
	if err != nil {
		return nil, err
	}
	spec := configSpec(cfg)
	if err := g.render.enter(ctx); err != nil {
		return nil, err
	}
	began, before := g.cfg.Now(), dec.Stats()
	results := dec.Render(v.packets, offsets, spec)
	g.render.leave()
	g.metrics.render.Observe(g.cfg.Now().Sub(began).Seconds())
	g.metrics.observeRender(before, dec.Stats())

	var failed error
	for _, r := range results {
		switch {
		case r.Err == nil:
			p.images = append(p.images, renderedImage{at: start.Add(r.At).Truncate(time.Millisecond), format: spec.Format, data: r.Image})
		case !errors.Is(r.Err, imaging.ErrNoFrame):
			failed = r.Err
			g.metrics.failed.WithLabelValues(st.Name, codeMediaError).Inc()
		}
	}
	if failed != nil {
		t.setRenderError(failed, v.codecID, g.cfg.Now())
	}
	g.metrics.generated.WithLabelValues(st.Name).Add(float64(len(p.images)))
	return p, nil
}

// deliver stores the pending images in order, recomputing the destination from the current
// configuration (a corrected bucket applies to images still waiting). It returns the turn's
// outcome when an upload failed, nil when all are stored.
func (g *Generator) deliver(ctx context.Context, t *task, st *stream.Stream) *streamwork.Outcome {
	p := t.pending
	bucket, path, err := destination(st.ImageGeneration.DestinationConfig.Uri)
	if err != nil {
		return g.failDelivery(t, st, &objstore.Error{Code: "InvalidBucketName", Permanent: true, Err: err})
	}
	for p.next < len(p.images) {
		img := p.images[p.next]
		key := objectKey(path, imagePrefix(p.frag), g.cfg.AccountID, st.Name, img.at, imageID(st.ARN, p.frag.Number, img.at), img.format)
		pctx, cancel := context.WithTimeout(ctx, g.cfg.PutTimeout)
		began := g.cfg.Now()
		err := g.cfg.Objects.Put(pctx, bucket, key, img.data, contentType(img.format), p.meta)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return retryIn(0, ctx.Err()) // stopping: the engine does not count it
			}
			return g.failDelivery(t, st, err)
		}
		now := g.cfg.Now()
		g.metrics.put.Observe(now.Sub(began).Seconds())
		g.metrics.delivered.WithLabelValues(st.Name).Inc()
		// Fragment end on the server clock is when a live producer's fragment is complete.
		end := p.frag.ServerTime.Add(p.frag.Duration)
		g.metrics.latency.Observe(max(now.Sub(end), 0).Seconds())
		uri := "s3://" + bucket + "/" + key
		t.unsynced = true
		t.noteDelivered(uri, now)
		if g.cfg.OnDelivered != nil {
			g.cfg.OnDelivered(ctx, st, Delivered{URI: uri, ImageTime: img.at, FragmentNumber: p.frag.Number})
		}
		p.next++
	}
	t.pending, t.failures, t.lastLogged = nil, 0, ""
	t.setFailing(nil)
	return nil
}

// retryIn is a turn's outcome that tries again after d (0: after the engine's backoff).
func retryIn(d time.Duration, err error) *streamwork.Outcome {
	o := streamwork.RetryIn(d, err)
	if d <= 0 {
		o = streamwork.Retry(err)
	}
	return &o
}

// failDelivery records a failed upload and says when to try again: transient failures back
// off (the engine's backoff, RetryMin doubling to RetryMax); permanent ones wait RetryMax each
// time.
func (g *Generator) failDelivery(t *task, st *stream.Stream, err error) *streamwork.Outcome {
	t.failures++
	code, permanent := objstore.Code(err), objstore.IsPermanent(err)
	var wait time.Duration // the engine's backoff
	if permanent {
		wait = g.cfg.RetryMax
	}
	g.metrics.failed.WithLabelValues(st.Name, code).Inc()
	msg := err.Error()
	var oe *objstore.Error
	if errors.As(err, &oe) && oe.Err != nil {
		msg = oe.Err.Error() // the code is reported on its own
	}
	t.setFailing(&deliveryError{Code: code, Message: msg, Permanent: permanent, At: g.cfg.Now(),
		Attempts: t.failures, URI: st.ImageGeneration.DestinationConfig.Uri})
	if code != t.lastLogged {
		t.lastLogged = code
		g.log.Warn("image delivery failed; it is retried until it succeeds", "stream", st.Name, "code", code,
			"permanent", permanent, "attempt", t.failures, "err", err)
	}
	return retryIn(wait, err)
}

// syncer is a destination whose Put is visible before it is durable (objstore.Dir): its
// Sync must succeed before the cursor may pass the images.
type syncer interface {
	Sync(ctx context.Context) error
}

// syncObjects makes the images stored since the last call durable, when the destination
// needs that. On failure the cursor is not recorded: a crash would redo those images.
func (g *Generator) syncObjects(ctx context.Context, t *task) error {
	s, ok := g.cfg.Objects.(syncer)
	if !ok || !t.unsynced {
		return nil
	}
	if err := s.Sync(ctx); err != nil {
		if ctx.Err() == nil {
			g.log.Error("making delivered images durable; the cursor waits", "stream", t.key.Name, "err", err)
		}
		return err
	}
	t.unsynced = false
	return nil
}

// retryAfterError handles a failure to read the catalog or the store: try again soon.
func (g *Generator) retryAfterError(ctx context.Context, t *task, err error) streamwork.Outcome {
	if ctx.Err() != nil {
		return streamwork.Done()
	}
	g.log.Error("image generation could not read its stream", "stream", t.key.Name, "err", err)
	return streamwork.RetryIn(g.cfg.RetryMin, err)
}

// forget drops a deleted stream's task, decoder and metrics (the engine deletes its cursor).
func (g *Generator) forget(t *task) {
	g.mu.Lock()
	if g.tasks[t.key] == t {
		delete(g.tasks, t.key)
	}
	g.mu.Unlock()
	t.dec.close()
	g.metrics.forget(t.key.Name)
}

func (g *Generator) setQueue(t *task, st *stream.Stream, n int) {
	g.metrics.queue.WithLabelValues(st.Name).Set(float64(n))
	t.mu.Lock()
	t.status.queued = n
	t.mu.Unlock()
}
