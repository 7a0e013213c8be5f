package sigv4

import (
	"bufio"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// fuzzSeedBody and friends describe the valid header-signed seed; the same
// request is in testdata/fuzz/FuzzVerify/valid_header_auth.
const (
	fuzzSeedBody    = `{"StreamName":"cam-1"}`
	fuzzSeedHeaders = "Host: 127.0.0.1:8080\nUser-Agent: AWS-SDK-KVS/3.6.0\nX-Amz-Date: " + testAmzDate
)

// fuzzRequests turns fuzz input into requests two ways: built field by field
// (reaches Verify with almost any input) and parsed by net/http from the
// equivalent HTTP/1.1 text (the header moving a server really does). Inputs
// that net/http would never hand a handler are skipped.
func fuzzRequests(method, target, authz, headers string, body []byte) []*http.Request {
	var out []*http.Request
	if u, err := url.ParseRequestURI(target); err == nil && method != "" {
		r := &http.Request{Method: method, URL: u, Header: http.Header{}, ContentLength: int64(len(body))}
		for _, line := range strings.Split(headers, "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			switch strings.ToLower(k) {
			case "host":
				r.Host = v
			case "transfer-encoding":
				r.TransferEncoding = append(r.TransferEncoding, v)
			default:
				r.Header.Add(k, v)
			}
		}
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		out = append(out, r)
	}

	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\n")
	for _, line := range strings.Split(headers, "\n") {
		b.WriteString(line + "\r\n")
	}
	if authz != "" {
		b.WriteString("Authorization: " + authz + "\r\n")
	}
	if !strings.Contains(strings.ToLower(headers), "transfer-encoding") {
		b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	}
	b.WriteString("\r\n")
	b.Write(body)
	if r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(b.String()))); err == nil {
		out = append(out, r)
	}
	return out
}

func FuzzVerify(f *testing.F) {
	// More seeds, malformed ones included, live in testdata/fuzz/FuzzVerify.
	f.Add("POST", "/describeStream", baseSigner(fuzzSeedBody).Authorization(), fuzzSeedHeaders, []byte(fuzzSeedBody), false)
	v := newTestVerifier(testNow)
	f.Fuzz(func(t *testing.T, method, target, authz, headers string, body []byte, streamed bool) {
		bodyHash := ""
		if !streamed {
			bodyHash = sha256Hex(string(body))
		}
		for _, r := range fuzzRequests(method, target, authz, headers, body) {
			id, err := v.Verify(r, bodyHash)
			if err == nil {
				if id != testAKID {
					t.Fatalf("accepted with access key %q", id)
				}
				continue
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error is not an *Error: %v", err)
			}
			if e.Kind < KindMissing || e.Kind > KindExpired || e.Message == "" || id != "" {
				t.Fatalf("bad rejection: kind %d, message %q, id %q", e.Kind, e.Message, id)
			}
		}
	})
}

// The valid seed must really be valid through both request builders,
// otherwise the fuzzer starts from nothing but rejections.
func TestFuzzSeedIsValid(t *testing.T) {
	rs := fuzzRequests("POST", "/describeStream", baseSigner(fuzzSeedBody).Authorization(), fuzzSeedHeaders, []byte(fuzzSeedBody))
	if len(rs) != 2 {
		t.Fatalf("built %d requests, want 2", len(rs))
	}
	for _, r := range rs {
		mustVerify(t, newTestVerifier(testNow), r, sha256Hex(fuzzSeedBody))
	}
}
