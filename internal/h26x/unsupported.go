package h26x

import "fmt"

// UnsupportedCodecError says that a source's video is neither H.264 nor
// H.265, in the words a user of `kvsd put` reads.
type UnsupportedCodecError struct {
	Source string // the file name or URL
	Codec  string // what it is, e.g. "VP8"
}

func (e *UnsupportedCodecError) Error() string {
	return fmt.Sprintf("kvsd streams H.264/H.265; %s is %s", e.Source, e.Codec)
}
