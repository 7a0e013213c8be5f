package app

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"

	"github.com/kvsd/kvsd/producer"
)

// putSource is an opened SOURCE argument of kvsd put.
type putSource struct {
	producer.Source
	// progress reports the bytes read so far and the total, for a file's
	// progress bar; nil when there is no such measure (live sources).
	progress func() (done, total int64)
}

// errNotInBuild is a source kind this build of kvsd put cannot read.
func errNotInBuild(arg, what string) error {
	return fmt.Errorf("%s: %s are not supported in this build of kvsd put; pipe Matroska in instead, e.g. ffmpeg -i %s -c copy -f matroska - | kvsd put --stream NAME -",
		arg, what, arg)
}

// ebmlMagic starts every Matroska and WebM file.
var ebmlMagic = []byte{0x1A, 0x45, 0xDF, 0xA3}

// openSource opens SOURCE: "-" is Matroska on stdin (live), a Matroska or
// WebM file is recognised by its EBML magic.
func openSource(arg string, stdin io.Reader) (*putSource, error) {
	switch {
	case arg == "-":
		return &putSource{Source: producer.NewMKVSource(stdin, true)}, nil
	case strings.HasPrefix(arg, "rtsp://") || strings.HasPrefix(arg, "rtsps://"):
		return nil, errNotInBuild(arg, "RTSP cameras")
	case arg == "testsrc":
		return nil, errors.New("testsrc: the generated test pattern is not supported in this build of kvsd put")
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
	case len(head) >= 8 && string(head[4:8]) == "ftyp":
		f.Close()
		return nil, errNotInBuild(arg, "MP4 files")
	case bytes.HasPrefix(head, []byte{0, 0, 0, 1}) || bytes.HasPrefix(head, []byte{0, 0, 1}):
		f.Close()
		return nil, errNotInBuild(arg, "raw H.264/H.265 (Annex-B) files")
	}
	f.Close()
	return nil, fmt.Errorf("%s: not a Matroska/WebM file (no EBML header)", arg)
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
