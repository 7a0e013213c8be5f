package mkv

import (
	"errors"
	"fmt"
	"io"
)

// ErrInvalid is wrapped by every error caused by malformed input, including
// input that ends in the middle of an element (those also wrap
// io.ErrUnexpectedEOF).
var ErrInvalid = errors.New("mkv: invalid input")

// ErrTooLarge is wrapped when a Cluster exceeds Limits.MaxClusterSize or
// another buffered element (or the header as a whole) exceeds
// Limits.MaxElementSize.
var ErrTooLarge = errors.New("mkv: element too large")

// invalidf reports malformed input found at offset off.
func invalidf(off int64, format string, a ...any) error {
	return fmt.Errorf("%w: offset %d: %s", ErrInvalid, off, fmt.Sprintf(format, a...))
}

// truncated reports input that ended inside what (named for the message),
// which began at offset off.
func truncated(off int64, what string) error {
	return fmt.Errorf("%w: offset %d: %s truncated: %w", ErrInvalid, off, what, io.ErrUnexpectedEOF)
}

// tooLarge reports an element that would exceed limit bytes.
func tooLarge(off int64, what string, size, limit int64) error {
	return fmt.Errorf("%w: offset %d: %s needs %d bytes, limit %d", ErrTooLarge, off, what, size, limit)
}

// readError classifies an error from the underlying reader: running out of
// input inside an element is malformed input, anything else (a network
// error) is passed on with its offset.
func readError(err error, off int64, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return truncated(off, what)
	}
	return fmt.Errorf("mkv: read %s at offset %d: %w", what, off, err)
}
