package sigv4

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Fixed identities and clock shared by the tests.
const (
	testAKID    = "AKIDKVSDTEST0000"
	testSecret  = "kvsd/TestSecret+Key0123456789abcdefEXAMPLE"
	testRegion  = "us-east-1"
	testService = "kinesisvideo"
	testAmzDate = "20251121T101010Z"
)

var testNow = time.Date(2025, 11, 21, 10, 10, 10, 0, time.UTC)

// newTestVerifier accepts testAKID/testSecret plus any extra credentials, with
// the clock pinned at now.
func newTestVerifier(now time.Time, extra ...Credential) *Verifier {
	creds := map[string]Credential{testAKID: {AccessKeyID: testAKID, SecretAccessKey: testSecret}}
	for _, c := range extra {
		creds[c.AccessKeyID] = c
	}
	return &Verifier{
		Region:  testRegion,
		Service: testService,
		Lookup: func(id string) (Credential, bool) {
			c, ok := creds[id]
			return c, ok
		},
		Now: func() time.Time { return now },
	}
}

// refSigner is a deliberately plain SigV4 signer written from the AWS
// specification for these tests. It shares no code with the verifier: the
// caller states the canonical URI, query and header values explicitly.
type refSigner struct {
	Method         string
	CanonicalURI   string
	CanonicalQuery string
	Headers        [][2]string // lower-case name and canonical value, sorted by name
	PayloadHash    string
	AccessKeyID    string
	Secret         string
	Region         string
	Service        string
	AmzDate        string
	ScopeDate      string // "" means AmzDate's day
}

func (s refSigner) scope() string {
	day := s.ScopeDate
	if day == "" {
		day = s.AmzDate[:8]
	}
	return day + "/" + s.Region + "/" + s.Service + "/aws4_request"
}

func (s refSigner) signedHeaders() string {
	names := make([]string, len(s.Headers))
	for i, h := range s.Headers {
		names[i] = h[0]
	}
	return strings.Join(names, ";")
}

func (s refSigner) canonicalRequest() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n%s\n%s\n", s.Method, s.CanonicalURI, s.CanonicalQuery)
	for _, h := range s.Headers {
		fmt.Fprintf(&b, "%s:%s\n", h[0], h[1])
	}
	fmt.Fprintf(&b, "\n%s\n%s", s.signedHeaders(), s.PayloadHash)
	return b.String()
}

func (s refSigner) Signature() string {
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	crHash := sha256.Sum256([]byte(s.canonicalRequest()))
	sts := "AWS4-HMAC-SHA256\n" + s.AmzDate + "\n" + s.scope() + "\n" + hex.EncodeToString(crHash[:])
	day := strings.SplitN(s.scope(), "/", 2)[0]
	key := mac(mac(mac(mac([]byte("AWS4"+s.Secret), day), s.Region), s.Service), "aws4_request")
	return hex.EncodeToString(mac(key, sts))
}

func (s refSigner) Authorization() string {
	return "AWS4-HMAC-SHA256 Credential=" + s.AccessKeyID + "/" + s.scope() +
		", SignedHeaders=" + s.signedHeaders() + ", Signature=" + s.Signature()
}

// baseSigner describes the request built by baseRequest: a kvssink-style
// POST /describeStream signing host;user-agent;x-amz-date.
func baseSigner(body string) refSigner {
	return refSigner{
		Method:       "POST",
		CanonicalURI: "/describeStream",
		Headers: [][2]string{
			{"host", "127.0.0.1:8080"},
			{"user-agent", "AWS-SDK-KVS/3.6.0"},
			{"x-amz-date", testAmzDate},
		},
		PayloadHash: sha256Hex(body),
		AccessKeyID: testAKID,
		Secret:      testSecret,
		Region:      testRegion,
		Service:     testService,
		AmzDate:     testAmzDate,
	}
}

// rawRequest renders an HTTP/1.1 request as a client would write it.
func rawRequest(method, target string, headers [][2]string, body string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\n", method, target)
	for _, h := range headers {
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	if body != "" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	return b.String()
}

// parseRequest reads raw with net/http's server-side parser, so headers are
// moved around exactly as a kvsd handler would see them.
func parseRequest(t testing.TB, raw string) *http.Request {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatalf("parse request: %v\n%s", err, raw)
	}
	return r
}

// signedRequest sends the headers s signed (their wire names are the
// lower-case ones), any extra unsigned headers and the Authorization header.
func signedRequest(t testing.TB, s refSigner, target, body string, extra ...[2]string) *http.Request {
	t.Helper()
	headers := append(append([][2]string{}, s.Headers...), extra...)
	headers = append(headers, [2]string{"Authorization", s.Authorization()})
	return parseRequest(t, rawRequest(s.Method, target, headers, body))
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// wantKind asserts err is an *Error of kind k and returns its message.
func wantKind(t testing.TB, err error, k Kind) string {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want *Error of kind %v, got %v", k, err)
	}
	if e.Kind != k {
		t.Fatalf("want kind %v, got %v (%q)", k, e.Kind, e.Message)
	}
	return e.Message
}
