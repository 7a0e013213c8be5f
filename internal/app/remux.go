package app

import (
	"errors"

	"github.com/kvsd/kvsd/internal/playback"
	"github.com/kvsd/kvsd/internal/remux"
)

// muxer puts internal/remux behind playback's Muxer interface.
type muxer struct{}

func (muxer) Open(header []byte) (playback.Media, error) {
	m, err := remux.Open(header)
	if err != nil {
		return nil, err
	}
	return remuxMedia{m}, nil
}

type remuxMedia struct{ m *remux.Media }

func (r remuxMedia) Tracks() (playback.Track, *playback.Track) {
	video := playback.Track(r.m.Video)
	if r.m.Audio == nil {
		return video, nil
	}
	audio := playback.Track(*r.m.Audio)
	return video, &audio
}

func (r remuxMedia) InitMP4(track uint64) ([]byte, error) { return r.m.InitMP4(track) }

func (r remuxMedia) AppendMP4Fragment(dst []byte, f playback.MuxFragment, track uint64, seq uint32) ([]byte, error) {
	return r.m.AppendMP4Fragment(dst, remux.Fragment(f), track, seq)
}

func (r remuxMedia) AppendTS(dst []byte, f playback.MuxFragment) ([]byte, error) {
	return r.m.AppendTS(dst, remux.Fragment(f))
}

func (r remuxMedia) PlanClip(n int, frag func(i int, buf []byte) (playback.MuxFragment, error)) (playback.Clip, error) {
	c, err := r.m.PlanClip(n, func(i int, buf []byte) (remux.Fragment, error) {
		f, err := frag(i, buf)
		return remux.Fragment(f), err
	})
	if errors.Is(err, remux.ErrNeedsMedia) {
		return nil, playback.ErrClipNeedsMedia
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}
