package stream

import (
	"errors"
	"fmt"
)

// Sentinels callers branch on; kvsapi maps each to its AWS error type in one table.
var (
	ErrNotFound        = errors.New("the requested stream is not found or not active")
	ErrInUse           = errors.New("resource in use")
	ErrVersionMismatch = errors.New("version mismatch")
	ErrTooManyTags     = errors.New("too many tags")
	ErrNoDataRetention = errors.New("no data retention")
	ErrInvalidARN      = errors.New("invalid resource format")
	ErrInvalidArgument = errors.New("invalid argument")
)

// argError is an ErrInvalidArgument whose text is only the message, which names the member
// as AWS validation messages do.
type argError struct{ msg string }

func (e *argError) Error() string        { return e.msg }
func (e *argError) Is(target error) bool { return target == ErrInvalidArgument }

func invalid(format string, args ...any) error {
	return Invalid(format, args...)
}

// Invalid returns an ErrInvalidArgument with the given message, for other domain packages whose
// validation failures are InvalidArgumentException too.
func Invalid(format string, args ...any) error {
	return &argError{msg: fmt.Sprintf(format, args...)}
}
