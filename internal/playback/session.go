package playback

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/stream"
)

// ErrNoFragments is KVS's ResourceNotFound when a session or clip would hold no fragment; its
// text is KVS's message, verbatim.
var ErrNoFragments = errors.New("No fragments found in the stream for the streaming request.") //nolint:staticcheck // KVS's message

// Playback protocols, modes and options (§4.5).
const (
	HLS  = "HLS"
	DASH = "DASH"

	Live       = "LIVE"
	LiveReplay = "LIVE_REPLAY"
	OnDemand   = "ON_DEMAND"

	FragmentedMP4 = "FRAGMENTED_MP4"
	MPEGTS        = "MPEG_TS"

	DiscAlways         = "ALWAYS"
	DiscNever          = "NEVER"
	DiscOnDiscontinuty = "ON_DISCONTINUITY"
)

// Limits of the session operations (§4.5, §4.6).
const (
	MinExpires        = 300
	MaxExpires        = 43200
	MaxSessionResults = 5000
	MaxRange          = 24 * time.Hour
	LiveWindow        = 30 * time.Second // LIVE needs a fragment this recent
	discontinuityGap  = 50 * time.Millisecond
)

// Session is what a session token carries: everything a playlist, manifest or fragment request
// needs, so that no server keeps session state. Times are Unix milliseconds.
type Session struct {
	Protocol   string             `json:"p"`
	Stream     string             `json:"s"`
	CreatedMs  int64              `json:"c"` // the stream incarnation: a recreated stream does not match
	Mode       string             `json:"m"`
	Kind       fragstore.TimeKind `json:"k"`
	FromMs     int64              `json:"f,omitempty"`
	ToMs       int64              `json:"t,omitempty"` // 0: open-ended (LIVE, LIVE_REPLAY without EndTimestamp)
	Format     string             `json:"x,omitempty"`
	Disc       string             `json:"d,omitempty"`
	ShowTime   bool               `json:"dt,omitempty"`
	ShowNumber bool               `json:"dn,omitempty"`
	Max        int                `json:"n"`
	StartMs    int64              `json:"b"` // session creation: LIVE_REPLAY paces from here
	ExpiresMs  int64              `json:"e"`
	Origin     uint64             `json:"o,omitempty"` // LIVE: fragments after this sequence are numbered from 0

	token string // set by Tokens.Open
}

func (s *Session) expires() time.Time { return time.UnixMilli(s.ExpiresMs) }

// Token is the token the session was opened from.
func (s *Session) Token() string { return s.token }

// Expires is when the session ends.
func (s *Session) Expires() time.Time { return s.expires() }

// SessionInput is GetHLSStreamingSessionURL's or GetDASHStreamingSessionURL's request; empty
// strings and nil pointers are absent members.
type SessionInput struct {
	Protocol         string // HLS or DASH
	Ref              stream.Ref
	Mode             string
	SelectorType     string // FragmentSelectorType
	HasRange         bool   // TimestampRange given
	From, To         *time.Time
	Format           string // HLS only
	Discontinuity    string // HLS only
	DisplayTimestamp string
	DisplayNumber    string // DASH only
	Expires          *int
	MaxResults       *int
}

// Track is one track as players see it (remux.Track).
type Track struct {
	Number     uint64
	Video      bool
	Codec      string
	Width      int
	Height     int
	SampleRate int
	Channels   int
}

// MuxFragment is one stored fragment to mux (remux.Fragment).
type MuxFragment struct {
	Media    []byte
	Timecode int64
	Start    time.Duration
	Duration time.Duration
	// Frames and Size, with Media nil, are the fragment's stored frame table and media size:
	// PlanClip may lay out the clip from them, or answer ErrClipNeedsMedia.
	Frames []mkv.FramePlace
	Size   int64
}

// ErrClipNeedsMedia is PlanClip's answer to frame tables when the clip needs the frames' bytes
// in its first pass (remux.ErrNeedsMedia).
var ErrClipNeedsMedia = errors.New("the clip needs the frames' bytes, not their places")

// Muxer opens a stream header for muxing; app wires internal/remux behind it.
type Muxer interface {
	Open(header []byte) (Media, error)
}

// Media turns the fragments of one header into what players fetch (remux.Media).
type Media interface {
	Tracks() (video Track, audio *Track)
	InitMP4(track uint64) ([]byte, error)
	AppendMP4Fragment(dst []byte, f MuxFragment, track uint64, seq uint32) ([]byte, error)
	AppendTS(dst []byte, f MuxFragment) ([]byte, error)
	// PlanClip reads fragments 0..n-1 through frag once and lays out their progressive MP4
	// (remux.Media.PlanClip). It hands frag a buffer it no longer uses, for the next
	// fragment's media.
	PlanClip(n int, frag func(i int, buf []byte) (MuxFragment, error)) (Clip, error)
}

// Clip is a progressive MP4 whose size is known before it is sent (remux.Clip).
type Clip interface {
	Size() int64
	// Verbatim: fragment i's part of the mdat is its stored media, PartSize(i) bytes, which
	// Send's media func may write itself.
	Verbatim() bool
	PartSize(i int) int64
	// Send writes the MP4; media nil reads every fragment again through PlanClip's frag.
	Send(w io.Writer, media func(i int, w io.Writer) (int64, error)) (int64, error)
}

func oneOf(field, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return stream.Invalid("%s %q must be one of %v", field, v, allowed)
}

// kindOf maps a FragmentSelectorType (default SERVER_TIMESTAMP) to a timeline.
func kindOf(field, v string) (fragstore.TimeKind, error) {
	switch v {
	case "", "SERVER_TIMESTAMP":
		return fragstore.ServerTime, nil
	case "PRODUCER_TIMESTAMP":
		return fragstore.ProducerTime, nil
	}
	return 0, stream.Invalid("%s %q must be PRODUCER_TIMESTAMP or SERVER_TIMESTAMP", field, v)
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// checkRange applies the range rules shared by sessions and GetClip: end after start, at most
// 24 h apart, and with server timestamps in the past.
func checkRange(kind fragstore.TimeKind, from, to time.Time, now time.Time) error {
	switch {
	case !to.After(from):
		return stream.Invalid("TimestampRange.EndTimestamp must be after StartTimestamp")
	case to.Sub(from) > MaxRange:
		return stream.Invalid("TimestampRange must span at most 24 hours")
	case kind == fragstore.ServerTime && to.After(now):
		return stream.Invalid("TimestampRange.EndTimestamp must be in the past for SERVER_TIMESTAMP")
	}
	return nil
}

// newSession validates in completely (KVS's rules of §4.5) into a Session without the stream part.
func newSession(in SessionInput, now time.Time) (*Session, error) {
	s := &Session{Protocol: in.Protocol, Mode: orDefault(in.Mode, Live), StartMs: now.UnixMilli()}
	if err := oneOf("PlaybackMode", s.Mode, Live, LiveReplay, OnDemand); err != nil {
		return nil, err
	}
	kind, err := kindOf("FragmentSelectorType", in.SelectorType)
	if err != nil {
		return nil, err
	}
	s.Kind = kind
	if err := s.setRange(in, now); err != nil {
		return nil, err
	}
	if in.Protocol == HLS {
		s.Format = orDefault(in.Format, FragmentedMP4)
		if err := oneOf("ContainerFormat", s.Format, FragmentedMP4, MPEGTS); err != nil {
			return nil, err
		}
		def := DiscAlways
		if kind == fragstore.ProducerTime {
			def = DiscNever
		}
		s.Disc = orDefault(in.Discontinuity, def)
		if err := oneOf("DiscontinuityMode", s.Disc, DiscAlways, DiscNever, DiscOnDiscontinuty); err != nil {
			return nil, err
		}
	}
	if s.ShowTime, err = alwaysNever("DisplayFragmentTimestamp", in.DisplayTimestamp); err != nil {
		return nil, err
	}
	if s.ShowNumber, err = alwaysNever("DisplayFragmentNumber", in.DisplayNumber); err != nil {
		return nil, err
	}
	expires := MinExpires
	if in.Expires != nil {
		if expires = *in.Expires; expires < MinExpires || expires > MaxExpires {
			return nil, stream.Invalid("Expires must be between %d and %d seconds, got %d", MinExpires, MaxExpires, expires)
		}
	}
	s.ExpiresMs = now.Add(time.Duration(expires) * time.Second).UnixMilli()
	s.Max = 5
	if s.Mode == OnDemand {
		s.Max = 1000
	}
	if in.MaxResults != nil {
		if s.Max = *in.MaxResults; s.Max < 1 || s.Max > MaxSessionResults {
			name := "MaxMediaPlaylistFragmentResults"
			if in.Protocol == DASH {
				name = "MaxManifestFragmentResults"
			}
			return nil, stream.Invalid("%s must be between 1 and %d, got %d", name, MaxSessionResults, s.Max)
		}
	}
	return s, nil
}

func (s *Session) setRange(in SessionInput, now time.Time) error {
	if s.Mode == Live {
		if in.HasRange {
			return stream.Invalid("TimestampRange must not be set in LIVE mode")
		}
		return nil
	}
	if !in.HasRange || in.From == nil {
		return stream.Invalid("%s mode needs a fragment selector with TimestampRange.StartTimestamp", s.Mode)
	}
	s.FromMs = ceilMs(*in.From)
	if in.To == nil {
		if s.Mode == OnDemand {
			return stream.Invalid("ON_DEMAND mode needs TimestampRange.EndTimestamp")
		}
		return nil
	}
	if err := checkRange(s.Kind, *in.From, *in.To, now); err != nil {
		return err
	}
	s.ToMs = in.To.UnixMilli()
	return nil
}

func alwaysNever(field, v string) (bool, error) {
	v = orDefault(v, DiscNever)
	if err := oneOf(field, v, DiscAlways, DiscNever); err != nil {
		return false, err
	}
	return v == DiscAlways, nil
}

// ceilMs is the first whole ms at or after t.
func ceilMs(t time.Time) int64 {
	ms := t.UnixMilli()
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}

// StartSession validates a session request against the stream and its fragments and returns
// the session's token.
func (s *Service) StartSession(ctx context.Context, in SessionInput) (string, error) {
	now := s.now()
	sess, err := newSession(in, now)
	if err != nil {
		return "", err
	}
	st, err := s.Streams.Describe(ctx, in.Ref)
	if err != nil {
		return "", err
	}
	if st.RetentionHours == 0 {
		return "", fmt.Errorf("%w: stream %s keeps no data (DataRetentionInHours is 0), so there is nothing to play back", stream.ErrNoDataRetention, st.Name)
	}
	sess.Stream, sess.CreatedMs = st.Name, st.CreationTime.UnixMilli()
	k := fragstore.KeyOf(st)
	first, err := s.firstFragment(ctx, sess, k, now)
	if err != nil {
		return "", err
	}
	if _, err := s.openMedia(ctx, k, first.HeaderID); err != nil {
		return "", err
	}
	return s.Tokens.Sign(sess), nil
}

// firstFragment is the fragment a new session starts with; ErrNoFragments if there is none
// (LIVE: none persisted in the last 30 s).
func (s *Service) firstFragment(ctx context.Context, sess *Session, k fragstore.Key, now time.Time) (*fragment.Fragment, error) {
	if sess.Mode == Live {
		sel, err := s.liveWindow(ctx, sess, k)
		if err != nil {
			return nil, err
		}
		if len(sel.frags) == 0 || now.Sub(sel.frags[len(sel.frags)-1].ServerTime) > LiveWindow {
			return nil, ErrNoFragments
		}
		if sel.prev != nil { // numbering counts from here: the first window starts at 0
			sess.Origin = sel.prev.Seq
		}
		return sel.frags[0], nil
	}
	frags, _, err := s.Store.List(ctx, k, sess.Kind, time.UnixMilli(sess.FromMs), sess.rangeEnd(now), fragstore.Cursor{}, 1)
	if err != nil {
		return nil, err
	}
	if len(frags) == 0 {
		return nil, ErrNoFragments
	}
	return frags[0], nil
}

// rangeEnd is the inclusive end of a range session at now.
func (s *Session) rangeEnd(now time.Time) time.Time {
	if s.ToMs != 0 {
		return time.UnixMilli(s.ToMs)
	}
	return now
}

// openMedia reads a header and opens it for muxing; without a Muxer it only reads it.
func (s *Service) openMedia(ctx context.Context, k fragstore.Key, headerID string) (Media, error) {
	hdr, err := s.Store.Header(ctx, k, headerID)
	if err != nil {
		return nil, fmt.Errorf("header %s: %w", headerID, err)
	}
	if s.Muxer == nil {
		return nil, nil
	}
	return s.Muxer.Open(hdr)
}
