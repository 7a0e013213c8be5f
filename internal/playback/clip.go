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

// Clip validates a GetClip request completely and reads every fragment of the clip once, so
// that errors are API errors before any byte is sent and the answer's size is known. The
// clip stops before the first fragment whose header (codec private data) differs from the
// first one's.
//
// Where the media backend keeps files (disk), the clip holds the segment files open from here
// on: the fragments are read from them now and sent from them by WriteTo, so retention
// deleting a segment meanwhile changes nothing. The caller must Close the answer.
func (s *Service) Clip(ctx context.Context, in ClipInput) (*ClipAnswer, error) {
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
	a := &ClipAnswer{}
	if a.secs, err = s.Store.Sections(ctx, k, frags); err != nil && !errors.Is(err, fragstore.ErrNoSections) {
		return nil, err
	}
	sess := &Session{Kind: kind}
	a.read = func(i int, buf []byte) ([]byte, error) {
		if err := ctx.Err(); err != nil {
			return buf, err
		}
		if a.secs == nil {
			return s.Store.MediaAppend(ctx, k, frags[i], buf)
		}
		return a.secs.ReadAppend(ctx, i, buf)
	}
	a.n = len(frags)
	frag := func(i int, _ []byte) (MuxFragment, error) {
		if a.ahead != nil {
			b, err := a.ahead.Fragment(i)
			return muxFragment(sess, frags[i], b), err
		}
		// The first pass from frame tables: the media is read (and decrypted) once, when sent.
		if ft, ok := a.secs.Frames(i); ok {
			mf := muxFragment(sess, frags[i], nil)
			mf.Frames, mf.Size = ft, frags[i].Size
			return mf, nil
		}
		b, err := a.read(i, nil) // a record from before frame tables
		return muxFragment(sess, frags[i], b), err
	}
	err = ErrClipNeedsMedia
	if a.secs != nil && !a.secs.Verbatim() {
		// Encrypted media: its clear frame tables lay the clip out, while the second pass's
		// read-ahead starts decrypting the first fragments on the other cores.
		a.send = startReadAhead(a.n, a.read)
		a.clip, err = media.PlanClip(a.n, frag)
	}
	if errors.Is(err, ErrClipNeedsMedia) {
		if a.send != nil {
			a.send.Stop()
			a.send = nil
		}
		// Both passes read the fragments through a readAhead, the first one here, the second
		// in WriteTo unless the media is sent from the files.
		a.ahead = startReadAhead(a.n, a.read)
		a.clip, err = media.PlanClip(a.n, frag)
		a.ahead.Stop()
	}
	if err != nil {
		_ = a.Close()
		return nil, err
	}
	a.Size = a.clip.Size()
	// Encrypted media is never sent from the file: Send reads every fragment again through
	// ReadAppend, which decrypts and authenticates it, one fragment buffer for the whole clip.
	a.FromFiles = a.secs != nil && a.secs.Verbatim() && a.clip.Verbatim()
	return a, nil
}

// ClipAnswer is a GetClip response whose size is known: Size bytes of MP4, written by WriteTo.
type ClipAnswer struct {
	Size int64
	// FromFiles: WriteTo hands each fragment's media to the writer as an io.LimitedReader of
	// the segment's *os.File (an HTTP/1 response over TCP sends it with sendfile, without
	// copying it through memory). False when the media is copied: the backend keeps no
	// files, the media is encrypted, or the payloads are rewritten (NAL unit lengths other
	// than 4 bytes).
	FromFiles bool

	clip  Clip
	secs  *fragstore.Sections // nil: the media backend keeps no files
	n     int                 // fragments
	read  func(i int, buf []byte) ([]byte, error)
	ahead *readAhead // the pass under way
	send  *readAhead // the second pass's, when started early
}

// WriteTo writes the MP4 to w.
func (a *ClipAnswer) WriteTo(w io.Writer) (int64, error) {
	if !a.FromFiles {
		if a.send == nil {
			a.send = startReadAhead(a.n, a.read)
		}
		a.ahead = a.send
		defer a.send.Stop()
		return a.clip.Send(w, nil)
	}
	return a.clip.Send(w, func(i int, w io.Writer) (int64, error) {
		sec := a.secs.Section(i)
		if sec.Length != a.clip.PartSize(i) {
			return 0, fmt.Errorf("fragment media of %d bytes stored in %d", a.clip.PartSize(i), sec.Length)
		}
		// The file is this clip's own: moving its offset disturbs no one.
		if _, err := sec.File.Seek(sec.Offset, io.SeekStart); err != nil {
			return 0, err
		}
		return io.Copy(w, &io.LimitedReader{R: sec.File, N: sec.Length})
	})
}

// Close stops reading ahead and releases the segment files the answer holds open.
func (a *ClipAnswer) Close() error {
	if a.send != nil {
		a.send.Stop()
	}
	if a.secs == nil {
		return nil
	}
	return a.secs.Close()
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
