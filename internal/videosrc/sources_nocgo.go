//go:build !cgo

package videosrc

import (
	"context"
	"errors"

	"github.com/kvsd/kvsd/producer"
)

// errNoSources is returned by OpenFile and NewTestSource in a build
// without cgo.
var errNoSources = errors.New("videosrc: video files and the test pattern need a build with cgo (FFmpeg)")

// FileSource is a placeholder in builds without cgo.
type FileSource struct{ unavailable }

// OpenFile needs cgo.
func OpenFile(path string, opts FileOptions) (*FileSource, error) { return nil, errNoSources }

// Progress reports nothing.
func (*FileSource) Progress() (done, total int64) { return 0, -1 }

// TestSource is a placeholder in builds without cgo.
type TestSource struct{ unavailable }

// NewTestSource needs cgo.
func NewTestSource(opts TestOptions) (*TestSource, error) { return nil, errNoSources }

type unavailable struct{}

func (unavailable) Track(context.Context) (producer.Track, error) {
	return producer.Track{}, errNoSources
}
func (unavailable) ReadFrame(context.Context) (producer.Frame, error) {
	return producer.Frame{}, errNoSources
}
func (unavailable) Live() bool   { return false }
func (unavailable) Close() error { return nil }
