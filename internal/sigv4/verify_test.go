package sigv4

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// ---- AWS Signature Version 4 test suite ----

// suiteCase is one request of the AWS SigV4 test suite (service "service",
// region us-east-1, AKIDEXAMPLE, 20150830T123600Z), sent the way a client
// puts it on the wire.
type suiteCase struct {
	name          string
	method        string
	target        string      // request-target as sent
	headers       [][2]string // besides Host and X-Amz-Date
	body          string
	signedHeaders string
	signature     string
	token         string // session token the credential requires
}

var suiteCases = []suiteCase{
	{name: "get-vanilla", method: "GET", target: "/", signedHeaders: "host;x-amz-date",
		signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
	{name: "post-vanilla", method: "POST", target: "/", signedHeaders: "host;x-amz-date",
		signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
	{name: "get-vanilla-query-order-key-case", method: "GET", target: "/?Param2=value2&Param1=value1",
		signedHeaders: "host;x-amz-date", signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
	{name: "get-vanilla-query-order-encoded", method: "GET", target: "/?Param-3=Value3&Param=Value2&%E1%88%B4=Value1",
		signedHeaders: "host;x-amz-date", signature: "371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac"},
	{name: "get-vanilla-query-unreserved", method: "GET",
		target:        "/?-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
		signedHeaders: "host;x-amz-date", signature: "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"},
	{name: "get-vanilla-utf8-query", method: "GET", target: "/?%E1%88%B4=bar", signedHeaders: "host;x-amz-date",
		signature: "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"},
	{name: "get-unreserved", method: "GET", target: "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
		signedHeaders: "host;x-amz-date", signature: "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"},
	// The path as sent (Go SDK style) and normalised (botocore, AWS style)
	// are both accepted: get-relative normalises to "/", same as get-vanilla.
	{name: "get-slashes-unnormalized", method: "GET", target: "//example//", signedHeaders: "host;x-amz-date",
		signature: "87cca117541a147f6df867677d98a7d80dff226d2bfca9e4ffa899665623c7e5"},
	{name: "get-relative-unnormalized", method: "GET", target: "/example/..", signedHeaders: "host;x-amz-date",
		signature: "eca7ead57bb5aa5c8e28007acd4ff04e1ff9a0ff3b237ec1554a184887ff9282"},
	{name: "normalize-path/get-relative", method: "GET", target: "/example/..", signedHeaders: "host;x-amz-date",
		signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
	{name: "get-header-key-duplicate", method: "GET", target: "/",
		headers:       [][2]string{{"My-Header1", "value2"}, {"My-Header1", "value2"}, {"My-Header1", "value1"}},
		signedHeaders: "host;my-header1;x-amz-date", signature: "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"},
	{name: "get-header-value-order", method: "GET", target: "/",
		headers:       [][2]string{{"My-Header1", "value4"}, {"My-Header1", "value1"}, {"My-Header1", "value3"}, {"My-Header1", "value2"}},
		signedHeaders: "host;my-header1;x-amz-date", signature: "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"},
	{name: "get-header-value-trim", method: "GET", target: "/",
		headers:       [][2]string{{"My-Header1", " value1"}, {"My-Header2", ` "a   b   c"`}},
		signedHeaders: "host;my-header1;my-header2;x-amz-date", signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
	{name: "get-vanilla-with-session-token", method: "GET", target: "/",
		headers:       [][2]string{{"X-Amz-Security-Token", "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"}},
		token:         "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267",
		signedHeaders: "host;x-amz-date;x-amz-security-token", signature: "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"},
	{name: "post-vanilla-query", method: "POST", target: "/?Param1=value1", signedHeaders: "host;x-amz-date",
		signature: "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"},
	{name: "post-header-value-case", method: "POST", target: "/", headers: [][2]string{{"My-Header1", "VALUE1"}},
		signedHeaders: "host;my-header1;x-amz-date", signature: "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"},
	{name: "post-x-www-form-urlencoded", method: "POST", target: "/",
		headers: [][2]string{{"Content-Type", "application/x-www-form-urlencoded"},
			{"x-amz-content-sha256", "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"}},
		body:          "Param1=value1", // rawRequest adds Content-Length: 13
		signedHeaders: "content-length;content-type;host;x-amz-content-sha256;x-amz-date",
		signature:     "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b"},
}

func (c suiteCase) request(t *testing.T, signature string) *http.Request {
	headers := [][2]string{{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}}
	headers = append(headers, c.headers...)
	headers = append(headers, [2]string{"Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=" +
		c.signedHeaders + ", Signature=" + signature})
	return parseRequest(t, rawRequest(c.method, c.target, headers, c.body))
}

func suiteVerifier(token string) *Verifier {
	return &Verifier{
		Region:  "us-east-1",
		Service: "service",
		Lookup: func(id string) (Credential, bool) {
			return Credential{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", SessionToken: token},
				id == "AKIDEXAMPLE"
		},
		Now: func() time.Time { return time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC) },
	}
}

func TestAWSTestSuite(t *testing.T) {
	for _, c := range suiteCases {
		t.Run(c.name, func(t *testing.T) {
			v := suiteVerifier(c.token)
			id, err := v.Verify(c.request(t, c.signature), sha256Hex(c.body))
			if err != nil || id != "AKIDEXAMPLE" {
				t.Fatalf("Verify = %q, %v; want AKIDEXAMPLE", id, err)
			}
			// One wrong hex digit must fail.
			bad := c.signature[:63] + string("10"[c.signature[63]&1])
			if bad == c.signature {
				t.Fatal("tampered signature equals the original")
			}
			_, err = v.Verify(c.request(t, bad), sha256Hex(c.body))
			wantKind(t, err, KindInvalidSignature)
		})
	}
}

// The suite also publishes canonical requests; compare ours with three of them.
func TestCanonicalRequestMatchesSuite(t *testing.T) {
	want := map[string]string{
		"get-vanilla-query-order-encoded": "GET\n/\n%E1%88%B4=Value1&Param=Value2&Param-3=Value3\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" + EmptySHA256,
		"get-header-value-trim":           "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\nx-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\n" + EmptySHA256,
		"post-x-www-form-urlencoded": "POST\n/\n\ncontent-length:13\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\n" +
			"x-amz-content-sha256:9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e\nx-amz-date:20150830T123600Z\n\n" +
			"content-length;content-type;host;x-amz-content-sha256;x-amz-date\n9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
	}
	for _, c := range suiteCases {
		w, ok := want[c.name]
		if !ok {
			continue
		}
		r := c.request(t, c.signature)
		signed := strings.Split(c.signedHeaders, ";")
		payload, err := payloadHash(r, sha256Hex(c.body))
		if err != nil {
			t.Fatal(err)
		}
		got := canonicalRequest(r.Method, canonicalURIs(r.URL.EscapedPath())[0], canonicalQuery(r.URL.RawQuery, ""),
			canonicalHeaders(r, signed), c.signedHeaders, payload)
		if got != w {
			t.Errorf("%s canonical request:\n%s\nwant:\n%s", c.name, got, w)
		}
	}
	if sha256Hex("Param1=value1") != "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e" {
		t.Error("post-x-www-form-urlencoded body does not hash to the suite's payload hash")
	}
}

// ---- canonical request pieces ----

func TestCanonicalURIs(t *testing.T) {
	cases := []struct {
		escapedPath string
		want        []string
	}{
		{"/describeStream", []string{"/describeStream"}},
		{"/putMedia", []string{"/putMedia"}},
		{"", []string{"/"}},
		// A space arrives as %20 and a percent as %25; AWS encodes once more.
		{"/stream%20one/a%25b", []string{"/stream%2520one/a%2525b"}},
		{"/a$b/c:d", []string{"/a%24b/c%3Ad"}},
		{"/x/./y/../describeStream", []string{"/x/./y/../describeStream", "/x/describeStream"}},
		{"//example//", []string{"//example//", "/example/"}},
		{"/example/..", []string{"/example/..", "/"}},
	}
	for _, c := range cases {
		got := canonicalURIs(c.escapedPath)
		if strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("canonicalURIs(%q) = %q, want %q", c.escapedPath, got, c.want)
		}
	}
}

func TestCanonicalQuery(t *testing.T) {
	cases := []struct{ raw, skip, want string }{
		{"", "", ""},
		{"b=2&a=1", "", "a=1&b=2"},
		// Sorted by key first: "a" before "a-x" although '=' > '-'.
		{"a-x=1&a=2", "", "a=2&a-x=1"},
		{"a=2&a=1&a=10", "", "a=1&a=10&a=2"},
		{"flag&e=", "", "e=&flag="},
		{"sp=x%20y&plus=a+b&lit=%2B", "", "lit=%2B&plus=a%20b&sp=x%20y"},
		{"k=%7e%2f", "", "k=~%2F"},
		{"bad=%zz", "", "bad=%25zz"},
		{"X-Amz-Signature=abc&X-Amz-Date=1", "X-Amz-Signature", "X-Amz-Date=1"},
		{"X-Amz-Signature=abc&X-Amz-Expires=60", "", "X-Amz-Expires=60&X-Amz-Signature=abc"},
	}
	for _, c := range cases {
		if got := canonicalQuery(c.raw, c.skip); got != c.want {
			t.Errorf("canonicalQuery(%q, %q) = %q, want %q", c.raw, c.skip, got, c.want)
		}
	}
}

func TestTrimAll(t *testing.T) {
	cases := map[string]string{
		"value":            "value",
		"  value \t":       "value",
		`"a   b   c"`:      `"a b c"`,
		"a  b\tc   d":      "a b\tc d",
		"":                 "",
		"application/json": "application/json",
	}
	for in, want := range cases {
		if got := trimAll(in); got != want {
			t.Errorf("trimAll(%q) = %q, want %q", in, got, want)
		}
	}
}

// ---- accepted variants ----

func TestAcceptsHeaderAuthVariants(t *testing.T) {
	body := `{"StreamName":"cam-1"}`
	t.Run("no spaces after commas", func(t *testing.T) {
		s := baseSigner(body)
		authz := strings.ReplaceAll(s.Authorization(), ", ", ",")
		r := parseRequest(t, rawRequest("POST", "/describeStream", append(append([][2]string{}, s.Headers...),
			[2]string{"Authorization", authz}), body))
		mustVerify(t, newTestVerifier(testNow), r, sha256Hex(body))
	})
	t.Run("unsigned header added after signing", func(t *testing.T) {
		r := signedRequest(t, baseSigner(body), "/describeStream", body, [2]string{"Content-Type", "application/json"})
		mustVerify(t, newTestVerifier(testNow), r, sha256Hex(body))
	})
	t.Run("exactly 5 minutes old or ahead", func(t *testing.T) {
		for _, now := range []time.Time{testNow.Add(5 * time.Minute), testNow.Add(-5 * time.Minute)} {
			r := signedRequest(t, baseSigner(body), "/describeStream", body)
			mustVerify(t, newTestVerifier(now), r, sha256Hex(body))
		}
	})
	t.Run("custom MaxSkew", func(t *testing.T) {
		v := newTestVerifier(testNow.Add(20 * time.Minute))
		v.MaxSkew = 30 * time.Minute
		mustVerify(t, v, signedRequest(t, baseSigner(body), "/describeStream", body), sha256Hex(body))
		v.MaxSkew = 10 * time.Minute
		_, err := v.Verify(signedRequest(t, baseSigner(body), "/describeStream", body), sha256Hex(body))
		msg := wantKind(t, err, KindExpired)
		if !strings.HasSuffix(msg, "(20251121T103010Z - 10 min.)") {
			t.Errorf("message %q does not state the 10 min. window", msg)
		}
	})
	t.Run("Date header instead of X-Amz-Date", func(t *testing.T) {
		s := baseSigner(body)
		s.Headers = [][2]string{{"date", "Fri, 21 Nov 2025 10:10:10 GMT"}, {"host", "127.0.0.1:8080"}}
		mustVerify(t, newTestVerifier(testNow), signedRequest(t, s, "/describeStream", body), sha256Hex(body))
	})
	t.Run("signed header absent from the request counts as empty", func(t *testing.T) {
		s := baseSigner(body)
		s.Headers = append(s.Headers, [2]string{"x-not-sent", ""})
		authz := s.Authorization()
		r := parseRequest(t, rawRequest("POST", "/describeStream", append(append([][2]string{}, s.Headers[:3]...),
			[2]string{"Authorization", authz}), body))
		mustVerify(t, newTestVerifier(testNow), r, sha256Hex(body))
	})
	t.Run("X-Amz-Expires in the query of a header-signed request is signed", func(t *testing.T) {
		s := baseSigner(body)
		s.CanonicalQuery = "X-Amz-Expires=300"
		mustVerify(t, newTestVerifier(testNow), signedRequest(t, s, "/describeStream?X-Amz-Expires=300", body), sha256Hex(body))
		// Dropping it from the URL breaks the signature.
		_, err := newTestVerifier(testNow).Verify(signedRequest(t, s, "/describeStream", body), sha256Hex(body))
		wantKind(t, err, KindInvalidSignature)
	})
	t.Run("content-length from r.ContentLength when not in r.Header", func(t *testing.T) {
		// httptest.NewRequest, as handler tests in other packages use it,
		// sets r.ContentLength and r.Host but no header for either.
		s := baseSigner(body)
		s.Headers = [][2]string{{"content-length", "22"}, {"host", "example.com"}, {"x-amz-date", testAmzDate}}
		r := httptest.NewRequest("POST", "/describeStream", strings.NewReader(body))
		r.Header.Set("X-Amz-Date", testAmzDate)
		r.Header.Set("Authorization", s.Authorization())
		if r.Header.Get("Content-Length") != "" || r.ContentLength != 22 {
			t.Fatalf("precondition: header %q, ContentLength %d", r.Header.Get("Content-Length"), r.ContentLength)
		}
		mustVerify(t, newTestVerifier(testNow), r, sha256Hex(body))
	})
	t.Run("payload literals", func(t *testing.T) {
		for _, literal := range []string{"UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"} {
			s := baseSigner(body)
			s.Headers = append(s.Headers, [2]string{"x-amz-content-sha256", literal})
			s.PayloadHash = literal
			for _, bodyHash := range []string{sha256Hex(body), sha256Hex("other body"), ""} {
				mustVerify(t, newTestVerifier(testNow), signedRequest(t, s, "/describeStream", body), bodyHash)
			}
			// Signed with the body hash instead of the literal: rejected.
			s.PayloadHash = sha256Hex(body)
			_, err := newTestVerifier(testNow).Verify(signedRequest(t, s, "/describeStream", body), sha256Hex(body))
			wantKind(t, err, KindInvalidSignature)
		}
	})
	t.Run("streamed body without x-amz-content-sha256 signs the empty hash", func(t *testing.T) {
		s := baseSigner("")
		r := signedRequest(t, s, "/describeStream", "media bytes")
		mustVerify(t, newTestVerifier(testNow), r, "")
		// A server that did hash the body would (rightly) refuse it.
		_, err := newTestVerifier(testNow).Verify(r, sha256Hex("media bytes"))
		wantKind(t, err, KindInvalidSignature)
	})
}

func mustVerify(t *testing.T, v *Verifier, r *http.Request, bodyHash string) {
	t.Helper()
	id, err := v.Verify(r, bodyHash)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if id != testAKID {
		t.Fatalf("Verify returned access key %q, want %q", id, testAKID)
	}
}

// ---- rejections ----

const awsMismatch = "The request signature we calculated does not match the signature you provided. " +
	"Check your AWS Secret Access Key and signing method. Consult the service documentation for details."

func TestRejections(t *testing.T) {
	const body = `{"StreamName":"cam-1"}`
	const target = "/describeStream"
	type input struct {
		r        *http.Request
		bodyHash string
		v        *Verifier
	}
	// signed builds the base request after letting edit change the signer.
	signed := func(t *testing.T, edit func(*refSigner)) input {
		s := baseSigner(body)
		if edit != nil {
			edit(&s)
		}
		return input{signedRequest(t, s, target, body), sha256Hex(body), newTestVerifier(testNow)}
	}
	withAuthz := func(t *testing.T, authz string) input {
		s := baseSigner(body)
		r := parseRequest(t, rawRequest("POST", target, append(append([][2]string{}, s.Headers...),
			[2]string{"Authorization", authz}), body))
		return input{r, sha256Hex(body), newTestVerifier(testNow)}
	}
	goodCred := "Credential=" + testAKID + "/20251121/us-east-1/kinesisvideo/aws4_request"

	cases := []struct {
		name  string
		build func(t *testing.T) input
		kind  Kind
		msg   string // exact message, or a prefix when it ends in "..."
	}{
		{"no auth at all", func(t *testing.T) input {
			r := parseRequest(t, rawRequest("POST", target, [][2]string{{"Host", "127.0.0.1:8080"}, {"X-Amz-Date", testAmzDate}}, body))
			return input{r, sha256Hex(body), newTestVerifier(testNow)}
		}, KindMissing, "Missing Authentication Token"},
		{"unknown access key", func(t *testing.T) input {
			return signed(t, func(s *refSigner) { s.AccessKeyID = "AKIDNOBODY" })
		}, KindUnrecognized, "The security token included in the request is invalid."},
		{"nil Lookup", func(t *testing.T) input {
			in := signed(t, nil)
			in.v.Lookup = nil
			return in
		}, KindUnrecognized, "The security token included in the request is invalid."},
		{"wrong secret", func(t *testing.T) input {
			return signed(t, func(s *refSigner) { s.Secret = "not-the-secret" })
		}, KindInvalidSignature, awsMismatch},
		{"expired: signed 6 minutes ago", func(t *testing.T) input {
			in := signed(t, nil)
			in.v = newTestVerifier(testNow.Add(6 * time.Minute))
			return in
		}, KindExpired, "Signature expired: 20251121T101010Z is now earlier than 20251121T101110Z (20251121T101610Z - 5 min.)"},
		{"future: signed 6 minutes ahead", func(t *testing.T) input {
			in := signed(t, nil)
			in.v = newTestVerifier(testNow.Add(-6 * time.Minute))
			return in
		}, KindExpired, "Signature not yet current: 20251121T101010Z is still later than 20251121T100910Z (20251121T100410Z + 5 min.)"},
		{"wrong region", func(t *testing.T) input {
			return signed(t, func(s *refSigner) { s.Region = "eu-west-1" })
		}, KindInvalidSignature, "Credential should be scoped to a valid region, not 'eu-west-1'. This kvsd server's region is 'us-east-1' (set it with --region)."},
		{"wrong service", func(t *testing.T) input {
			return signed(t, func(s *refSigner) { s.Service = "kinesis" })
		}, KindInvalidSignature, "Credential should be scoped to correct service: 'kinesisvideo'."},
		{"scope date is not X-Amz-Date's day", func(t *testing.T) input {
			return signed(t, func(s *refSigner) { s.ScopeDate = "20251120" })
		}, KindInvalidSignature, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20251120' != '20251121', from '20251121T101010Z'."},
		{"tampered body, no x-amz-content-sha256", func(t *testing.T) input {
			in := signed(t, nil)
			in.bodyHash = sha256Hex(`{"StreamName":"cam-2"}`)
			return in
		}, KindInvalidSignature, awsMismatch},
		{"tampered body, hex x-amz-content-sha256", func(t *testing.T) input {
			in := signed(t, func(s *refSigner) {
				s.Headers = append(s.Headers, [2]string{"x-amz-content-sha256", sha256Hex(body)})
			})
			in.bodyHash = sha256Hex(`{"StreamName":"cam-2"}`)
			return in
		}, KindInvalidSignature, "The provided 'x-amz-content-sha256' header does not match what was computed."},
		{"tampered signed header", func(t *testing.T) input {
			s := baseSigner(body)
			authz := s.Authorization()
			r := parseRequest(t, rawRequest("POST", target, [][2]string{{"host", "127.0.0.1:8080"},
				{"user-agent", "AWS-SDK-KVS/3.6.1"}, {"x-amz-date", testAmzDate}, {"Authorization", authz}}, body))
			return input{r, sha256Hex(body), newTestVerifier(testNow)}
		}, KindInvalidSignature, awsMismatch},
		{"host with a port the client did not sign", func(t *testing.T) input {
			s := baseSigner(body)
			s.Headers[0][1] = "127.0.0.1"
			authz := s.Authorization()
			r := parseRequest(t, rawRequest("POST", target, [][2]string{{"host", "127.0.0.1:8080"},
				{"user-agent", "AWS-SDK-KVS/3.6.0"}, {"x-amz-date", testAmzDate}, {"Authorization", authz}}, body))
			return input{r, sha256Hex(body), newTestVerifier(testNow)}
		}, KindInvalidSignature, awsMismatch},
		{"upper-case signature hex", func(t *testing.T) input {
			s := baseSigner(body)
			authz := strings.Replace(s.Authorization(), s.Signature(), strings.ToUpper(s.Signature()), 1)
			return withAuthz(t, authz)
		}, KindInvalidSignature, awsMismatch},
		{"malformed: other algorithm", func(t *testing.T) input {
			return withAuthz(t, "Basic dXNlcjpwYXNz")
		}, KindIncomplete, "Unsupported AWS 'algorithm': 'Basic'..."},
		{"malformed: no Credential", func(t *testing.T) input {
			return withAuthz(t, "AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature=00")
		}, KindIncomplete, "Authorization header requires 'Credential' parameter. Authorization=AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature=00"},
		{"malformed: only the algorithm", func(t *testing.T) input {
			return withAuthz(t, "AWS4-HMAC-SHA256")
		}, KindIncomplete, "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization=AWS4-HMAC-SHA256"},
		{"malformed: pair without '='", func(t *testing.T) input {
			return withAuthz(t, "AWS4-HMAC-SHA256 "+goodCred+", SignedHeaders, Signature=00")
		}, KindIncomplete, "Invalid key=value pair (missing equal-sign) in Authorization header: 'SignedHeaders'."},
		{"malformed: credential with 4 elements", func(t *testing.T) input {
			return withAuthz(t, "AWS4-HMAC-SHA256 Credential="+testAKID+"/20251121/us-east-1/aws4_request, SignedHeaders=host, Signature=00")
		}, KindIncomplete, "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '" + testAKID + "/20251121/us-east-1/aws4_request'"},
		{"malformed: credential terminator", func(t *testing.T) input {
			return withAuthz(t, "AWS4-HMAC-SHA256 Credential="+testAKID+"/20251121/us-east-1/kinesisvideo/aws5_request, SignedHeaders=host, Signature=00")
		}, KindIncomplete, "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws5_request'."},
		{"malformed: neither X-Amz-Date nor Date", func(t *testing.T) input {
			s := baseSigner(body)
			r := parseRequest(t, rawRequest("POST", target, [][2]string{{"host", "127.0.0.1:8080"},
				{"Authorization", s.Authorization()}}, body))
			return input{r, sha256Hex(body), newTestVerifier(testNow)}
		}, KindIncomplete, "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=AWS4-HMAC-SHA256 ..."},
		{"malformed: X-Amz-Date not basic ISO 8601", func(t *testing.T) input {
			return signed(t, func(s *refSigner) { s.Headers[2][1] = "2025-11-21T10:10:10Z"; s.ScopeDate = "20251121" })
		}, KindIncomplete, "Date must be in ISO-8601 'basic format'. Got '2025-11-21T10:10:10Z'. See http://en.wikipedia.org/wiki/ISO_8601"},
		{"malformed: unparsable Date header", func(t *testing.T) input {
			s := baseSigner(body)
			s.Headers = [][2]string{{"date", "yesterday"}, {"host", "127.0.0.1:8080"}}
			s.ScopeDate = "20251121"
			return input{signedRequest(t, s, target, body), sha256Hex(body), newTestVerifier(testNow)}
		}, KindIncomplete, "Date must be in RFC 1123 format. Got 'yesterday'."},
		{"both Authorization and X-Amz-Signature", func(t *testing.T) input {
			s := baseSigner(body)
			return input{signedRequest(t, s, target+"?X-Amz-Signature=00", body), sha256Hex(body), newTestVerifier(testNow)}
		}, KindIncomplete, "Only one auth mechanism allowed..."},
		{"session token: wrong token sent", func(t *testing.T) input {
			in := signed(t, func(s *refSigner) {
				s.Headers = append(s.Headers, [2]string{"x-amz-security-token", "token-B"})
			})
			in.v = newTestVerifier(testNow, Credential{AccessKeyID: testAKID, SecretAccessKey: testSecret, SessionToken: "token-A"})
			return in
		}, KindUnrecognized, "The security token included in the request is invalid."},
		{"session token: none sent", func(t *testing.T) input {
			in := signed(t, nil)
			in.v = newTestVerifier(testNow, Credential{AccessKeyID: testAKID, SecretAccessKey: testSecret, SessionToken: "token-A"})
			return in
		}, KindUnrecognized, "The security token included in the request is invalid."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := c.build(t)
			id, err := in.v.Verify(in.r, in.bodyHash)
			if id != "" {
				t.Errorf("a rejected request returned access key %q", id)
			}
			msg := wantKind(t, err, c.kind)
			if prefix, ok := strings.CutSuffix(c.msg, "..."); ok {
				if !strings.HasPrefix(msg, prefix) {
					t.Errorf("message %q\nwant prefix %q", msg, prefix)
				}
			} else if msg != c.msg {
				t.Errorf("message %q\nwant        %q", msg, c.msg)
			}
		})
	}
}

func TestSessionTokens(t *testing.T) {
	const body = `{"StreamName":"cam-1"}`
	withToken := newTestVerifier(testNow, Credential{AccessKeyID: testAKID, SecretAccessKey: testSecret, SessionToken: "token-A"})
	t.Run("signed header token", func(t *testing.T) {
		s := baseSigner(body)
		s.Headers = append(s.Headers, [2]string{"x-amz-security-token", "token-A"})
		mustVerify(t, withToken, signedRequest(t, s, "/describeStream", body), sha256Hex(body))
	})
	t.Run("unsigned header token (kvssink)", func(t *testing.T) {
		r := signedRequest(t, baseSigner(body), "/describeStream", body, [2]string{"X-Amz-Security-Token", "token-A"})
		mustVerify(t, withToken, r, sha256Hex(body))
	})
	t.Run("unsigned query token", func(t *testing.T) {
		s := baseSigner(body)
		s.CanonicalQuery = "X-Amz-Security-Token=token-A"
		mustVerify(t, withToken, signedRequest(t, s, "/describeStream?X-Amz-Security-Token=token-A", body), sha256Hex(body))
	})
	t.Run("credential without token accepts any", func(t *testing.T) {
		r := signedRequest(t, baseSigner(body), "/describeStream", body, [2]string{"X-Amz-Security-Token", "whatever"})
		mustVerify(t, newTestVerifier(testNow), r, sha256Hex(body))
	})
}

// ---- presigned URLs ----

// presigned builds a presigned GET /getMedia signed by the reference signer.
// expires "" leaves X-Amz-Expires out.
func presigned(t *testing.T, expires, payloadHash string) *http.Request {
	q := "StreamName=cam-1&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" + testAKID + "%2F20251121%2Fus-east-1%2Fkinesisvideo%2Faws4_request" +
		"&X-Amz-Date=" + testAmzDate
	if expires != "" {
		q += "&X-Amz-Expires=" + expires
	}
	q += "&X-Amz-SignedHeaders=host"
	s := refSigner{Method: "GET", CanonicalURI: "/getMedia", CanonicalQuery: q,
		Headers: [][2]string{{"host", "127.0.0.1:8080"}}, PayloadHash: payloadHash,
		AccessKeyID: testAKID, Secret: testSecret, Region: testRegion, Service: testService, AmzDate: testAmzDate}
	return parseRequest(t, rawRequest("GET", "/getMedia?"+q+"&X-Amz-Signature="+s.Signature(),
		[][2]string{{"Host", "127.0.0.1:8080"}}, ""))
}

func TestPresigned(t *testing.T) {
	for _, payload := range []string{EmptySHA256, "UNSIGNED-PAYLOAD"} {
		t.Run("accepted with payload "+payload[:8], func(t *testing.T) {
			mustVerify(t, newTestVerifier(testNow), presigned(t, "60", payload), EmptySHA256)
			// Valid for its whole lifetime, even beyond the 5-minute skew.
			mustVerify(t, newTestVerifier(testNow.Add(60*time.Second)), presigned(t, "600", payload), EmptySHA256)
			mustVerify(t, newTestVerifier(testNow.Add(10*time.Minute)), presigned(t, "600", payload), EmptySHA256)
		})
	}
	t.Run("without X-Amz-Expires the skew window applies", func(t *testing.T) {
		mustVerify(t, newTestVerifier(testNow.Add(4*time.Minute)), presigned(t, "", EmptySHA256), EmptySHA256)
		_, err := newTestVerifier(testNow.Add(6*time.Minute)).Verify(presigned(t, "", EmptySHA256), EmptySHA256)
		wantKind(t, err, KindExpired)
	})
	t.Run("expired", func(t *testing.T) {
		_, err := newTestVerifier(testNow.Add(61*time.Second)).Verify(presigned(t, "60", EmptySHA256), EmptySHA256)
		if msg := wantKind(t, err, KindExpired); msg != "Request has expired" {
			t.Errorf("message %q", msg)
		}
	})
	t.Run("not yet current", func(t *testing.T) {
		_, err := newTestVerifier(testNow.Add(-6*time.Minute)).Verify(presigned(t, "600", EmptySHA256), EmptySHA256)
		if msg := wantKind(t, err, KindExpired); !strings.HasPrefix(msg, "Signature not yet current: ") {
			t.Errorf("message %q", msg)
		}
	})
	t.Run("tampered parameter", func(t *testing.T) {
		r := presigned(t, "60", EmptySHA256)
		r.URL.RawQuery = strings.Replace(r.URL.RawQuery, "StreamName=cam-1", "StreamName=cam-2", 1)
		_, err := newTestVerifier(testNow).Verify(r, EmptySHA256)
		wantKind(t, err, KindInvalidSignature)
	})
	t.Run("signed over a different payload", func(t *testing.T) {
		_, err := newTestVerifier(testNow).Verify(presigned(t, "60", sha256Hex("x")), EmptySHA256)
		wantKind(t, err, KindInvalidSignature)
	})
	t.Run("malformed", func(t *testing.T) {
		for raw, want := range map[string]string{
			"/getMedia?X-Amz-Signature=00": "AWS query-string parameters must include 'X-Amz-Algorithm'. Re-examine the query-string parameters.",
			"/getMedia?X-Amz-Signature=00&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20251121T101010Z&X-Amz-SignedHeaders=host":                                                                                                     "AWS query-string parameters must include 'X-Amz-Credential'. Re-examine the query-string parameters.",
			"/getMedia?X-Amz-Signature=00&X-Amz-Algorithm=AWS4-HMAC-SHA1&X-Amz-Credential=a/b/c/d/aws4_request&X-Amz-Date=20251121T101010Z&X-Amz-SignedHeaders=host":                                                                 "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\", not 'AWS4-HMAC-SHA1'.",
			"/getMedia?X-Amz-Signature=00&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" + testAKID + "/20251121/us-east-1/kinesisvideo/aws4_request&X-Amz-Date=20251121T101010Z&X-Amz-SignedHeaders=host&X-Amz-Expires=604801": "X-Amz-Expires must be less than a week (in seconds) that is 604800",
			"/getMedia?X-Amz-Signature=00&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" + testAKID + "/20251121/us-east-1/kinesisvideo/aws4_request&X-Amz-Date=20251121T101010Z&X-Amz-SignedHeaders=host&X-Amz-Expires=-1":     "X-Amz-Expires must be non-negative",
			"/getMedia?X-Amz-Signature=00&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" + testAKID + "/20251121/us-east-1/kinesisvideo/aws4_request&X-Amz-Date=20251121T101010Z&X-Amz-SignedHeaders=host&X-Amz-Expires=soon":   "X-Amz-Expires should be a number. Got 'soon'.",
		} {
			r := parseRequest(t, rawRequest("GET", raw, [][2]string{{"Host", "127.0.0.1:8080"}}, ""))
			_, err := newTestVerifier(testNow).Verify(r, EmptySHA256)
			if msg := wantKind(t, err, KindIncomplete); msg != want {
				t.Errorf("%s:\n message %q\n want    %q", raw, msg, want)
			}
		}
	})
}

func TestErrorType(t *testing.T) {
	e := &Error{Kind: KindExpired, Message: "Request has expired"}
	if got := e.Error(); got != "sigv4: InvalidSignatureException: Request has expired" {
		t.Errorf("Error() = %q", got)
	}
	want := map[Kind]string{
		KindMissing:          "MissingAuthenticationTokenException",
		KindIncomplete:       "IncompleteSignatureException",
		KindUnrecognized:     "UnrecognizedClientException",
		KindInvalidSignature: "InvalidSignatureException",
		KindExpired:          "InvalidSignatureException",
		Kind(0):              "Kind(0)",
	}
	for k, w := range want {
		if k.String() != w {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), k.String(), w)
		}
	}
}
