// Package imaging is the vocabulary of image rendering, in pure Go: what
// images to make (Spec), the frames they are made from (Packet), what comes
// back (Result, Stats) and the errors a renderer reports. imagegen asks for
// images in these terms and media (the cgo package, FFmpeg and
// libturbojpeg) renders them, so imagegen builds and tests without cgo; the
// composition root (internal/app) joins the two.
package imaging

import (
	"errors"
	"fmt"
	"time"
)

// Format is an output image format.
type Format int

// Image formats.
const (
	JPEG Format = iota
	PNG
)

func (f Format) String() string {
	switch f {
	case JPEG:
		return "JPEG"
	case PNG:
		return "PNG"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// DefaultQuality is the JPEG quality when Spec.Quality is 0, as in KVS.
const DefaultQuality = 80

// MaxDimension bounds Spec.Width and Spec.Height (KVS itself allows up to
// 3840×2160).
const MaxDimension = 8192

// Spec says what images to make.
type Spec struct {
	Format Format
	// Quality is the JPEG quality, 1–100 on libjpeg's (IJG) scale, which is
	// KVS's JPEGQuality; 0 means DefaultQuality. PNG ignores it.
	Quality int
	// Width and Height: both set → exactly that size; one set → the other
	// keeps the source's aspect ratio (rounded to the nearest integer, at
	// least 1; odd sizes are fine for both encoders, so no rounding to even);
	// neither → the source size. The aspect ratio is that of the decoded
	// pixels (sample aspect ratio is ignored, as cameras use square pixels).
	Width, Height int
	// Exact decodes every picture as the standard specifies: keyframes
	// decoded alone for an image at most half their size keep the deblocking
	// filter too (media.Decoder.Render skips it otherwise). For comparisons;
	// the images differ imperceptibly.
	Exact bool
}

// Validate checks s and returns it with the default quality filled in.
func (s Spec) Validate() (Spec, error) {
	if s.Format != JPEG && s.Format != PNG {
		return s, fmt.Errorf("media: unknown image format %d", int(s.Format))
	}
	if s.Quality == 0 {
		s.Quality = DefaultQuality
	}
	if s.Format == JPEG && (s.Quality < 1 || s.Quality > 100) {
		return s, fmt.Errorf("media: JPEG quality %d is not within 1–100", s.Quality)
	}
	if s.Width < 0 || s.Height < 0 || s.Width > MaxDimension || s.Height > MaxDimension {
		return s, fmt.Errorf("media: image size %d×%d is not within 0–%d", s.Width, s.Height, MaxDimension)
	}
	return s, nil
}

// Size returns the output size for a source picture of w×h.
func (s Spec) Size(w, h int) (int, int) {
	switch {
	case s.Width > 0 && s.Height > 0:
		return s.Width, s.Height
	case s.Width > 0:
		return s.Width, scaleDim(h, s.Width, w)
	case s.Height > 0:
		return scaleDim(w, s.Height, h), s.Height
	}
	return w, h
}

// scaleDim returns v·num/den rounded to the nearest integer (halves up),
// at least 1.
func scaleDim(v, num, den int) int {
	return max(1, (2*v*num+den)/(2*den))
}

// Packet is one frame as stored in Matroska: for codec private data in
// avcC/hvcC form, NAL units each preceded by its length; with no codec
// private data, an Annex B access unit.
type Packet struct {
	Data []byte
	PTS  time.Duration
	Key  bool
}

// Result is the image for one sample time.
type Result struct {
	At       time.Duration // the sample time asked for
	FramePTS time.Duration // the PTS of the frame shown, when one was found
	Image    []byte        // the encoded image; nil when Err is set
	Width    int
	Height   int
	// Err is nil, ErrNoFrame (no frame at or before At among the packets),
	// or why the frame could not be decoded or encoded.
	Err error
}

// Stats counts a renderer's work since it was made (media.NewDecoder),
// for metrics.
type Stats struct {
	Decoded int // packets the decoder accepted (frames decoded)
	// Unfiltered counts the frames of Decoded that were decoded without the
	// in-loop deblocking filter: keyframes decoded alone for an image at
	// most half their size (see media.Decoder.Render).
	Unfiltered int
	Skipped    int // packets Render was given but did not need to decode
	// CPU time of each stage (the decoding thread's clock, not wall time).
	Decode time.Duration
	Scale  time.Duration
	Encode time.Duration
}

var (
	// ErrUnsupportedCodec is wrapped by media.NewDecoder for a codec other than
	// H.264 and H.265; the message names the codec.
	ErrUnsupportedCodec = errors.New("media: unsupported codec")
	// ErrNoFrame is Result.Err when no frame of the packets is on screen at
	// the sample time (it lies before the first frame).
	ErrNoFrame = errors.New("media: no frame at or before the sample time")
	// ErrUnavailable is returned by media.NewDecoder in a build without cgo.
	ErrUnavailable = errors.New("media: image generation needs a build with cgo (FFmpeg and libturbojpeg)")
)

// Codec IDs of the Matroska tracks media.Decoder accepts.
const (
	CodecH264 = "V_MPEG4/ISO/AVC"
	CodecH265 = "V_MPEGH/ISO/HEVC"
)
