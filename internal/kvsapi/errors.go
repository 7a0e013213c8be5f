package kvsapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/kvsd/kvsd/internal/awsapi"
	"github.com/kvsd/kvsd/internal/catalog"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/imagegen"
	"github.com/kvsd/kvsd/internal/keys"
	"github.com/kvsd/kvsd/internal/playback"
	"github.com/kvsd/kvsd/internal/remux"
	"github.com/kvsd/kvsd/internal/sigv4"
	"github.com/kvsd/kvsd/internal/stream"
)

// errorTable maps domain sentinels to AWS error types: the one place this mapping lives.
var errorTable = []struct {
	err    error
	code   string
	status int
}{
	{playback.ErrNoFragments, "ResourceNotFoundException", http.StatusNotFound},
	{stream.ErrNotFound, "ResourceNotFoundException", http.StatusNotFound},
	{imagegen.ErrNoImage, "ResourceNotFoundException", http.StatusNotFound},
	{stream.ErrInUse, "ResourceInUseException", http.StatusBadRequest},
	{stream.ErrVersionMismatch, "VersionMismatchException", http.StatusBadRequest},
	{stream.ErrTooManyTags, "TagsPerResourceExceededLimitException", http.StatusBadRequest},
	{stream.ErrNoDataRetention, "NoDataRetentionException", http.StatusBadRequest},
	{stream.ErrInvalidARN, "InvalidResourceFormatException", http.StatusBadRequest},
	{stream.ErrInvalidArgument, awsapi.CodeInvalidArgument, http.StatusBadRequest},
	{playback.ErrConnectionLimit, "ConnectionLimitExceededException", http.StatusBadRequest},
	// PutMedia for a stream another kvsd node is ingesting (scale-out): one writer per stream.
	{catalog.ErrLeaseHeld, "ConnectionLimitExceededException", http.StatusBadRequest},
	// Playback GETs with an expired or altered SessionToken: 403, as KVS answers them.
	{playback.ErrSessionExpired, "NotAuthorizedException", http.StatusForbidden},
	{playback.ErrSessionInvalid, "NotAuthorizedException", http.StatusForbidden},
	{remux.ErrUnsupportedMedia, "UnsupportedStreamMediaTypeException", http.StatusBadRequest},
	{remux.ErrMissingCodecPrivate, "MissingCodecPrivateDataException", http.StatusBadRequest},
	{remux.ErrInvalidCodecPrivate, "InvalidCodecPrivateDataException", http.StatusBadRequest},
	{remux.ErrInvalidFrame, "InvalidMediaFrameException", http.StatusBadRequest},
	// Stored media that is damaged, or whose key cannot be used: a server fault, but named (the
	// fragment and why) rather than hidden behind the request id.
	{fragstore.ErrCorrupt, awsapi.CodeInternalFailure, http.StatusInternalServerError},
	{keys.ErrKey, awsapi.CodeInternalFailure, http.StatusInternalServerError},
}

var authErrorCodes = map[sigv4.Kind]string{
	sigv4.KindMissing:          "MissingAuthenticationTokenException",
	sigv4.KindIncomplete:       "IncompleteSignatureException",
	sigv4.KindUnrecognized:     "UnrecognizedClientException",
	sigv4.KindInvalidSignature: "InvalidSignatureException",
	sigv4.KindExpired:          "InvalidSignatureException",
}

// toAPIError turns any handler error into what the client sees. Unknown errors become a 500
// that names the request id; their cause goes to the log only.
func toAPIError(err error) *awsapi.Error {
	var ae *awsapi.Error
	if errors.As(err, &ae) {
		return ae
	}
	var se *sigv4.Error
	if errors.As(err, &se) {
		return &awsapi.Error{Code: authErrorCodes[se.Kind], Status: http.StatusForbidden, Message: se.Message, Cause: err}
	}
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			return &awsapi.Error{Code: e.code, Status: e.status, Message: err.Error(), Cause: err}
		}
	}
	if errors.Is(err, context.Canceled) {
		return &awsapi.Error{Code: "RequestCanceled", Status: 499, Message: "the client went away", Cause: err}
	}
	return &awsapi.Error{Code: awsapi.CodeInternalFailure, Status: http.StatusInternalServerError,
		Message: "kvsd failed to process the request; the server log has the cause under this request id", Cause: err}
}
