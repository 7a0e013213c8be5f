package ingest

import (
	"errors"
	"fmt"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/keys"
	"github.com/kvsd/kvsd/internal/stream"
)

// errSuperseded ends a connection that a newer one of the same stream took over: the last
// connection wins, as on AWS. It sends no ERROR ack: the producer SDK applies an ERROR to its
// buffer, which the newer connection streams from, and would rewind or skip there; the plain
// end of the response tells it this connection is done.
var errSuperseded = &ackError{err: errors.New("a newer PutMedia connection of the stream took over")}

// errNoHeader refuses a body that does not start with an EBML header on a stream kvsd has no
// header for: there is nothing to continue.
const errNoHeader = "the body does not start with an EBML header, and no earlier connection of this stream gave kvsd one to continue with"

// errIdle ends a session whose producer sent nothing for Config.IdleTimeout. No ack says so:
// KVS simply ends the response.
var errIdle = errors.New("no data for the idle timeout")

// ERROR ack ids (§3.4); the PIC accepts only ids it knows, so new ones must come from that list.
const (
	errStreamRead         = 4000
	errFragmentSize       = 4001
	errFragmentDuration   = 4002
	errConnectionDuration = 4003
	errTimecodeLesser     = 4004
	errInvalidMKV         = 4006
	errProducerTimestamp  = 4007
	errStreamNotActive    = 4008
	errMetadataLimit      = 4009
	errTrackMismatch      = 4010
	errFramesMissing      = 4011
	errTooManyTracks      = 4012
	errInternal           = 5000
	errArchival           = 5001
)

var errorCodes = map[int]string{
	errStreamRead:         "STREAM_READ_ERROR",
	errFragmentSize:       "MAX_FRAGMENT_SIZE_REACHED",
	errFragmentDuration:   "MAX_FRAGMENT_DURATION_REACHED",
	errConnectionDuration: "MAX_CONNECTION_DURATION_REACHED",
	errTimecodeLesser:     "FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS",
	errInvalidMKV:         "INVALID_MKV_DATA",
	errProducerTimestamp:  "INVALID_PRODUCER_TIMESTAMP",
	errStreamNotActive:    "STREAM_NOT_ACTIVE",
	errMetadataLimit:      "FRAGMENT_METADATA_LIMIT_REACHED",
	errTrackMismatch:      "TRACK_NUMBER_MISMATCH",
	errFramesMissing:      "FRAMES_MISSING_FOR_TRACK",
	errTooManyTracks:      "MORE_THAN_ALLOWED_TRACKS_FOUND",
	errInternal:           "INTERNAL_ERROR",
	errArchival:           "ARCHIVAL_ERROR",
}

func init() {
	// 4500-4506: the KMS (key) errors, with KVS's strings (keys.Code).
	for c := keys.AccessDenied; c <= keys.NotFound; c++ {
		errorCodes[int(c)] = c.String()
		fixes[int(c)] = keyFix
	}
}

// keyFix is what to do about any key error.
const keyFix = "kvsd cannot use the key that encrypts this stream's media (KmsKeyId; the key file or KMS in kvsd's log). Check that the key file is the one kvsd was started with, or that KMS is reachable and the key exists, is enabled and may be used by kvsd's AWS identity (kms:GenerateDataKey, kms:Decrypt); see README, Encryption at rest."

// persistFailure is the ERROR for a fragment the store refused: a key error's own id
// (4500-4506), else ARCHIVAL_ERROR.
func persistFailure(f *fragment.Fragment, err error) *ackError {
	if code, ok := keys.CodeOf(err); ok {
		return failf(int(code), f, "persist: %w", err)
	}
	return failf(errArchival, f, "persist: %w", err)
}

// ackError is a failure the producer learns of through an ERROR ack; Run returns it.
type ackError struct {
	id       int
	timecode uint64 // of the failing fragment, when there is one
	number   string // "" when the failure is about no particular fragment
	err      error
}

func (e *ackError) Error() string {
	if e.id == endSuperseded {
		return e.err.Error()
	}
	return fmt.Sprintf("ERROR %d %s: %v", e.id, errorCodes[e.id], e.err)
}

func (e *ackError) Unwrap() error { return e.err }

func (e *ackError) ack() Ack {
	return Ack{EventType: EventError, FragmentTimecode: e.timecode, FragmentNumber: e.number,
		ErrorID: e.id, ErrorCode: errorCodes[e.id]}
}

// failf builds an ackError about fragment f (nil when there is none).
func failf(id int, f *fragment.Fragment, format string, args ...any) *ackError {
	e := &ackError{id: id, err: fmt.Errorf(format, args...)}
	if f != nil {
		e.timecode, e.number = f.Timecode, f.Number
	}
	return e
}

// invalidError is a bad request parameter; kvsapi maps it like any stream.ErrInvalidArgument,
// and its text is only the message.
type invalidError string

func (e invalidError) Error() string        { return string(e) }
func (e invalidError) Is(target error) bool { return target == stream.ErrInvalidArgument }
