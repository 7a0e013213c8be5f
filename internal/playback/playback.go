// Package playback serves stored and live fragments: ListFragments, GetMediaForFragmentList and
// GetMedia. It decides what to send; kvsapi owns the HTTP framing.
package playback

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/stream"
)

// ErrConnectionLimit: a stream already has MaxReaders GetMedia connections.
var ErrConnectionLimit = errors.New("connection limit exceeded")

// store is what playback reads; *fragstore.Store implements it.
type store interface {
	LastSeq(ctx context.Context, k fragstore.Key) (uint64, error)
	Fragment(ctx context.Context, k fragstore.Key, seq uint64) (*fragment.Fragment, error)
	Media(ctx context.Context, k fragstore.Key, f *fragment.Fragment) ([]byte, error)
	MediaAppend(ctx context.Context, k fragstore.Key, f *fragment.Fragment, dst []byte) ([]byte, error)
	Sections(ctx context.Context, k fragstore.Key, frags []*fragment.Fragment) (*fragstore.Sections, error)
	Header(ctx context.Context, k fragstore.Key, id string) ([]byte, error)
	List(ctx context.Context, k fragstore.Key, kind fragstore.TimeKind, from, to time.Time, after fragstore.Cursor, limit int) ([]*fragment.Fragment, fragstore.Cursor, error)
	After(ctx context.Context, k fragstore.Key, afterSeq uint64, limit int) ([]*fragment.Fragment, error)
	SeqAt(ctx context.Context, k fragstore.Key, kind fragstore.TimeKind, t time.Time) (uint64, error)
}

type streams interface {
	Describe(ctx context.Context, ref stream.Ref) (*stream.Stream, error)
}

// Service answers the read APIs.
type Service struct {
	Streams streams
	Store   store
	Hub     *Hub
	Now     func() time.Time
	// Tokens signs and opens playback session tokens (HLS, DASH); Muxer makes what players
	// fetch (fMP4, MPEG-TS, clips). Both are needed for the playback operations.
	Tokens *Tokens
	Muxer  Muxer
	// IdleClose ends a caught-up GetMedia after this long without a new fragment (default 30 s).
	IdleClose time.Duration
	// MaxReaders is the concurrent GetMedia limit per stream (KVS: 3).
	MaxReaders int

	mu         sync.Mutex
	readers    map[fragstore.Key]int
	liveCounts map[string]liveCount // LIVE sessions' numbering, by token (selection.go)
	codecs     codecs               // headers with the same codecs (codec.go)
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Limits of the read APIs (§4.3, §4.4).
const (
	MaxListResults   = 1000
	MaxFragmentsList = 1000
)

// ListInput is ListFragments' request.
type ListInput struct {
	Ref        stream.Ref
	Selector   *Selector // required unless Token is set
	MaxResults *int
	Token      string
}

// Selector is a FragmentSelector: a timeline and an inclusive range on fragment start.
type Selector struct {
	Kind     fragstore.TimeKind
	From, To time.Time
}

// listToken is what ListFragments' NextToken carries: the query and where it stopped.
type listToken struct {
	Kind   fragstore.TimeKind `json:"k"`
	From   int64              `json:"f"`
	To     int64              `json:"t"`
	Cursor string             `json:"c"`
}

// ListFragments returns one page of fragments whose start lies in the selector's range.
func (s *Service) ListFragments(ctx context.Context, in ListInput) ([]*fragment.Fragment, string, error) {
	limit := MaxListResults
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > MaxListResults {
			return nil, "", stream.Invalid("MaxResults must be between 1 and %d, got %d", MaxListResults, *in.MaxResults)
		}
		limit = *in.MaxResults
	}
	sel, cursor, err := resolveListQuery(in)
	if err != nil {
		return nil, "", err
	}
	st, err := s.Streams.Describe(ctx, in.Ref)
	if err != nil {
		return nil, "", err
	}
	frags, next, err := s.Store.List(ctx, fragstore.KeyOf(st), sel.Kind, sel.From, sel.To, cursor, limit)
	if err != nil {
		return nil, "", fmt.Errorf("list fragments of %s: %w", st.Name, err)
	}
	if next.String() == "" { // the zero Cursor: no more pages
		return frags, "", nil
	}
	tok, _ := json.Marshal(listToken{Kind: sel.Kind, From: sel.From.UnixMilli(), To: sel.To.UnixMilli(), Cursor: next.String()})
	return frags, base64.StdEncoding.EncodeToString(tok), nil
}

func resolveListQuery(in ListInput) (Selector, fragstore.Cursor, error) {
	if in.Token == "" {
		if in.Selector == nil {
			return Selector{}, fragstore.Cursor{}, stream.Invalid("FragmentSelector is required unless NextToken is given")
		}
		if in.Selector.To.Before(in.Selector.From) {
			return Selector{}, fragstore.Cursor{}, stream.Invalid("TimestampRange.EndTimestamp is before StartTimestamp")
		}
		return *in.Selector, fragstore.Cursor{}, nil
	}
	bad := stream.Invalid("NextToken is not a token returned by ListFragments")
	raw, err := base64.StdEncoding.DecodeString(in.Token)
	if err != nil || len(in.Token) > 4096 {
		return Selector{}, fragstore.Cursor{}, bad
	}
	var t listToken
	if json.Unmarshal(raw, &t) != nil || (t.Kind != fragstore.ProducerTime && t.Kind != fragstore.ServerTime) {
		return Selector{}, fragstore.Cursor{}, bad
	}
	c, err := fragstore.ParseCursor(t.Cursor)
	if err != nil {
		return Selector{}, fragstore.Cursor{}, bad
	}
	return Selector{Kind: t.Kind, From: time.UnixMilli(t.From), To: time.UnixMilli(t.To)}, c, nil
}

// FragmentList validates a GetMediaForFragmentList request completely (so errors are proper
// API errors before any byte is sent) and returns the function that streams the chunks.
func (s *Service) FragmentList(ctx context.Context, ref stream.Ref, numbers []string) (func(w io.Writer) error, error) {
	k, frags, err := s.numbered(ctx, ref, "Fragments", numbers)
	if err != nil {
		return nil, err
	}
	return func(w io.Writer) error {
		headers := headerCache{}
		var buf []byte
		for _, f := range frags {
			media, header, err := s.read(ctx, k, f, headers)
			if err != nil {
				// Headers already sent: an error chunk as GetMedia's names the fragment (a
				// damaged record or an unusable key), then the connection ends.
				if hdr := anyHeader(headers); hdr != nil {
					id, code := errorOf(err)
					_, _ = w.Write(appendErrorChunk(nil, hdr, f.Number, id, code))
				}
				return err
			}
			buf = appendChunk(buf[:0], header, media, f, nil)
			if _, err := w.Write(buf); err != nil {
				return err
			}
		}
		return nil
	}, nil
}

// DescribeFragments returns the index entries (tags included) of the numbered fragments of a
// stream, in the order asked; an unknown number is ResourceNotFound, as in FragmentList.
func (s *Service) DescribeFragments(ctx context.Context, ref stream.Ref, numbers []string) ([]*fragment.Fragment, error) {
	_, frags, err := s.numbered(ctx, ref, "FragmentNumbers", numbers)
	return frags, err
}

// numbered resolves the fragment numbers a request lists in its field, in order: 1 to
// MaxFragmentsList of them, each the stream's.
func (s *Service) numbered(ctx context.Context, ref stream.Ref, field string, numbers []string) (fragstore.Key, []*fragment.Fragment, error) {
	if len(numbers) < 1 || len(numbers) > MaxFragmentsList {
		return fragstore.Key{}, nil, stream.Invalid("%s must list 1-%d fragment numbers, got %d", field, MaxFragmentsList, len(numbers))
	}
	st, err := s.Streams.Describe(ctx, ref)
	if err != nil {
		return fragstore.Key{}, nil, err
	}
	k := fragstore.KeyOf(st)
	frags := make([]*fragment.Fragment, 0, len(numbers))
	for _, n := range numbers {
		f, err := s.lookup(ctx, st, k, n)
		if err != nil {
			return k, nil, err
		}
		frags = append(frags, f)
	}
	return k, frags, nil
}

// lookup resolves a fragment number of stream st; unknown numbers are ResourceNotFound.
func (s *Service) lookup(ctx context.Context, st *stream.Stream, k fragstore.Key, number string) (*fragment.Fragment, error) {
	created, seq, err := fragment.ParseNumber(number)
	if err != nil {
		return nil, stream.Invalid("%v", err)
	}
	if created != k.CreatedMs {
		return nil, fmt.Errorf("%w: fragment %s does not belong to stream %s", stream.ErrNotFound, number, st.Name)
	}
	f, err := s.Store.Fragment(ctx, k, seq)
	if errors.Is(err, fragstore.ErrNotFound) {
		return nil, fmt.Errorf("%w: fragment %s of stream %s is not stored (expired, or never persisted)", stream.ErrNotFound, number, st.Name)
	}
	return f, err
}

// headerCache avoids re-reading the same header for every chunk of one response.
type headerCache map[string][]byte

func (s *Service) read(ctx context.Context, k fragstore.Key, f *fragment.Fragment, headers headerCache) (media, header []byte, err error) {
	header, ok := headers[f.HeaderID]
	if !ok {
		if header, err = s.Store.Header(ctx, k, f.HeaderID); err != nil {
			return nil, nil, fmt.Errorf("header %s of fragment %s: %w", f.HeaderID, f.Number, err)
		}
		headers[f.HeaderID] = header
	}
	if media, err = s.Store.Media(ctx, k, f); err != nil {
		return nil, nil, fmt.Errorf("media of fragment %s: %w", f.Number, err)
	}
	return media, header, nil
}
