package playback

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/stream"
)

// sessionFragment resolves a FragmentNumber of a playback request: it must be a stored
// fragment of the session's stream and, for range sessions, start within the range.
func (s *Service) sessionFragment(ctx context.Context, sess *Session, k fragstore.Key, number string) (*fragment.Fragment, error) {
	if number == "" {
		return nil, stream.Invalid("FragmentNumber is required")
	}
	created, seq, err := fragment.ParseNumber(number)
	if err != nil {
		return nil, stream.Invalid("%v", err)
	}
	if created != k.CreatedMs {
		return nil, fmt.Errorf("%w: fragment %s does not belong to stream %s", stream.ErrNotFound, number, sess.Stream)
	}
	f, err := s.Store.Fragment(ctx, k, seq)
	if errors.Is(err, fragstore.ErrNotFound) {
		return nil, fmt.Errorf("%w: fragment %s of stream %s is not stored (expired)", stream.ErrNotFound, number, sess.Stream)
	}
	if err != nil {
		return nil, err
	}
	if sess.Mode != Live {
		ms := startOf(f, sess.Kind).UnixMilli()
		if ms < sess.FromMs || (sess.ToMs != 0 && ms > sess.ToMs) {
			return nil, fmt.Errorf("%w: fragment %s is not part of this streaming session", stream.ErrNotFound, number)
		}
	}
	return f, nil
}

// muxInput reads a fragment's media (into buf, when given) and places it on the session's
// timeline: frame times are the fragment's start (producer or server time, per the selector)
// plus their offset in it.
func (s *Service) muxInput(ctx context.Context, sess *Session, k fragstore.Key, f *fragment.Fragment, buf []byte) (MuxFragment, error) {
	media, err := s.Store.MediaAppend(ctx, k, f, buf[:0])
	if err != nil {
		return MuxFragment{}, err
	}
	return muxFragment(sess, f, media), nil
}

// muxFragment places f, whose media is given, on the session's timeline (muxInput).
func muxFragment(sess *Session, f *fragment.Fragment, media []byte) MuxFragment {
	return MuxFragment{Media: media, Timecode: int64(f.Timecode), Start: time.Duration(startOf(f, sess.Kind).UnixNano()), Duration: f.Duration}
}

func (s *Service) fragmentResource(sess *Session, body []byte, contentType string) *Resource {
	return &Resource{Body: body, ContentType: contentType, Expires: sess.expires()}
}

// trackFragment opens a session and resolves the track and fragment a resource request names.
func (s *Service) trackFragment(ctx context.Context, protocol, token string, track uint64, number string) (*Session, fragstore.Key, *fragment.Fragment, error) {
	sess, k, err := s.session(ctx, token, protocol)
	if err != nil {
		return nil, k, nil, err
	}
	if err := checkTrack(sess, track); err != nil {
		return nil, k, nil, err
	}
	f, err := s.sessionFragment(ctx, sess, k, number)
	return sess, k, f, err
}

// InitFragment answers getMP4InitFragment.mp4 (HLS and DASH): ftyp+moov of one track, for the
// header of the fragment the playlist names.
func (s *Service) InitFragment(ctx context.Context, protocol, token string, track uint64, number string) (*Resource, error) {
	sess, k, f, err := s.trackFragment(ctx, protocol, token, track, number)
	if err != nil {
		return nil, err
	}
	media, err := s.openMedia(ctx, k, f.HeaderID)
	if err != nil {
		return nil, err
	}
	init, err := media.InitMP4(track)
	if err != nil {
		return nil, err
	}
	return s.fragmentResource(sess, init, TypeMP4), nil
}

// MediaFragment answers getMP4MediaFragment.mp4: one moof+mdat of one track.
func (s *Service) MediaFragment(ctx context.Context, protocol, token string, track uint64, number string) (*Resource, error) {
	sess, k, f, err := s.trackFragment(ctx, protocol, token, track, number)
	if err != nil {
		return nil, err
	}
	return s.mp4Fragment(ctx, sess, k, f, track)
}

func (s *Service) mp4Fragment(ctx context.Context, sess *Session, k fragstore.Key, f *fragment.Fragment, track uint64) (*Resource, error) {
	media, err := s.openMedia(ctx, k, f.HeaderID)
	if err != nil {
		return nil, err
	}
	in, err := s.muxInput(ctx, sess, k, f, nil)
	if err != nil {
		return nil, err
	}
	body, err := media.AppendMP4Fragment(nil, in, track, uint32(f.Seq))
	if err != nil {
		return nil, err
	}
	return s.fragmentResource(sess, body, TypeMP4), nil
}

// TSFragment answers getTSFragment.ts: one MPEG-TS segment with every track.
func (s *Service) TSFragment(ctx context.Context, token, number string) (*Resource, error) {
	sess, k, err := s.session(ctx, token, HLS)
	if err != nil {
		return nil, err
	}
	if sess.Format != MPEGTS {
		return nil, stream.Invalid("this streaming session serves FRAGMENTED_MP4, not MPEG_TS")
	}
	f, err := s.sessionFragment(ctx, sess, k, number)
	if err != nil {
		return nil, err
	}
	media, err := s.openMedia(ctx, k, f.HeaderID)
	if err != nil {
		return nil, err
	}
	in, err := s.muxInput(ctx, sess, k, f, nil)
	if err != nil {
		return nil, err
	}
	body, err := media.AppendTS(nil, in)
	if err != nil {
		return nil, err
	}
	return s.fragmentResource(sess, body, TypeTS), nil
}
