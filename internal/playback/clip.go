package playback

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/stream"
)

// GetClip limits (§4.6): a clip holds at most the first 200 fragments or 100 MB of the range.
const (
	MaxClipFragments = 200
	MaxClipBytes     = 100 << 20
)

// ClipInput is GetClip's request.
type ClipInput struct {
	Ref          stream.Ref
	SelectorType string // required
	From, To     *time.Time
}

// Clip validates a GetClip request completely (so errors are API errors before any byte is sent)
// and returns the function that writes the progressive MP4. The clip stops before the first
// fragment whose header (codec private data) differs from the first one's.
func (s *Service) Clip(ctx context.Context, in ClipInput) (func(w io.Writer) error, error) {
	if in.SelectorType == "" {
		return nil, stream.Invalid("ClipFragmentSelector.FragmentSelectorType is required")
	}
	kind, err := kindOf("ClipFragmentSelector.FragmentSelectorType", in.SelectorType)
	if err != nil {
		return nil, err
	}
	if in.From == nil || in.To == nil {
		return nil, stream.Invalid("ClipFragmentSelector.TimestampRange needs StartTimestamp and EndTimestamp")
	}
	if err := checkRange(kind, *in.From, *in.To, s.now()); err != nil {
		return nil, err
	}
	st, err := s.Streams.Describe(ctx, in.Ref)
	if err != nil {
		return nil, err
	}
	if st.RetentionHours == 0 {
		return nil, fmt.Errorf("%w: stream %s keeps no data (DataRetentionInHours is 0)", stream.ErrNoDataRetention, st.Name)
	}
	k := fragstore.KeyOf(st)
	frags, err := s.clipFragments(ctx, k, kind, *in.From, *in.To)
	if err != nil {
		return nil, err
	}
	media, err := s.openMedia(ctx, k, frags[0].HeaderID)
	if err != nil {
		return nil, err
	}
	sess := &Session{Kind: kind}
	return func(w io.Writer) error {
		_, err := media.WriteClip(w, len(frags), func(i int, buf []byte) (MuxFragment, error) {
			return s.muxInput(ctx, sess, k, frags[i], buf)
		})
		return err
	}, nil
}

// clipFragments lists the clip's fragments: timeline order, duplicates resolved, at most 200
// fragments or 100 MB, one header.
func (s *Service) clipFragments(ctx context.Context, k fragstore.Key, kind fragstore.TimeKind, from, to time.Time) ([]*fragment.Fragment, error) {
	page, _, err := s.Store.List(ctx, k, kind, from, to, fragstore.Cursor{}, MaxClipFragments+1)
	if err != nil {
		return nil, err
	}
	var out []*fragment.Fragment
	for _, f := range page {
		out = appendDedup(out, f, kind, "")
	}
	if len(out) == 0 {
		return nil, ErrNoFragments
	}
	if out, err = s.sameCodecs(ctx, k, out); err != nil {
		return nil, err
	}
	var size int64
	for i, f := range out {
		size += f.Size
		if i == MaxClipFragments || (i > 0 && size > MaxClipBytes) || f.HeaderID != out[0].HeaderID {
			return out[:i], nil
		}
	}
	return out, nil
}
