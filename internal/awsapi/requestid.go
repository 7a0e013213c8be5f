package awsapi

import (
	"crypto/rand"
	"fmt"
)

// RequestIDHeader is the header every KVS client reads the request id from.
const RequestIDHeader = "x-amzn-RequestId"

// NewRequestID returns a random UUID v4 string, the shape AWS request ids have.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails since Go 1.24
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
