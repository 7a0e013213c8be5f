package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"

	"github.com/kvsd/kvsd/internal/rtspsrc"
	"github.com/kvsd/kvsd/internal/videosrc"
	"github.com/kvsd/kvsd/producer"
)

// putSource is an opened SOURCE argument of kvsd put.
type putSource struct {
	producer.Source
	// progress reports the bytes read so far and the total, for a file's
	// progress bar; nil when there is no such measure (live sources).
	progress func() (done, total int64)
}

// ebmlMagic starts every Matroska and WebM file.
var ebmlMagic = []byte{0x1A, 0x45, 0xDF, 0xA3}

// openSource opens SOURCE: "-" is Matroska on stdin (live), a Matroska or
// WebM file is recognised by its EBML magic.
func openSource(ctx context.Context, pf *putFlags, stdin io.Reader, log *slog.Logger) (*putSource, error) {
	arg := pf.source
	switch {
	case arg == "-" && stdin == nil:
		return nil, errors.New("-: there is no stdin to read")
	case arg == "-":
		return &putSource{Source: producer.NewMKVSource(stdin, true)}, nil
	case strings.HasPrefix(arg, "rtsp://") || strings.HasPrefix(arg, "rtsps://"):
		// Reconnects with backoff when the camera drops, and says so.
		cam, err := rtspsrc.Dial(ctx, arg, rtspsrc.Options{Logger: log})
		if err != nil {
			return nil, err
		}
		return &putSource{Source: cam}, nil
	case arg == "testsrc":
		// 1280×720, 30 fps, 2 Mbit/s by default, a keyframe every 2 s; until --duration or Ctrl-C.
		pattern, err := videosrc.NewTestSource(videosrc.TestOptions{Width: pf.width, Height: pf.height, FPS: int(pf.fps + 0.5)})
		if err != nil {
			return nil, err
		}
		return &putSource{Source: pattern}, nil
	}
	f, err := os.Open(arg)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if fi.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%s is a directory, not a video file", arg)
	}
	head := make([]byte, 12)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	switch {
	case bytes.HasPrefix(head, ebmlMagic):
		cr := &countingReader{f: f}
		return &putSource{Source: producer.NewMKVSource(cr, false),
			progress: func() (int64, int64) { return cr.n.Load(), fi.Size() }}, nil
	}
	f.Close()
	// MP4/MOV, raw H.264/H.265 Annex-B (25 fps) and whatever else
	// libavformat recognises; other codecs are refused in plain words.
	file, err := videosrc.OpenFile(arg, videosrc.FileOptions{FrameRate: pf.fps})
	if err != nil {
		return nil, err
	}
	return &putSource{Source: file, progress: file.Progress}, nil
}

// countingReader counts the bytes read from a file and closes it.
type countingReader struct {
	f *os.File
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.f.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingReader) Close() error { return c.f.Close() }
