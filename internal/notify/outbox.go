package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kvsd/kvsd/internal/catalog"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/stream"
	"github.com/kvsd/kvsd/internal/streamwork"
)

// State is the catalog's store of small durable records (catalog.State). LoadState answers
// catalog.ErrNoState for a key never saved.
type State = catalog.State

// Catalog components:
//
//	notify        <createdMs>_<name>                      → decimal seq of the last fragment handled (streamwork.Cursors)
//	notify-outbox <createdMs>_<name>/<seq:20>/<order:20>  → JSON imageRecord, until acknowledged
//
// Outbox keys sort by stream, then fragment, then recording order, which is delivery order.
const (
	cursorComponent = "notify"
	outboxComponent = "notify-outbox"
)

// stateWriteTimeout bounds the catalog writes that follow an acknowledgement. They run even
// when Run's context has just ended: a write lost there only means one duplicate later.
const stateWriteTimeout = 5 * time.Second

// loadCursor reads st's cursor once; later runs use the worker-owned copy.
func (n *Notifier) loadCursor(ctx context.Context, st *streamState) error {
	if st.cursorLoaded {
		return nil
	}
	seq, ok, err := n.storedCursor(ctx, st.key)
	if err != nil {
		return err
	}
	st.cursorLoaded, st.hasCursor, st.cursor, st.saved, st.savedAt = true, ok, seq, seq, n.cfg.Now()
	return nil
}

func (n *Notifier) storedCursor(ctx context.Context, k fragstore.Key) (uint64, bool, error) {
	seq, ok, err := n.cursors.Load(ctx, k)
	if err != nil {
		return 0, false, fmt.Errorf("read notification cursor of %s: %w", k.Name, err)
	}
	return seq, ok, nil
}

func (n *Notifier) saveCursor(ctx context.Context, st *streamState) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stateWriteTimeout)
	defer cancel()
	if err := n.cursors.Save(wctx, st.key, st.cursor); err != nil {
		return fmt.Errorf("save notification cursor of %s: %w", st.key.Name, err)
	}
	st.hasCursor, st.saved, st.savedAt = true, st.cursor, n.cfg.Now()
	return nil
}

// reload reads st's cursor and recorded images again at the start of a fresh claim: in a
// cluster, the node that held the stream before may have sent events and moved the cursor,
// and image events are recorded by whichever node made the images.
func (n *Notifier) reload(ctx context.Context, st *streamState, fresh bool) error {
	if !fresh {
		return nil
	}
	st.cursorLoaded = false
	prefix := streamwork.StateKey(st.key) + "/"
	keys, err := n.cfg.State.StateKeys(ctx, outboxComponent)
	if err != nil {
		return fmt.Errorf("read the notification outbox: %w", err)
	}
	var images []imageEntry
	for _, key := range keys {
		rest, ok := strings.CutPrefix(key, prefix)
		if !ok {
			continue
		}
		seqText, _, _ := strings.Cut(rest, "/")
		seq, err := strconv.ParseUint(seqText, 10, 64)
		if err != nil {
			continue
		}
		b, err := n.cfg.State.LoadState(ctx, outboxComponent, key)
		if errors.Is(err, catalog.ErrNoState) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read the notification outbox: %w", err)
		}
		var rec imageRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			continue // loadOutbox warns about it
		}
		rec.StreamName = st.key.Name
		images = append(images, imageEntry{key: key, seq: seq, rec: rec})
	}
	n.mu.Lock()
	st.images = images // in key order, as StateKeys lists them
	n.mu.Unlock()
	return nil
}

// saveCursors writes the cursors that moved over untagged fragments only, once the workers
// have stopped.
func (n *Notifier) saveCursors() {
	n.mu.Lock()
	var todo []*streamState
	for _, st := range n.streams {
		if st.hasCursor && st.cursor != st.saved {
			todo = append(todo, st)
		}
	}
	n.mu.Unlock()
	for _, st := range todo {
		if err := n.saveCursor(context.Background(), st); err != nil {
			n.log.Warn("saving notification cursor at shutdown", "stream", st.key.Name, "err", err)
		}
	}
}

// disable drops the cursor and the recorded images of a stream whose notifications are off:
// a later ENABLED starts afresh at that time's fragments, as on AWS.
func (n *Notifier) disable(ctx context.Context, st *streamState) error {
	if st.hasCursor {
		if err := n.cursors.Delete(ctx, st.key); err != nil {
			return fmt.Errorf("delete notification cursor of %s: %w", st.key.Name, err)
		}
		st.hasCursor, st.cursor, st.saved = false, 0, 0
	}
	for {
		img, ok := n.firstImage(st)
		if !ok {
			return nil
		}
		if err := n.dropImage(ctx, st, img.key); err != nil {
			return err
		}
	}
}

// forget removes the state of a deleted stream.
func (n *Notifier) forget(ctx context.Context, st *streamState) error {
	if err := n.disable(ctx, st); err != nil {
		return err
	}
	st.cursorLoaded = false
	n.mu.Lock()
	st.forgotten, st.dest = true, ""
	n.mu.Unlock()
	return nil
}

// loadOutboxOnce loads the outbox unless it is loaded; a failure is retried at the next
// ResyncInterval.
func (n *Notifier) loadOutboxOnce(ctx context.Context) {
	n.mu.Lock()
	loaded := n.outboxOK
	n.mu.Unlock()
	if loaded {
		return
	}
	if err := n.loadOutbox(ctx); err != nil && ctx.Err() == nil {
		n.log.Error("loading the notification outbox; retrying at the next resync", "err", err)
	}
}

// imageRecord is the outbox value of one IMAGE_DELIVERED event.
type imageRecord struct {
	StreamArn      string `json:"arn"`
	StreamName     string `json:"name"`
	FragmentNumber string `json:"fragment"`
	ImageUri       string `json:"uri"`
	ImageMs        int64  `json:"imageMs"`
	RecordedMs     int64  `json:"recordedMs"`
}

// imageEntry is a recorded, unacknowledged image event.
type imageEntry struct {
	key string // outbox key
	seq uint64 // its fragment's sequence
	rec imageRecord
}

func (e imageEntry) event() event {
	r := e.rec
	return imageEvent(r.StreamArn, r.StreamName, r.FragmentNumber, r.ImageUri, time.UnixMilli(r.ImageMs), time.UnixMilli(r.RecordedMs))
}

func (n *Notifier) loadOutbox(ctx context.Context) error {
	keys, err := n.cfg.State.StateKeys(ctx, outboxComponent)
	if err != nil {
		return err
	}
	var entries []imageEntry
	for _, key := range keys {
		sk, rest, _ := strings.Cut(key, "/")
		seqText, _, _ := strings.Cut(rest, "/")
		k, ok := streamwork.ParseStateKey(sk)
		seq, err := strconv.ParseUint(seqText, 10, 64)
		if !ok || err != nil {
			n.log.Warn("ignoring a malformed notification outbox key", "key", key)
			continue
		}
		b, err := n.cfg.State.LoadState(ctx, outboxComponent, key)
		if errors.Is(err, catalog.ErrNoState) {
			continue // delivered meanwhile (an ImageDelivered before Run)
		}
		if err != nil {
			return err
		}
		var rec imageRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			n.log.Warn("ignoring a damaged notification outbox entry", "key", key, "err", err)
			continue
		}
		rec.StreamName = k.Name
		entries = append(entries, imageEntry{key: key, seq: seq, rec: rec})
	}
	n.mu.Lock()
	woken := map[fragstore.Key]bool{}
	for _, e := range entries {
		k, _ := streamwork.ParseStateKey(e.key[:strings.IndexByte(e.key, '/')])
		insertImage(n.stateLocked(k), e)
		woken[k] = true
	}
	n.outboxOK = true
	n.mu.Unlock()
	for k := range woken {
		n.work.Wake(k)
	}
	return nil
}

// ImageDelivered records an IMAGE_DELIVERED event for an image the stream's image generation
// stored at uri, when the stream has the tag kvsd:NotifyImages=true and an ENABLED notification
// configuration. The event is durable when ImageDelivered returns nil; it is then delivered at
// least once, in order with the stream's other events.
func (n *Notifier) ImageDelivered(ctx context.Context, st *stream.Stream, uri string, imageTime time.Time, fragmentNumber string) error {
	if st.Tags[NotifyImagesTag] != "true" || enabledURI(st) == "" {
		return nil
	}
	k := fragstore.KeyOf(st)
	created, seq, err := fragment.ParseNumber(fragmentNumber)
	if err != nil {
		return fmt.Errorf("IMAGE_DELIVERED event of %s: %w", st.Name, err)
	}
	if created != k.CreatedMs {
		return fmt.Errorf("IMAGE_DELIVERED event of %s: fragment %s belongs to another stream", st.Name, fragmentNumber)
	}
	now := n.cfg.Now()
	rec := imageRecord{StreamArn: st.ARN, StreamName: st.Name, FragmentNumber: fragmentNumber, ImageUri: uri,
		ImageMs: imageTime.UnixMilli(), RecordedMs: now.UnixMilli()}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	n.mu.Lock()
	// Wall-clock nanoseconds keep the order across restarts; the max keeps it within one run.
	n.lastImageID = max(now.UnixNano(), n.lastImageID+1)
	key := fmt.Sprintf("%s/%020d/%020d", streamwork.StateKey(k), seq, n.lastImageID)
	n.mu.Unlock()
	if err := n.cfg.State.SaveState(ctx, outboxComponent, key, b); err != nil {
		return fmt.Errorf("record IMAGE_DELIVERED event of %s: %w", st.Name, err)
	}
	n.m.events.WithLabelValues(TypeImageDelivered).Inc()
	n.mu.Lock()
	insertImage(n.stateLocked(k), imageEntry{key: key, seq: seq, rec: rec})
	n.mu.Unlock()
	n.work.Wake(k)
	return nil
}

// insertImage adds e to st.images in key order, once.
func insertImage(st *streamState, e imageEntry) {
	i, found := slices.BinarySearchFunc(st.images, e.key, func(a imageEntry, key string) int { return strings.Compare(a.key, key) })
	if !found {
		st.images = slices.Insert(st.images, i, e)
	}
}

func (n *Notifier) firstImage(st *streamState) (imageEntry, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(st.images) == 0 {
		return imageEntry{}, false
	}
	return st.images[0], true
}

// dropImage removes an acknowledged (or abandoned) image event, durably first.
func (n *Notifier) dropImage(ctx context.Context, st *streamState, key string) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stateWriteTimeout)
	defer cancel()
	if err := n.cfg.State.DeleteState(wctx, outboxComponent, key); err != nil {
		return fmt.Errorf("remove delivered IMAGE_DELIVERED event of %s: %w", st.key.Name, err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	st.images = slices.DeleteFunc(st.images, func(e imageEntry) bool { return e.key == key })
	return nil
}
