package app_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/kvsd/kvsd/internal/app"
	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/putmedia"
)

// fuzzServer is a whole kvsd (catalog, store, ingest, playback, images) with a stream "cam"
// holding a few fragments, for fuzz targets that send it requests as any client could. It logs
// nowhere: a fuzz target must not log through f.
type fuzzServer struct {
	*app.Server
	ops       []string          // JSON and streaming operations (POST /<op>)
	resources []string          // playback resources (GET /hls/v1/…, /dash/v1/…)
	sessions  map[string]string // a valid SessionToken of cam by protocol: hls, dash
	client    *http.Client
	signer    *v4.Signer
	start     time.Time // producer time of cam's first fragment
}

func startFuzzServer(f *testing.F) *fuzzServer {
	f.Helper()
	env := map[string]string{"KVSD_ACCESS_KEY_ID": kvstest.AccessKeyID, "KVSD_SECRET_ACCESS_KEY": kvstest.SecretAccessKey}
	srv, err := app.Start(app.Config{Listen: "127.0.0.1:0", DataDir: f.TempDir(), Region: kvstest.Region, AccountID: app.DefaultAccountID,
		LogLevel: "info", LogFormat: "text", GetMediaIdleClose: 50 * time.Millisecond, MaxClockSkew: app.DefaultMaxClockSkew},
		app.Env{Getenv: func(k string) string { return env[k] }})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	s := &fuzzServer{Server: srv, client: &http.Client{Timeout: 10 * time.Second}, signer: v4.NewSigner(),
		start: time.Now().Add(-time.Minute).Truncate(time.Second)}
	for _, op := range app.Operations(srv) {
		switch {
		case strings.HasPrefix(op, "hls/") || strings.HasPrefix(op, "dash/"):
			s.resources = append(s.resources, op)
		case op == "deleteStream":
			// Would take cam and its fragments away from the inputs that follow;
			// kvsapi's FuzzDecodeRequests covers its decoding.
		case !notImplemented(s, op):
			s.ops = append(s.ops, op)
		}
	}

	s.mustCall(f, "createStream", `{"StreamName":"cam","DataRetentionInHours":24}`)
	pm := &putmedia.Client{Endpoint: srv.URL, Region: kvstest.Region, HTTP: http.DefaultClient,
		Credentials: aws.Credentials{AccessKeyID: kvstest.AccessKeyID, SecretAccessKey: kvstest.SecretAccessKey}}
	if err := pm.Put(context.Background(), putmedia.Request{StreamName: "cam", Body: bytes.NewReader(kvstest.TestPattern(f, 3, s.start))},
		func(putmedia.Ack) {}); err != nil {
		f.Fatal(err)
	}
	s.sessions = map[string]string{}
	for _, proto := range []string{"HLS", "DASH"} {
		var out map[string]string
		body := fmt.Sprintf(`{"StreamName":"cam","PlaybackMode":"ON_DEMAND","%sFragmentSelector":{"FragmentSelectorType":"PRODUCER_TIMESTAMP","TimestampRange":{"StartTimestamp":%d,"EndTimestamp":%d}}}`,
			proto, s.start.Unix()-1, s.start.Unix()+10)
		if err := json.Unmarshal(s.mustCall(f, "get"+proto+"StreamingSessionURL", body), &out); err != nil {
			f.Fatal(err)
		}
		u, err := url.Parse(out[proto+"StreamingSessionURL"])
		if err != nil {
			f.Fatal(err)
		}
		s.sessions[strings.ToLower(proto)] = u.Query().Get("SessionToken")
	}
	return s
}

// notImplemented: the KVS operations kvsd knows but does not serve answer a fixed 501.
func notImplemented(s *fuzzServer, op string) bool {
	resp, err := s.send(context.Background(), op, "", nil)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusNotImplemented
}

var headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// send signs and sends POST /op with body and extra headers ("Name: value" lines).
func (s *fuzzServer) send(ctx context.Context, op, headers string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/"+op, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(headers, "\n") {
		k, v, ok := strings.Cut(line, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if ok && headerName.MatchString(k) && !strings.ContainsFunc(v, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) { // others no client can send
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: kvstest.AccessKeyID, SecretAccessKey: kvstest.SecretAccessKey}
	if err := s.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "kinesisvideo", kvstest.Region, time.Now()); err != nil {
		return nil, err
	}
	return s.client.Do(req)
}

func (s *fuzzServer) mustCall(f *testing.F, op, body string) []byte {
	resp, err := s.send(context.Background(), op, "", []byte(body))
	if err != nil {
		f.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		f.Fatalf("%s: %d %s", op, resp.StatusCode, b)
	}
	return b
}

// checkAnswer fails on a 5xx, and on an error that is not AWS-shaped.
func checkAnswer(t *testing.T, what string, resp *http.Response, body []byte) {
	t.Helper()
	if resp.StatusCode >= 500 {
		t.Fatalf("%s: status %d: %s", what, resp.StatusCode, body)
	}
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusNotModified {
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(body, &e); err != nil || e.Message == "" || resp.Header.Get("x-amzn-ErrorType") != e.Type {
			t.Fatalf("%s: error not AWS-shaped: %d %s", what, resp.StatusCode, body)
		}
	}
}

// FuzzAPIOperations sends arbitrary JSON bodies (and headers) to every operation a real kvsd
// serves, the data plane and kvsd's own operations included, signed as a client would: decoding
// and validation must answer every input with a 2xx or an AWS-shaped 4xx, never a 5xx, a hang
// or a crash; PutMedia's acks never report an internal error.
func FuzzAPIOperations(f *testing.F) {
	s := startFuzzServer(f)
	from, to := s.start.Unix()-1, s.start.Unix()+10
	tr := fmt.Sprintf(`"TimestampRange":{"StartTimestamp":%d,"EndTimestamp":%d}`, from, to)
	bodies := []string{
		`{"StreamName":"cam"}`, `{}`, ``, `null`, `[]`, `{"StreamName":"cam","StreamARN":"arn:aws:kinesisvideo:us-east-1:111122223333:stream/cam/1"}`,
		`{"StreamName":"cam","StartSelector":{"StartSelectorType":"EARLIEST"}}`,
		`{"StreamName":"cam","StartSelector":{"StartSelectorType":"NOW"}}`,
		fmt.Sprintf(`{"StreamName":"cam","StartSelector":{"StartSelectorType":"PRODUCER_TIMESTAMP","StartTimestamp":%d}}`, from),
		`{"StreamName":"cam","StartSelector":{"StartSelectorType":"CONTINUATION_TOKEN","ContinuationToken":"91343852333181432392682062622220590765191907586"}}`,
		`{"StreamName":"cam","FragmentSelector":{"FragmentSelectorType":"SERVER_TIMESTAMP",` + tr + `}}`,
		`{"StreamName":"cam","MaxResults":1,"NextToken":"eyJhIjoxfQ=="}`,
		`{"StreamName":"cam","Fragments":["91343852333181432392682062622220590765191907586"]}`,
		`{"StreamName":"cam","PlaybackMode":"LIVE_REPLAY","HLSFragmentSelector":{"FragmentSelectorType":"SERVER_TIMESTAMP",` + tr + `},"ContainerFormat":"MPEG_TS","Expires":300}`,
		`{"StreamName":"cam","PlaybackMode":"ON_DEMAND","DASHFragmentSelector":{"FragmentSelectorType":"PRODUCER_TIMESTAMP",` + tr + `},"DisplayFragmentNumber":"ALWAYS"}`,
		`{"StreamName":"cam","ClipFragmentSelector":{"FragmentSelectorType":"PRODUCER_TIMESTAMP",` + tr + `}}`,
		fmt.Sprintf(`{"StreamName":"cam","ImageSelectorType":"PRODUCER_TIMESTAMP","StartTimestamp":%d,"EndTimestamp":%d,"SamplingInterval":1000,"Format":"JPEG","WidthPixels":64,"MaxResults":2}`, from, to),
		`{"StreamName":"cam","ImageGenerationConfiguration":{"Status":"ENABLED","ImageSelectorType":"PRODUCER_TIMESTAMP","DestinationConfig":{"Uri":"s3://images","DestinationRegion":"us-east-1"},"SamplingInterval":200,"Format":"JPEG"}}`,
		`{"StreamName":"cam","NotificationConfiguration":{"Status":"ENABLED","DestinationConfig":{"Uri":"http://169.254.169.254/x"}}}`,
		`{"StreamName":"x","DataRetentionInHours":1,"Tags":{"a":"b"}}`,
	}
	putHeaders := "x-amzn-stream-name: cam\nx-amzn-fragment-timecode-type: ABSOLUTE\nx-amzn-producer-start-timestamp: 1700000000.5"
	for i := range s.ops {
		for j, b := range bodies {
			if (i+j)%4 == 0 {
				f.Add(uint8(i), "", []byte(b))
			}
		}
	}
	for i, op := range s.ops {
		if op == "putMedia" {
			f.Add(uint8(i), putHeaders, kvstest.TestPattern(f, 1, time.Now()))
			f.Add(uint8(i), strings.Replace(putHeaders, "ABSOLUTE", "RELATIVE", 1), []byte("\x1a\x45\xdf\xa3\x80"))
		}
	}
	f.Fuzz(func(t *testing.T, opIndex uint8, headers string, body []byte) {
		op := s.ops[int(opIndex)%len(s.ops)]
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := s.send(ctx, op, headers, body)
		if err != nil {
			t.Fatalf("%s %q %q: %v", op, headers, body, err)
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s: reading the answer: %v", op, err)
		}
		checkAnswer(t, op, resp, got)
		if op == "putMedia" && resp.StatusCode == http.StatusOK {
			sc := bufio.NewScanner(bytes.NewReader(got))
			for sc.Scan() {
				if strings.Contains(sc.Text(), `"ErrorId":5000`) {
					t.Fatalf("putMedia: internal error ack %s for %q", sc.Text(), body)
				}
			}
		}
	})
}

// FuzzPlaybackResources requests every HLS and DASH resource with arbitrary query strings,
// with or without a valid SessionToken: parameter parsing must answer 2xx or an AWS-shaped 4xx.
func FuzzPlaybackResources(f *testing.F) {
	s := startFuzzServer(f)
	for i := range s.resources {
		for _, q := range []string{"", "TrackNumber=1", "TrackNumber=2", "FragmentNumber=91343852333181432392682062622220590765191907586",
			"TrackNumber=1&FragmentNumber=1", "Time=0&TrackNumber=1", "TrackNumber=-1", "TrackNumber=99999999999999999999",
			"SessionToken=x", "FragmentNumber=%zz"} {
			f.Add(uint8(i), true, q)
		}
		f.Add(uint8(i), false, "SessionToken=")
	}
	f.Fuzz(func(t *testing.T, res uint8, withToken bool, query string) {
		path := s.resources[int(res)%len(s.resources)]
		if withToken {
			proto, _, _ := strings.Cut(path, "/")
			query = "SessionToken=" + url.QueryEscape(s.sessions[proto]) + "&" + query
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/"+path+"?"+requestTarget(query), nil)
		if err != nil {
			return // not a URL a client could send
		}
		resp, err := s.client.Do(req)
		if err != nil {
			t.Fatalf("%s?%s: %v", path, query, err)
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s?%s: reading the answer: %v", path, query, err)
		}
		checkAnswer(t, path+"?"+query, resp, got)
	})
}

// requestTarget percent-encodes the bytes a request line cannot carry (spaces, controls,
// non-ASCII, '#'), as a client does, so the query reaches kvsd's parsing whatever it holds.
func requestTarget(q string) string {
	var b strings.Builder
	for i := 0; i < len(q); i++ {
		if c := q[i]; c <= ' ' || c >= 0x7f || c == '#' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}
