// Package awsapi is the AWS REST-JSON wire format as KVS clients expect it: the error shape with
// x-amzn-ErrorType and x-amzn-RequestId, request ids, epoch-second timestamps and strict JSON decoding.
package awsapi

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Error is an error as the client sees it. Cause, when set, is logged and never sent.
type Error struct {
	Code    string // e.g. ResourceNotFoundException
	Status  int
	Message string
	Cause   error
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }
func (e *Error) Unwrap() error { return e.Cause }

// Errorf builds an Error with a formatted message.
func Errorf(code string, status int, format string, args ...any) *Error {
	return &Error{Code: code, Status: status, Message: fmt.Sprintf(format, args...)}
}

// Error codes used by more than one operation.
const (
	CodeInvalidArgument  = "InvalidArgumentException"
	CodeInternalFailure  = "InternalFailure"
	CodeUnknownOperation = "UnknownOperationException"
	CodeNotImplemented   = "NotImplementedException"
)

// InvalidArgument is the 400 every validation failure answers.
func InvalidArgument(format string, args ...any) *Error {
	return Errorf(CodeInvalidArgument, http.StatusBadRequest, format, args...)
}

// errorBody carries the code twice: botocore reads __type, the Go SDK reads the header.
type errorBody struct {
	Type    string `json:"__type"`
	Message string `json:"message"`
}

// WriteError writes e in the AWS shape. The request id header is set by the caller's middleware.
func WriteError(w http.ResponseWriter, e *Error) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("x-amzn-ErrorType", e.Code)
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(errorBody{Type: e.Code, Message: e.Message})
}

// WriteJSON writes a 200 response; v == nil writes {} as AWS does for empty outputs.
func WriteJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if v == nil {
		_, _ = w.Write([]byte("{}"))
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}

// RawResponse is e as a whole HTTP/1.1 response that closes the connection, for answers written
// before net/http reads the request (a connection refused at accept).
func RawResponse(e *Error) []byte {
	body, _ := json.Marshal(errorBody{Type: e.Code, Message: e.Message})
	return fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nx-amzn-ErrorType: %s\r\n"+
		"Content-Length: %d\r\nConnection: close\r\n\r\n%s", e.Status, http.StatusText(e.Status), e.Code, len(body), body)
}
