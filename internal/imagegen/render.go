package imagegen

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/imaging"
	"github.com/kvsd/kvsd/internal/mkv"
)

// video is one fragment's video track ready for a Decoder.
type video struct {
	codecID      string
	codecPrivate []byte
	headerID     string
	timecode     int64            // the cluster timecode, in ticks
	scale        time.Duration    // per tick
	packets      []imaging.Packet // PTS from the fragment start
	doc          []byte           // header and media bytes, which packets alias
}

// errMedia marks fragments whose bytes cannot be turned into packets (no video track, broken
// Matroska): GetImages answers MEDIA_ERROR, the generator skips them.
var errMedia = errors.New("media error")

// loadVideo reads f's stored header and media and extracts its video packets. Frame times are
// made relative to the cluster timecode, which is the fragment start on both timelines.
//
// The bytes are read into buf (which may be nil), reusing its memory: a worker passes the
// previous fragment's video.doc once that fragment's packets are no longer used, so reading a
// fragment allocates nothing that grows with its size.
func loadVideo(ctx context.Context, s Store, k fragstore.Key, f *fragment.Fragment, buf []byte) (*video, error) {
	hdr, err := s.Header(ctx, k, f.HeaderID)
	if err != nil {
		return nil, fmt.Errorf("header of fragment %s: %w", f.Number, err)
	}
	doc, err := s.MediaAppend(ctx, k, f, append(buf[:0], hdr...))
	if err != nil {
		return nil, err
	}
	h, frames, err := mkv.ReadFrames(doc, mkv.Limits{})
	if err != nil {
		return nil, fmt.Errorf("%w: fragment %s: %v", errMedia, f.Number, err)
	}
	track := videoTrack(h)
	if track == nil {
		return nil, fmt.Errorf("%w: fragment %s has no video track", errMedia, f.Number)
	}
	v := &video{codecID: track.CodecID, codecPrivate: track.CodecPrivate, headerID: f.HeaderID,
		timecode: int64(f.Timecode), scale: time.Duration(h.TimecodeScale), doc: doc,
		packets: make([]imaging.Packet, 0, len(frames))}
	for _, fr := range frames {
		if fr.Track != track.Number {
			continue
		}
		v.packets = append(v.packets, imaging.Packet{Data: fr.Data, Key: fr.Keyframe,
			PTS: time.Duration(fr.Timecode-v.timecode) * v.scale})
	}
	if len(v.packets) == 0 {
		return nil, fmt.Errorf("%w: fragment %s has no frame on video track %d", errMedia, f.Number, track.Number)
	}
	return v, nil
}

// leadIn prepends the frames v's first frames depend on when v does not start with a
// keyframe: producers that cut clusters by time (GStreamer's matroskamux with its default
// min-cluster-duration) leave the start of a fragment depending on a keyframe one or more
// fragments back. It walks back through adjacent fragments of the same header to the last
// keyframe before v (at most maxLeadIn fragments). It is best effort: without one, the samples
// before v's first keyframe have no frame.
func (g *Generator) leadIn(ctx context.Context, k fragstore.Key, f *fragment.Fragment, v *video) {
	if len(v.packets) == 0 || v.packets[0].Key {
		return
	}
	var lead []imaging.Packet
	for range maxLeadIn {
		prev := g.previous(ctx, k, f)
		if prev == nil || prev.HeaderID != v.headerID {
			return
		}
		pv, err := loadVideo(ctx, g.cfg.Store, k, prev, nil)
		if err != nil {
			return
		}
		key := -1
		for i, p := range pv.packets {
			if p.Key {
				key = i
			}
		}
		shift := time.Duration(pv.timecode-v.timecode) * v.scale
		chunk := make([]imaging.Packet, 0, len(pv.packets)-max(key, 0)+len(lead))
		for _, p := range pv.packets[max(key, 0):] {
			p.PTS += shift
			chunk = append(chunk, p)
		}
		lead = append(chunk, lead...)
		if key >= 0 {
			v.packets = append(lead, v.packets...)
			return
		}
		f = prev
	}
}

// maxLeadIn bounds how many fragments leadIn reads back (GOPs longer than that many fragments
// are not worth decoding for one image).
const maxLeadIn = 10

// previous returns the fragment that ends where f starts (on the producer clock), or nil.
func (g *Generator) previous(ctx context.Context, k fragstore.Key, f *fragment.Fragment) *fragment.Fragment {
	seq, err := g.cfg.Store.SeqAt(ctx, k, fragstore.ProducerTime, f.ProducerTime.Add(-time.Millisecond))
	if err != nil || seq >= f.Seq {
		return nil
	}
	prev, err := g.cfg.Store.Fragment(ctx, k, seq)
	if err != nil || !adjacent(prev, f) {
		return nil
	}
	return prev
}

// adjacent reports whether b directly follows a on the producer's clock (within a second).
func adjacent(a, b *fragment.Fragment) bool {
	gap := b.ProducerTime.Sub(a.ProducerTime.Add(a.Duration))
	return a.Seq < b.Seq && gap > -time.Second && gap < time.Second
}

// videoTrack picks the first video track (TrackType 1, or a V_ codec when the type is absent).
func videoTrack(h *mkv.Header) *mkv.Track {
	for i := range h.Tracks {
		t := &h.Tracks[i]
		if t.Type == 1 || (t.Type == 0 && strings.HasPrefix(t.CodecID, "V_")) {
			return t
		}
	}
	return nil
}

// decoderSlot holds a decoder for one codec configuration and replaces it when a fragment
// needs another (a producer restarted with new parameters).
type decoderSlot struct {
	dec      Decoder
	headerID string
	codecID  string
}

// get returns a decoder for v, reusing the current one when v has the same header.
func (d *decoderSlot) get(newDecoder NewDecoderFunc, v *video) (Decoder, error) {
	if d.dec != nil && d.headerID == v.headerID {
		return d.dec, nil
	}
	d.close()
	dec, err := newDecoder(v.codecID, v.codecPrivate)
	if err != nil {
		return nil, fmt.Errorf("decoder for %s: %w", v.codecID, err)
	}
	d.dec, d.headerID, d.codecID = dec, v.headerID, v.codecID
	return dec, nil
}

func (d *decoderSlot) close() {
	if d.dec != nil {
		d.dec.Close()
		d.dec = nil
	}
}

// gate bounds concurrent rendering to the cores: decoding is CPU-bound and single-threaded
// per decoder, so more renders than cores only queue inside the kernel scheduler.
type gate chan struct{}

func (g gate) enter(ctx context.Context) error {
	select {
	case g <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g gate) leave() { <-g }
