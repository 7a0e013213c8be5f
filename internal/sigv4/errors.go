package sigv4

import "fmt"

// Kind classifies why a request failed verification. The HTTP layer maps each
// Kind to the status and error type AWS returns for it; all of them are 403.
type Kind int

const (
	// KindMissing: the request carries no signature at all (neither an
	// Authorization header nor an X-Amz-Signature query parameter).
	// AWS answers MissingAuthenticationTokenException.
	KindMissing Kind = iota + 1
	// KindIncomplete: a signature is present but malformed (Authorization
	// header parameters, credential scope, date, presigned parameters).
	// AWS answers IncompleteSignatureException.
	KindIncomplete
	// KindUnrecognized: unknown access key id, or a session token that does
	// not match the credential's. AWS answers UnrecognizedClientException.
	KindUnrecognized
	// KindInvalidSignature: well-formed but wrong (signature mismatch, wrong
	// scope region/service/date, payload hash mismatch).
	// AWS answers InvalidSignatureException.
	KindInvalidSignature
	// KindExpired: the request time lies outside the allowed window.
	// AWS answers InvalidSignatureException with a "Signature expired" text.
	KindExpired
)

// String returns the AWS error type the HTTP layer is expected to send for k.
func (k Kind) String() string {
	switch k {
	case KindMissing:
		return "MissingAuthenticationTokenException"
	case KindIncomplete:
		return "IncompleteSignatureException"
	case KindUnrecognized:
		return "UnrecognizedClientException"
	case KindInvalidSignature, KindExpired:
		return "InvalidSignatureException"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Error is the only error type Verify returns.
type Error struct {
	Kind    Kind
	Message string // AWS-style text, safe to show to the client
}

func (e *Error) Error() string {
	return "sigv4: " + e.Kind.String() + ": " + e.Message
}

func errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// AWS's exact texts, reused by several checks.
const (
	msgMissingToken      = "Missing Authentication Token"
	msgInvalidToken      = "The security token included in the request is invalid."
	msgSignatureMismatch = "The request signature we calculated does not match the signature you provided. " +
		"Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
	msgContentSHA256Mismatch = "The provided 'x-amz-content-sha256' header does not match what was computed."
	msgRequestExpired        = "Request has expired"
)
