package imagegen

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/stream"
)

// component is the generator's name in the catalog's state bucket.
const component = "imagegen"

// savedCursor is the durable record of an enabled stream: the last fragment whose images are
// all stored. Its presence means "enabled as of the last record"; a stream that is not enabled
// has none.
type savedCursor struct {
	Version int    `json:"v"`
	Seq     uint64 `json:"seq"`
}

const cursorVersion = 1

// stateKey names a stream incarnation: creation ms first, so a re-created stream of the same
// name never inherits a cursor.
func stateKey(k fragstore.Key) string { return fmt.Sprintf("%d_%s", k.CreatedMs, k.Name) }

func parseStateKey(s string) (fragstore.Key, bool) {
	ms, name, ok := strings.Cut(s, "_")
	created, err := strconv.ParseInt(ms, 10, 64)
	return fragstore.Key{Name: name, CreatedMs: created}, ok && err == nil && name != ""
}

func (g *Generator) saveCursor(ctx context.Context, t *task) error {
	b, _ := json.Marshal(savedCursor{Version: cursorVersion, Seq: t.cursor})
	err := g.cfg.Catalog.SaveState(ctx, component, stateKey(t.key), b)
	if err != nil && ctx.Err() == nil {
		// The in-memory cursor stays ahead; the next save records it. A crash before then
		// redoes fragments, which overwrites the same objects.
		g.log.Error("saving the image cursor", "stream", t.key.Name, "err", err)
	}
	return err
}

// resume sets up every existing stream before the workers start: an enabled stream with a
// cursor continues from it; an enabled stream without one (enabled while kvsd was down, or
// fragments stored by a kvsd without image generation) starts after its newest fragment; a
// stream that is not enabled loses its cursor. Cursors of deleted streams are removed.
func (g *Generator) resume(ctx context.Context) error {
	keys, err := g.cfg.Catalog.StateKeys(ctx, component)
	if err != nil {
		return err
	}
	saved := map[fragstore.Key]string{}
	for _, s := range keys {
		if k, ok := parseStateKey(s); ok {
			saved[k] = s
		}
	}
	after := ""
	for {
		page, err := g.cfg.Catalog.ListStreams(ctx, "", after, 1000)
		if err != nil {
			return err
		}
		for _, st := range page {
			k := fragstore.KeyOf(st)
			_, had := saved[k]
			delete(saved, k)
			if err := g.resumeStream(ctx, st, had); err != nil {
				return fmt.Errorf("stream %s: %w", st.Name, err)
			}
		}
		if len(page) < 1000 {
			break
		}
		after = page[len(page)-1].Name
	}
	for k, s := range saved {
		if err := g.cfg.Catalog.DeleteState(ctx, component, s); err != nil {
			return fmt.Errorf("removing the cursor of deleted stream %s: %w", k.Name, err)
		}
	}
	return nil
}

func (g *Generator) resumeStream(ctx context.Context, st *stream.Stream, had bool) error {
	k := fragstore.KeyOf(st)
	on := enabled(st)
	g.mu.Lock()
	t := g.taskLocked(k)
	g.mu.Unlock()
	t.known, t.enabled = true, on
	switch {
	case on && had:
		b, err := g.cfg.Catalog.LoadState(ctx, component, stateKey(k))
		if err != nil {
			return err
		}
		var c savedCursor
		if err := json.Unmarshal(b, &c); err != nil || c.Version != cursorVersion {
			return fmt.Errorf("image cursor %q is not readable: %v", b, err)
		}
		t.cursor = c.Seq
		g.mu.Lock()
		g.enqueueLocked(t) // there may be work left from before the restart
		g.mu.Unlock()
		return nil
	case !on && had:
		if err := g.cfg.Catalog.DeleteState(ctx, component, stateKey(k)); err != nil {
			return err
		}
	}
	last, err := g.cfg.Store.LastSeq(ctx, k)
	if err != nil {
		return err
	}
	t.cursor = last
	if on {
		return g.saveCursor(ctx, t)
	}
	return nil
}
