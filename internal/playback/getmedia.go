package playback

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/stream"
)

// StartSelector is GetMedia's starting point (§4.1).
type StartSelector struct {
	Type                string // NOW, EARLIEST, FRAGMENT_NUMBER, SERVER_TIMESTAMP, PRODUCER_TIMESTAMP, CONTINUATION_TOKEN
	AfterFragmentNumber string
	StartTimestamp      *time.Time
	ContinuationToken   string
}

// Sink receives GetMedia's chunks; Flush pushes them to the client at once.
type Sink interface {
	io.Writer
	Flush() error
}

// GetMedia validates the request, takes a reader slot, and returns the function that streams
// chunks (stored ones first, then live ones as they arrive) until the client goes away, the
// stream is deleted, or no fragment arrived for IdleClose. release frees the slot.
func (s *Service) GetMedia(ctx context.Context, ref stream.Ref, sel StartSelector) (run func(Sink) error, release func(), err error) {
	st, err := s.Streams.Describe(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	k := fragstore.KeyOf(st)
	after, err := s.startAfter(ctx, st, k, sel)
	if err != nil {
		return nil, nil, err
	}
	if err := s.acquire(k); err != nil {
		return nil, nil, fmt.Errorf("%w: stream %s already has %d GetMedia connections", err, st.Name, s.maxReaders())
	}
	return func(sink Sink) error { return s.tail(ctx, ref, k, after, sink) }, func() { s.releaseSlot(k) }, nil
}

// startAfter turns the selector into "send fragments with Seq > n".
func (s *Service) startAfter(ctx context.Context, st *stream.Stream, k fragstore.Key, sel StartSelector) (uint64, error) {
	switch sel.Type {
	case "NOW":
		last, err := s.Store.LastSeq(ctx, k)
		return max(last, s.Hub.LastBuffered(k)), err
	case "EARLIEST":
		return 0, nil
	case "FRAGMENT_NUMBER", "CONTINUATION_TOKEN":
		n := sel.AfterFragmentNumber
		if sel.Type == "CONTINUATION_TOKEN" {
			n = sel.ContinuationToken
		}
		if n == "" {
			return 0, stream.Invalid("StartSelector of type %s needs its fragment number or token", sel.Type)
		}
		created, seq, err := fragment.ParseNumber(n)
		if err != nil {
			return 0, stream.Invalid("%v", err)
		}
		if created != k.CreatedMs {
			return 0, fmt.Errorf("%w: %s does not belong to stream %s", stream.ErrNotFound, n, st.Name)
		}
		return seq, nil
	case "SERVER_TIMESTAMP", "PRODUCER_TIMESTAMP":
		if sel.StartTimestamp == nil {
			return 0, stream.Invalid("StartSelector of type %s needs StartTimestamp", sel.Type)
		}
		kind := fragstore.ServerTime
		if sel.Type == "PRODUCER_TIMESTAMP" {
			kind = fragstore.ProducerTime
		}
		seq, err := s.Store.SeqAt(ctx, k, kind, *sel.StartTimestamp)
		if errors.Is(err, fragstore.ErrNotFound) {
			// Nothing stored at or after that time yet: start with the next live fragment.
			last, err := s.Store.LastSeq(ctx, k)
			return max(last, s.Hub.LastBuffered(k)), err
		}
		return seq - 1, err
	case "":
		return 0, stream.Invalid("StartSelector.StartSelectorType is required")
	}
	return 0, stream.Invalid("StartSelectorType %q is not one of NOW, EARLIEST, FRAGMENT_NUMBER, SERVER_TIMESTAMP, PRODUCER_TIMESTAMP, CONTINUATION_TOKEN", sel.Type)
}

// tail sends every fragment after `after`, then waits for new ones.
func (s *Service) tail(ctx context.Context, ref stream.Ref, k fragstore.Key, after uint64, sink Sink) error {
	idle := s.IdleClose
	if idle <= 0 {
		idle = 30 * time.Second
	}
	timer := time.NewTimer(idle)
	defer timer.Stop()
	headers := headerCache{}
	var buf []byte
	for {
		wake := s.Hub.Wait(k) // before reading, so a publish in between is not missed
		st, err := s.Streams.Describe(ctx, ref)
		if err != nil || fragstore.KeyOf(st) != k {
			return nil // deleted: the stream simply ends
		}
		items, err := s.next(ctx, st, k, after, headers)
		if err != nil {
			// A damaged record (or one whose key cannot be used) ends the stream with KVS's
			// error naming that fragment, never with its bytes as if whole.
			number := fragment.FormatNumber(k.CreatedMs, after+1)
			if hdr := anyHeader(headers); hdr != nil {
				id, code := errorOf(err)
				_, _ = sink.Write(appendErrorChunk(nil, hdr, number, id, code))
				_ = sink.Flush()
			}
			return err
		}
		for _, it := range items {
			buf = appendChunk(buf[:0], it.Header, it.Media, it.Fragment, liveTrailer(it.Fragment, s.now()))
			if _, err := sink.Write(buf); err != nil {
				return nil // client went away
			}
			after = it.Fragment.Seq
		}
		if len(items) > 0 {
			if err := sink.Flush(); err != nil {
				return nil
			}
			if !timer.Stop() {
				<-timer.C
			}
			timer.Reset(idle)
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			return nil
		case <-wake:
		}
	}
}

// next reads the next batch after `after`: from the store when the stream archives, else from
// the hub's memory buffer.
func (s *Service) next(ctx context.Context, st *stream.Stream, k fragstore.Key, after uint64, headers headerCache) ([]Item, error) {
	if st.RetentionHours == 0 {
		return s.Hub.Buffered(k, after), nil
	}
	frags, err := s.Store.After(ctx, k, after, 8)
	if err != nil {
		return nil, err
	}
	items := make([]Item, 0, len(frags))
	for _, f := range frags {
		media, header, err := s.read(ctx, k, f, headers)
		if errors.Is(err, fragstore.ErrNotFound) {
			continue // expired while we walked: skip it, as retention says
		}
		if err != nil {
			return nil, err
		}
		items = append(items, Item{Fragment: f, Header: header, Media: media})
	}
	return items, nil
}

func anyHeader(h headerCache) []byte {
	for _, v := range h {
		return v
	}
	return nil
}

func (s *Service) maxReaders() int {
	if s.MaxReaders > 0 {
		return s.MaxReaders
	}
	return 3
}

func (s *Service) acquire(k fragstore.Key) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.readers == nil {
		s.readers = map[fragstore.Key]int{}
	}
	if s.readers[k] >= s.maxReaders() {
		return ErrConnectionLimit
	}
	s.readers[k]++
	return nil
}

func (s *Service) releaseSlot(k fragstore.Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.readers[k]--; s.readers[k] <= 0 {
		delete(s.readers, k)
	}
}
