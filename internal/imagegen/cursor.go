package imagegen

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/stream"
)

// component is the generator's name in the catalog's state bucket; its keys are
// streamwork.StateKey(stream).
const component = "imagegen"

// savedCursor is the durable record of an enabled stream: the last fragment whose images are
// all stored. Its presence means "enabled as of the last record"; a stream that is not enabled
// has none.
type savedCursor struct {
	Version int    `json:"v"`
	Seq     uint64 `json:"seq"`
}

const cursorVersion = 1

func encodeCursor(seq uint64) []byte {
	b, _ := json.Marshal(savedCursor{Version: cursorVersion, Seq: seq})
	return b
}

func decodeCursor(b []byte) (uint64, error) {
	var c savedCursor
	if err := json.Unmarshal(b, &c); err != nil {
		return 0, err
	}
	if c.Version != cursorVersion {
		return 0, fmt.Errorf("version %d, want %d", c.Version, cursorVersion)
	}
	return c.Seq, nil
}

func (g *Generator) saveCursor(ctx context.Context, t *task) error {
	err := g.cursors.Save(ctx, t.key, t.cursor)
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
	keys, err := g.cursors.Keys(ctx)
	if err != nil {
		return err
	}
	saved := map[fragstore.Key]bool{}
	for _, k := range keys {
		saved[k] = true
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
	for k := range saved {
		if err := g.cursors.Delete(ctx, k); err != nil {
			return fmt.Errorf("removing the cursor of deleted stream %s: %w", k.Name, err)
		}
	}
	return nil
}

func (g *Generator) resumeStream(ctx context.Context, st *stream.Stream, had bool) error {
	k := fragstore.KeyOf(st)
	on := enabled(st)
	t := g.taskFor(k)
	t.known, t.enabled = true, on
	switch {
	case on && had:
		seq, _, err := g.cursors.Load(ctx, k)
		if err != nil {
			return err
		}
		t.cursor = seq // the engine's Run wakes the stream: there may be work left from before
		return nil
	case !on && had:
		if err := g.cursors.Delete(ctx, k); err != nil {
			return err
		}
	}
	last, err := g.cfg.Store.LastSeq(ctx, k)
	if err != nil {
		return err
	}
	t.cursor = last
	if on && g.shared == nil {
		return g.saveCursor(ctx, t)
	}
	// In a cluster the cursor moves only under the stream's claim: the first turn records it
	// (observe, after reload finds none).
	return nil
}

// reload reads t's cursor again at the start of a fresh claim: the node that held the stream
// before may have moved it. A stream without one is not enabled as far as the catalog knows;
// observe records the cursor kept in memory if it is.
func (g *Generator) reload(ctx context.Context, t *task) error {
	seq, ok, err := g.cursors.Load(ctx, t.key)
	if err != nil {
		return err
	}
	t.pending, t.unsaved = nil, 0
	if ok {
		t.cursor, t.enabled, t.known = seq, true, true
	} else {
		t.enabled = false
	}
	return nil
}
