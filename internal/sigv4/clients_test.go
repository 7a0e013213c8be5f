package sigv4

// Vectors from real clients: the AWS SDK for Go v2 signer, a kvssink-style
// PutMedia written byte by byte on a TCP connection, and botocore.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// verifyServer is a real HTTP server whose handler does what kvsd's will:
// buffer and hash the body (unless streamed), call Verify, and answer
// "OK <akid>" or 403 "<Kind> <message>".
func verifyServer(t *testing.T, v *Verifier, streamed bool, inspect func(*http.Request)) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if inspect != nil {
			inspect(r)
		}
		bodyHash := ""
		if !streamed {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			bodyHash = sha256Hex(string(body))
		}
		id, err := v.Verify(r, bodyHash)
		if streamed {
			io.Copy(io.Discard, r.Body) // let the client finish its chunked upload
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				http.Error(w, "not a *sigv4.Error: "+err.Error(), http.StatusInternalServerError)
				return
			}
			http.Error(w, fmt.Sprintf("%d %s", e.Kind, e.Message), http.StatusForbidden)
			return
		}
		fmt.Fprintf(w, "OK %s", id)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// outcome reads a verifyServer answer: "" for success, else "<kind> <message>".
func outcome(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	text := strings.TrimSpace(string(b))
	if resp.StatusCode == http.StatusOK && strings.HasPrefix(text, "OK ") {
		return ""
	}
	return text
}

func kindPrefix(k Kind) string { return fmt.Sprintf("%d ", k) }

// ---- (a) AWS SDK for Go v2 ----

func sdkCreds(token string) aws.Credentials {
	return aws.Credentials{AccessKeyID: testAKID, SecretAccessKey: testSecret, SessionToken: token}
}

func TestGoSDKSignHTTP(t *testing.T) {
	body := []byte(`{"StreamName":"cam-1","MaxResults":10}`)
	signer := v4.NewSigner()
	send := func(t *testing.T, srv *httptest.Server, path string, sent []byte, edit func(*http.Request, *string), token, region string) string {
		req, err := http.NewRequest("POST", srv.URL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		payload := sha256Hex(string(body))
		if edit != nil {
			edit(req, &payload)
		}
		if err := signer.SignHTTP(context.Background(), sdkCreds(token), req, payload, testService, region, testNow); err != nil {
			t.Fatal(err)
		}
		authz := req.Header.Get("Authorization")
		if !strings.Contains(authz, "SignedHeaders=content-length;content-type;host;") {
			t.Fatalf("the SDK did not sign content-length/host as expected: %s", authz)
		}
		// Send possibly different bytes than were signed.
		req.Body = io.NopCloser(bytes.NewReader(sent))
		req.ContentLength = int64(len(sent))
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return outcome(t, resp)
	}

	var sawContentLength, sawHostInHeader bool
	srv := verifyServer(t, newTestVerifier(testNow), false, func(r *http.Request) {
		sawContentLength = r.Header.Get("Content-Length") != ""
		sawHostInHeader = r.Header.Get("Host") != ""
	})
	t.Run("describeStream", func(t *testing.T) {
		if got := send(t, srv, "/describeStream", body, nil, "", testRegion); got != "" {
			t.Fatal(got)
		}
		if sawHostInHeader {
			t.Error("expected net/http to move Host out of r.Header")
		}
		t.Logf("net/http kept Content-Length in r.Header: %v", sawContentLength)
	})
	t.Run("path with space and percent", func(t *testing.T) {
		if got := send(t, srv, "/stream%20one/a%25b/describeStream", body, nil, "", testRegion); got != "" {
			t.Fatal(got)
		}
	})
	t.Run("UNSIGNED-PAYLOAD and STREAMING literals", func(t *testing.T) {
		for _, literal := range []string{"UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"} {
			edit := func(r *http.Request, payload *string) {
				r.Header.Set("X-Amz-Content-Sha256", literal)
				*payload = literal
			}
			// The body is not covered, so other bytes (of the signed length) pass too.
			if got := send(t, srv, "/putMedia", bytes.ToUpper(body), edit, "", testRegion); got != "" {
				t.Fatalf("%s: %s", literal, got)
			}
		}
	})
	t.Run("hex x-amz-content-sha256 with tampered body", func(t *testing.T) {
		edit := func(r *http.Request, payload *string) { r.Header.Set("X-Amz-Content-Sha256", *payload) }
		got := send(t, srv, "/describeStream", []byte(`{"StreamName":"cam-9","MaxResults":10}`), edit, "", testRegion)
		if got != kindPrefix(KindInvalidSignature)+msgContentSHA256Mismatch {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("tampered body", func(t *testing.T) {
		got := send(t, srv, "/describeStream", []byte(`{"StreamName":"cam-9","MaxResults":10}`), nil, "", testRegion)
		if got != kindPrefix(KindInvalidSignature)+awsMismatch {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("wrong region", func(t *testing.T) {
		got := send(t, srv, "/describeStream", body, nil, "", "ap-south-1")
		if !strings.HasPrefix(got, kindPrefix(KindInvalidSignature)) || !strings.Contains(got, "'ap-south-1'") || !strings.Contains(got, "'us-east-1'") {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("session token", func(t *testing.T) {
		v := newTestVerifier(testNow, Credential{AccessKeyID: testAKID, SecretAccessKey: testSecret, SessionToken: "sdk-token"})
		tokSrv := verifyServer(t, v, false, nil)
		if got := send(t, tokSrv, "/getDataEndpoint", body, nil, "sdk-token", testRegion); got != "" {
			t.Fatal(got)
		}
		if got := send(t, tokSrv, "/getDataEndpoint", body, nil, "other-token", testRegion); got != kindPrefix(KindUnrecognized)+msgInvalidToken {
			t.Fatalf("got %q", got)
		}
	})
}

func TestGoSDKPresignHTTP(t *testing.T) {
	signer := v4.NewSigner()
	presign := func(t *testing.T, base, payload, token string, expires int) *http.Request {
		target := base + "/getMedia?StreamName=cam-1"
		if expires > 0 {
			target += fmt.Sprintf("&X-Amz-Expires=%d", expires)
		}
		req, err := http.NewRequest("GET", target, nil)
		if err != nil {
			t.Fatal(err)
		}
		uri, headers, err := signer.PresignHTTP(context.Background(), sdkCreds(token), req, payload, testService, testRegion, testNow)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(uri, "X-Amz-Signature=") {
			t.Fatalf("not a presigned URL: %s", uri)
		}
		out, err := http.NewRequest("GET", uri, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, vs := range headers {
			if k != "Host" {
				out.Header[k] = vs
			}
		}
		return out
	}
	do := func(t *testing.T, req *http.Request) string {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return outcome(t, resp)
	}
	for _, payload := range []string{EmptySHA256, "UNSIGNED-PAYLOAD"} {
		t.Run("payload "+payload[:8], func(t *testing.T) {
			srv := verifyServer(t, newTestVerifier(testNow.Add(4*time.Minute)), false, nil)
			if got := do(t, presign(t, srv.URL, payload, "", 300)); got != "" {
				t.Fatal(got)
			}
			if got := do(t, presign(t, srv.URL, payload, "", 0)); got != "" {
				t.Fatal(got)
			}
		})
	}
	t.Run("session token in the query", func(t *testing.T) {
		v := newTestVerifier(testNow, Credential{AccessKeyID: testAKID, SecretAccessKey: testSecret, SessionToken: "sdk-token"})
		srv := verifyServer(t, v, false, nil)
		req := presign(t, srv.URL, EmptySHA256, "sdk-token", 300)
		if !strings.Contains(req.URL.RawQuery, "X-Amz-Security-Token=sdk-token") {
			t.Fatalf("token not in query: %s", req.URL.RawQuery)
		}
		if got := do(t, req); got != "" {
			t.Fatal(got)
		}
	})
	t.Run("expired after X-Amz-Expires", func(t *testing.T) {
		srv := verifyServer(t, newTestVerifier(testNow.Add(301*time.Second)), false, nil)
		if got := do(t, presign(t, srv.URL, EmptySHA256, "", 300)); got != kindPrefix(KindExpired)+"Request has expired" {
			t.Fatalf("got %q", got)
		}
	})
}

// ---- (b) kvssink PutMedia on a raw TCP connection ----

// kvssinkSigned are the headers kvssink signs for PutMedia (§13 of the
// protocol reference), with the values it sends; Host carries no port.
var kvssinkSigned = [][2]string{
	{"connection", "keep-alive"},
	{"host", "127.0.0.1"},
	{"transfer-encoding", "chunked"},
	{"user-agent", "AWS-SDK-KVS-CPP-CLIENT/3.6.0/1.6.0 GCC/12.2.0 Linux/6.1.0 x86_64"},
	{"x-amz-date", testAmzDate},
	{"x-amzn-fragment-acknowledgment-required", "1"},
	{"x-amzn-fragment-timecode-type", "ABSOLUTE"},
	{"x-amzn-producer-start-timestamp", "1795263160.70"},
	{"x-amzn-stream-name", "cam-1"},
}

// kvssinkPutMedia writes the request by hand and returns the final response.
func kvssinkPutMedia(t *testing.T, addr, hostHeader string) *http.Response {
	s := refSigner{Method: "POST", CanonicalURI: "/putMedia", Headers: kvssinkSigned, PayloadHash: EmptySHA256,
		AccessKeyID: testAKID, Secret: testSecret, Region: testRegion, Service: testService, AmzDate: testAmzDate}
	if got := s.signedHeaders(); got != "connection;host;transfer-encoding;user-agent;x-amz-date;x-amzn-fragment-acknowledgment-required;x-amzn-fragment-timecode-type;x-amzn-producer-start-timestamp;x-amzn-stream-name" {
		t.Fatalf("signed headers %q differ from kvssink's", got)
	}
	var b strings.Builder
	b.WriteString("POST /putMedia HTTP/1.1\r\n")
	b.WriteString("Host: " + hostHeader + "\r\n")
	b.WriteString("Accept: */*\r\n")
	b.WriteString("Authorization: " + s.Authorization() + "\r\n")
	b.WriteString("connection: keep-alive\r\n")
	b.WriteString("content-type: application/json\r\n")
	b.WriteString("transfer-encoding: chunked\r\n")
	for _, h := range kvssinkSigned[3:] {
		b.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	b.WriteString("Expect: 100-continue\r\n\r\n")
	// Two chunks of an EBML stream, then the terminating chunk.
	for _, chunk := range [][]byte{{0x1A, 0x45, 0xDF, 0xA3, 0x9F}, bytes.Repeat([]byte{0xA3}, 300)} {
		fmt.Fprintf(&b, "%x\r\n%s\r\n", len(chunk), chunk)
	}
	b.WriteString("0\r\n\r\n")

	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusContinue {
			return resp
		}
	}
}

func TestKvssinkPutMediaRawTCP(t *testing.T) {
	type seen struct {
		teInHeader bool
		te         []string
		host       string
		connection string
	}
	got := make(chan seen, 1)
	srv := verifyServer(t, newTestVerifier(testNow), true, func(r *http.Request) {
		got <- seen{r.Header.Get("Transfer-Encoding") != "", r.TransferEncoding, r.Host, r.Header.Get("Connection")}
	})
	addr := srv.Listener.Addr().String()

	if res := outcome(t, kvssinkPutMedia(t, addr, "127.0.0.1")); res != "" {
		t.Fatalf("kvssink PutMedia rejected: %s", res)
	}
	s := <-got
	// These are why the verifier rebuilds values instead of reading r.Header.
	if s.teInHeader || len(s.te) != 1 || s.te[0] != "chunked" {
		t.Errorf("net/http did not move Transfer-Encoding as expected: in header %v, r.TransferEncoding %q", s.teInHeader, s.te)
	}
	if s.host != "127.0.0.1" || s.connection != "keep-alive" {
		t.Errorf("r.Host %q, Connection %q", s.host, s.connection)
	}

	// The same signature with the host:port the server listens on is not
	// what was signed: the verifier must not reconstruct host:port.
	if res := outcome(t, kvssinkPutMedia(t, addr, addr)); res != kindPrefix(KindInvalidSignature)+awsMismatch {
		t.Fatalf("want signature mismatch for a different Host, got %q", res)
	}
	<-got
}

// ---- (c) botocore ----

type botocoreFile struct {
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
	SessionToken    string `json:"session_token"`
	Region          string `json:"region"`
	Service         string `json:"service"`
	Now             string `json:"now"`
	Vectors         []struct {
		Name            string      `json:"name"`
		Method          string      `json:"method"`
		URL             string      `json:"url"`
		Headers         [][2]string `json:"headers"`
		BodyBase64      string      `json:"body_base64"`
		Streamed        bool        `json:"streamed"`
		PayloadUnsigned bool        `json:"payload_unsigned"`
		SessionToken    bool        `json:"session_token"`
	} `json:"vectors"`
}

func TestBotocoreVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/botocore_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var f botocoreFile
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) < 8 {
		t.Fatalf("only %d vectors", len(f.Vectors))
	}
	now, err := time.Parse(amzDateLayout, f.Now)
	if err != nil {
		t.Fatal(err)
	}
	verifier := func(token string) *Verifier {
		return &Verifier{Region: f.Region, Service: f.Service, Now: func() time.Time { return now },
			Lookup: func(id string) (Credential, bool) {
				return Credential{AccessKeyID: f.AccessKeyID, SecretAccessKey: f.SecretAccessKey, SessionToken: token}, id == f.AccessKeyID
			}}
	}
	for _, vec := range f.Vectors {
		t.Run(vec.Name, func(t *testing.T) {
			body, err := base64.StdEncoding.DecodeString(vec.BodyBase64)
			if err != nil {
				t.Fatal(err)
			}
			u, err := url.Parse(vec.URL)
			if err != nil {
				t.Fatal(err)
			}
			token := ""
			if vec.SessionToken {
				token = f.SessionToken
			}
			v := verifier(token)
			build := func(url string, body []byte) *http.Request {
				return parseRequest(t, rawRequest(vec.Method, url, vec.Headers, string(body)))
			}
			bodyHash := func(b []byte) string {
				if vec.Streamed {
					return ""
				}
				sum := sha256.Sum256(b)
				return hex.EncodeToString(sum[:])
			}
			target := u.RequestURI()
			if id, err := v.Verify(build(target, body), bodyHash(body)); err != nil || id != f.AccessKeyID {
				t.Fatalf("Verify = %q, %v", id, err)
			}
			if vec.SessionToken {
				_, err := verifier("another-token").Verify(build(target, body), bodyHash(body))
				wantKind(t, err, KindUnrecognized)
			}

			// Changing any byte of the body must fail, unless botocore
			// deliberately left the payload unsigned.
			for i := range body {
				bad := bytes.Clone(body)
				bad[i] ^= 0x01
				_, err := v.Verify(build(target, bad), bodyHash(bad))
				if vec.PayloadUnsigned {
					if err != nil {
						t.Fatalf("unsigned payload, byte %d changed: %v", i, err)
					}
					continue
				}
				wantKind(t, err, KindInvalidSignature)
			}

			// Changing any hex digit of the signature must fail.
			sig, inURL := botocoreSignature(t, vec.Headers, u)
			for i := range sig {
				bad := sig[:i] + string("10"[sig[i]&1]) + sig[i+1:]
				r := build(target, body)
				if inURL {
					r = build(strings.Replace(target, "X-Amz-Signature="+sig, "X-Amz-Signature="+bad, 1), body)
				} else {
					r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), sig, bad, 1))
				}
				_, err := v.Verify(r, bodyHash(body))
				wantKind(t, err, KindInvalidSignature)
			}
		})
	}
}

// botocoreSignature finds the signature in the Authorization header or in
// the presigned URL.
func botocoreSignature(t *testing.T, headers [][2]string, u *url.URL) (sig string, inURL bool) {
	if s := u.Query().Get("X-Amz-Signature"); s != "" {
		return s, true
	}
	for _, h := range headers {
		if h[0] == "Authorization" {
			_, s, ok := strings.Cut(h[1], "Signature=")
			if ok && len(s) == 64 {
				return s, false
			}
		}
	}
	t.Fatal("no signature in vector")
	return "", false
}
