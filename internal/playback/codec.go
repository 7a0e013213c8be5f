package playback

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/mkv"
)

// maxCodecEntries bounds the header → codec map; past it the map starts over (a re-read of a
// few headers), which only happens on a server that has seen very many connections.
const maxCodecEntries = 1 << 14

// codecs maps each stored header to one header of the same stream with the same codec
// configuration. Every connection of a producer sends its own Matroska header (a new
// SegmentUID, a new title), so header ids change at every reconnect; players need a new
// initialization segment (HLS EXT-X-MAP, the end of a DASH manifest) only when the tracks'
// codecs or codec private data change.
type codecs struct {
	mu    sync.Mutex
	canon map[codecRef]string // a header → the first header seen with its codec configuration
	first map[codecRef]string // a codec configuration (sha256 in id) → that first header
}

type codecRef struct {
	k  fragstore.Key
	id string
}

// sameCodecs returns frags with each HeaderID replaced by the first header seen with the same
// codec configuration, so that comparing HeaderIDs compares codecs. The fragments are copies.
func (s *Service) sameCodecs(ctx context.Context, k fragstore.Key, frags []*fragment.Fragment) ([]*fragment.Fragment, error) {
	out := make([]*fragment.Fragment, len(frags))
	for i, f := range frags {
		id, err := s.canonicalHeader(ctx, k, f.HeaderID)
		if err != nil {
			return nil, err
		}
		c := *f
		c.HeaderID = id
		out[i] = &c
	}
	return out, nil
}

func (s *Service) canonicalHeader(ctx context.Context, k fragstore.Key, id string) (string, error) {
	c := &s.codecs
	c.mu.Lock()
	canon, ok := c.canon[codecRef{k, id}]
	c.mu.Unlock()
	if ok {
		return canon, nil
	}
	hdr, err := s.Store.Header(ctx, k, id)
	if err != nil {
		return "", fmt.Errorf("header %s: %w", id, err)
	}
	key := codecKey(hdr)
	if key == "" {
		return id, nil // unreadable: it stands alone, and opening it reports why
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.canon == nil || len(c.canon) >= maxCodecEntries {
		c.canon, c.first = map[codecRef]string{}, map[codecRef]string{}
	}
	canon, ok = c.first[codecRef{k, key}]
	if !ok {
		canon = id
		c.first[codecRef{k, key}] = id
	}
	c.canon[codecRef{k, id}] = canon
	return canon, nil
}

// codecKey digests what players and the muxer depend on in a header: the timecode scale and,
// per track, its number, type, codec id and codec private data. "" when it does not parse.
func codecKey(hdr []byte) string {
	h, _, err := mkv.ReadFrames(hdr, mkv.Limits{})
	if err != nil || h == nil {
		return ""
	}
	d := sha256.New()
	fmt.Fprintf(d, "%d;", h.TimecodeScale)
	for _, t := range h.Tracks {
		var n [16]byte
		binary.BigEndian.PutUint64(n[:8], t.Number)
		binary.BigEndian.PutUint64(n[8:], t.Type)
		d.Write(n[:])
		fmt.Fprintf(d, "%d:%s%d:", len(t.CodecID), t.CodecID, len(t.CodecPrivate))
		d.Write(t.CodecPrivate)
	}
	return string(d.Sum(nil))
}
