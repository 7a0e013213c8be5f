// Package objstore holds the places kvsd delivers objects (generated images) to: any
// S3-compatible endpoint through the AWS SDK (S3), and the embedded default, a local folder laid
// out like a bucket (Dir). Both take whole objects with a content type and S3 user metadata.
//
// Errors are classified once, here, so callers decide how to retry without knowing the
// backend: every failure is an *Error carrying an S3-style code ("NoSuchBucket",
// "AccessDenied", "NetworkError" …) and whether retrying the same request can succeed without
// someone changing something (Permanent).
package objstore

import (
	"context"
	"errors"
	"fmt"
)

// Store puts whole objects. A Put that returns nil is durable at the destination (S3's answer,
// or fsync for Dir); putting the same key again replaces the object.
type Store interface {
	Put(ctx context.Context, bucket, key string, body []byte, contentType string, meta map[string]string) error
}

// Error is a failed Put.
type Error struct {
	Code      string // S3 error code, or NetworkError / LocalWriteError for failures below S3
	Permanent bool   // the same request fails again until the destination is fixed
	Err       error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Code
	}
	return fmt.Sprintf("%s: %v", e.Code, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Code returns the error code of a Put failure ("" for nil, "Error" for an unclassified one).
func Code(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return "Error"
}

// IsPermanent reports whether err needs a change at the destination (a bucket, a permission,
// credentials) before a retry can succeed. Cancellation is never permanent.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Permanent
}

// permanentCodes are the S3 error codes that no retry of the same request fixes. Everything
// else (5xx, SlowDown, timeouts, network failures) is retried quickly.
var permanentCodes = map[string]bool{
	"NoSuchBucket": true, "AccessDenied": true, "InvalidAccessKeyId": true, "SignatureDoesNotMatch": true,
	"InvalidBucketName": true, "AllAccessDisabled": true, "AccountProblem": true, "InvalidToken": true,
	"ExpiredToken": true, "TokenRefreshRequired": true, "AuthorizationHeaderMalformed": true,
	"PermanentRedirect": true, "InvalidArgument": true, "InvalidRequest": true, "MetadataTooLarge": true,
	"EntityTooLarge": true, "KeyTooLongError": true, "InvalidObjectState": true, "MethodNotAllowed": true,
	"NotImplemented": true, "InvalidStorageClass": true, "RequestTimeTooSkewed": true,
	"KMS.DisabledException": true, "KMS.NotFoundException": true, "KMS.KMSInvalidStateException": true,
	"UnauthorizedAccess": true, "InvalidObjectName": true,
}
