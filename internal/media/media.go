// Package media turns stored H.264/H.265 frames into JPEG and PNG images.
//
// It is the only cgo package of kvsd's image path: libavcodec decodes (and
// encodes PNG), libswscale scales and converts to full range, libturbojpeg
// encodes JPEG, all through a thin wrapper of our own (media.c). Its
// vocabulary (imaging.Spec, Packet, Result, Stats and the errors) lives in
// the pure-Go package imaging, so that imagegen, which uses a Decoder
// through an interface of its own, builds without cgo. Built without cgo,
// media still compiles, and NewDecoder returns imaging.ErrUnavailable.
//
// A Decoder belongs to one stream and is reused from fragment to fragment;
// it is single-threaded, so a server gets parallelism by rendering several
// streams at once. Render decodes only what its samples need: for each
// sample the frame on screen (the last frame whose PTS is at or before the
// sample time), starting from the keyframe at or before it. A sample that
// lands on a keyframe decodes that keyframe alone, samples that share a GOP
// share one pass through it, and packets no sample needs are never sent to
// the decoder. A keyframe decoded alone for an image at most half its size
// skips the deblocking filter, which the downscaling makes invisible (see
// Decoder.Render; Spec.Exact turns that off).
//
// The producer's FFmpeg sources (video files, the test pattern) are in
// package videosrc.
package media

import "github.com/kvsd/kvsd/internal/imaging"

// shrinksByHalf reports whether images of a w×h picture are at most half
// its width and half its height; not for an unknown size (0×0).
func shrinksByHalf(s imaging.Spec, w, h int) bool {
	if w == 0 || h == 0 {
		return false
	}
	ow, oh := s.Size(w, h)
	return 2*ow <= w && 2*oh <= h
}
