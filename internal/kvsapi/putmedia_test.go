package kvsapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/catalog/bolt"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/fragstore/disk"
	"github.com/kvsd/kvsd/internal/ingest"
	"github.com/kvsd/kvsd/internal/kvsapi"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/mkv/mkvtest"
	"github.com/kvsd/kvsd/internal/sigv4"
	"github.com/kvsd/kvsd/internal/stream"
)

const (
	pmKey    = "AKIAKVSDPUTMEDIA0001"
	pmSecret = "putMediaTestSecret/0123456789abcdefghij"
	pmRegion = "us-east-1"
)

// pmServer is a kvsapi.Handler with PutMedia over a real catalog and fragment store.
type pmServer struct {
	*httptest.Server
	svc   *stream.Service
	store *fragstore.Store
}

func startPutMedia(t *testing.T) *pmServer {
	t.Helper()
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "catalog.db"))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	media, err := disk.Open(disk.Config{Dir: filepath.Join(dir, "media")})
	require.NoError(t, err)
	store, err := fragstore.Open(fragstore.Config{Media: media, Index: db})
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	svc := &stream.Service{Store: db, Region: pmRegion, AccountID: "111122223333"}
	h := kvsapi.New(kvsapi.Config{
		Streams: svc,
		Auth: &sigv4.Verifier{Region: pmRegion, Service: "kinesisvideo", Lookup: func(id string) (sigv4.Credential, bool) {
			return sigv4.Credential{AccessKeyID: pmKey, SecretAccessKey: pmSecret}, id == pmKey
		}},
	})
	h.Handle("putMedia", h.PutMedia(ingest.NewManager(ingest.Config{Streams: svc, Store: store})))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &pmServer{Server: srv, svc: svc, store: store}
}

func (s *pmServer) createStream(t *testing.T, name string) *stream.Stream {
	t.Helper()
	retention := 24
	st, err := s.svc.Create(context.Background(), stream.CreateInput{Name: name, RetentionHours: &retention})
	require.NoError(t, err)
	return st
}

// putMediaRequest is a PutMedia as kvssink sends it: chunked body, SigV4 over the empty
// payload hash, no x-amz-content-sha256.
func (s *pmServer) putMediaRequest(t *testing.T, name string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+"/putMedia", body)
	require.NoError(t, err)
	req.TransferEncoding = []string{"chunked"}
	req.Header.Set("x-amzn-stream-name", name)
	req.Header.Set("x-amzn-fragment-timecode-type", "RELATIVE")
	req.Header.Set("x-amzn-producer-start-timestamp", fmt.Sprintf("%.3f", float64(time.Now().UnixMilli())/1000))
	req.Header.Set("x-amzn-fragment-acknowledgment-required", "1")
	require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: pmKey, SecretAccessKey: pmSecret},
		req, sigv4.EmptySHA256, "kinesisvideo", pmRegion, time.Now()))
	return req
}

type ack struct {
	EventType        string
	FragmentTimecode *uint64
	FragmentNumber   string
	ErrorId          int
	ErrorCode        string
}

// ackLine is one ack and whether the body was still open when it arrived.
type ackLine struct {
	ack
	bodyOpen bool
}

// readAcks decodes JSON lines until r ends. Every line must be exactly one ack.
func readAcks(t *testing.T, r io.Reader, bodyOpen *atomic.Bool, out chan<- ackLine) error {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var a ack
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&a); err != nil {
			return fmt.Errorf("ack line %q: %w", sc.Text(), err)
		}
		out <- ackLine{a, bodyOpen.Load()}
	}
	close(out)
	return sc.Err()
}

// producer is a media source: a command writing Matroska to stdout.
type producer struct {
	cmd    *exec.Cmd
	source bytes.Buffer // everything it wrote, to compare with what was stored
}

// stream runs the producer into w; it keeps w open until the first ack arrived (firstAck
// closed) so that the test sees acks while the body is being sent, however fast the encoder.
func (p *producer) stream(t *testing.T, w io.WriteCloser, firstAck <-chan struct{}, bodyOpen *atomic.Bool) <-chan error {
	done := make(chan error, 1)
	var stderr bytes.Buffer
	p.cmd.Stdout, p.cmd.Stderr = io.MultiWriter(w, &p.source), &stderr
	bodyOpen.Store(true)
	require.NoError(t, p.cmd.Start())
	go func() {
		err := p.cmd.Wait()
		if err != nil {
			err = fmt.Errorf("%s: %w\n%s", p.cmd.Path, err, stderr.String())
		}
		select {
		case <-firstAck:
		case <-time.After(10 * time.Second):
		}
		bodyOpen.Store(false)
		done <- errors.Join(err, w.Close())
	}()
	return done
}

func newProducer(t *testing.T, name string, args ...string) *producer {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed", name)
	}
	return &producer{cmd: exec.Command(name, args...)}
}

var (
	ffmpegArgs = strings.Fields("-v error -f lavfi -i testsrc=size=640x360:rate=25 -t 6 -c:v libx264 -g 50 -f matroska -live 1 -")
	gstArgs    = strings.Fields("-q videotestsrc num-buffers=150 ! x264enc key-int-max=50 ! h264parse ! matroskamux streamable=true min-cluster-duration=0 ! fdsink fd=1")
)

func TestPutMediaFFmpeg(t *testing.T) {
	p := newProducer(t, "ffmpeg", ffmpegArgs...)
	runProducer(t, p, sendWithGoClient)
}

func TestPutMediaGStreamer(t *testing.T) {
	p := newProducer(t, "gst-launch-1.0", gstArgs...)
	runProducer(t, p, sendWithGoClient)
}

// TestPutMediaCurl sends ffmpeg's output with curl's own SigV4 signing, chunked, with the
// Expect: 100-continue curl adds to uploads.
func TestPutMediaCurl(t *testing.T) {
	out, err := exec.Command("curl", "--version").Output()
	if err != nil {
		t.Skip("curl not installed")
	}
	m := regexp.MustCompile(`^curl (\d+)\.(\d+)`).FindSubmatch(out)
	require.NotNil(t, m, "curl --version: %s", out)
	major, _ := strconv.Atoi(string(m[1]))
	minor, _ := strconv.Atoi(string(m[2]))
	if major < 7 || major == 7 && minor < 75 {
		t.Skipf("curl %s.%s has no --aws-sigv4", m[1], m[2])
	}
	p := newProducer(t, "ffmpeg", ffmpegArgs...)
	runProducer(t, p, sendWithCurl)
}

// sender starts a PutMedia whose body is read from the returned writer and whose response
// body (the acks) is returned.
type sender func(t *testing.T, s *pmServer, name string) (body io.WriteCloser, acks io.Reader, wait func() error)

func sendWithGoClient(t *testing.T, s *pmServer, name string) (io.WriteCloser, io.Reader, func() error) {
	pr, pw := io.Pipe()
	resp, err := http.DefaultClient.Do(s.putMediaRequest(t, name, pr))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	return pw, resp.Body, resp.Body.Close
}

func sendWithCurl(t *testing.T, s *pmServer, name string) (io.WriteCloser, io.Reader, func() error) {
	cmd := exec.Command("curl", "-sS", "-v", "-N", "-T", "-", "-X", "POST",
		"-H", "Transfer-Encoding: chunked",
		"-H", "x-amzn-stream-name: "+name,
		"-H", "x-amzn-fragment-timecode-type: RELATIVE",
		"-H", "x-amzn-fragment-acknowledgment-required: 1",
		"--aws-sigv4", "aws:amz:"+pmRegion+":kinesisvideo", "--user", pmKey+":"+pmSecret,
		s.URL+"/putMedia")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	return stdin, stdout, func() error {
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("curl: %w: %s", err, stderr.String())
		}
		// curl sent Expect: 100-continue and got its answer (not a 1 s wait).
		if !strings.Contains(stderr.String(), "< HTTP/1.1 100 Continue") {
			return fmt.Errorf("curl got no 100 Continue:\n%s", stderr.String())
		}
		return nil
	}
}

func runProducer(t *testing.T, p *producer, send sender) {
	s := startPutMedia(t)
	st := s.createStream(t, "cam-1")
	body, respBody, wait := send(t, s, st.Name)

	var bodyOpen atomic.Bool
	bodyOpen.Store(true)
	lines := make(chan ackLine, 1000)
	readErr := make(chan error, 1)
	go func() { readErr <- readAcks(t, respBody, &bodyOpen, lines) }()
	firstAck := make(chan struct{})
	sent := p.stream(t, body, firstAck, &bodyOpen)

	var acks []ackLine
	for l := range lines {
		if len(acks) == 0 {
			close(firstAck)
		}
		acks = append(acks, l)
	}
	require.NoError(t, <-readErr)
	require.NoError(t, <-sent)
	require.NoError(t, wait())

	require.NotEmpty(t, acks)
	require.Equal(t, "BUFFERING", acks[0].EventType)
	require.True(t, acks[0].bodyOpen, "the first BUFFERING arrived only after the body ended")
	numbers := requireAckSequences(t, acks)

	// What was stored is the source's clusters and their trailing tags, byte for byte.
	want := clustersOf(t, p.source.Bytes())
	require.Len(t, numbers, len(want))
	k := fragstore.KeyOf(st)
	frags, err := s.store.After(context.Background(), k, 0, 1000)
	require.NoError(t, err)
	require.Len(t, frags, len(want))
	for i, f := range frags {
		require.Equal(t, numbers[i], f.Number)
		got, err := s.store.Media(context.Background(), k, f)
		require.NoError(t, err)
		require.True(t, bytes.Equal(want[i], got), "fragment %d: stored media differs from the source cluster (%d vs %d bytes)", i, len(got), len(want[i]))
	}
}

// requireAckSequences checks BUFFERING → RECEIVED → PERSISTED with one number per fragment
// and increasing numbers, and returns the numbers in order.
func requireAckSequences(t *testing.T, acks []ackLine) []string {
	t.Helper()
	events := map[string][]string{}
	var numbers []string
	for _, a := range acks {
		require.NotEqual(t, "ERROR", a.EventType, "%+v", a.ack)
		if a.EventType == "IDLE" {
			continue
		}
		require.NotNil(t, a.FragmentTimecode)
		require.Len(t, a.FragmentNumber, fragment.NumberDigits)
		if a.EventType == "BUFFERING" {
			if len(numbers) > 0 {
				require.Greater(t, a.FragmentNumber, numbers[len(numbers)-1])
			}
			numbers = append(numbers, a.FragmentNumber)
		}
		events[a.FragmentNumber] = append(events[a.FragmentNumber], a.EventType)
	}
	for _, n := range numbers {
		require.Equal(t, []string{"BUFFERING", "RECEIVED", "PERSISTED"}, events[n], "fragment %s", n)
	}
	return numbers
}

// clustersOf returns each cluster of src followed by the Tags after it, as KVS stores them.
func clustersOf(t *testing.T, src []byte) [][]byte {
	t.Helper()
	r := mkv.NewReader(bytes.NewReader(src), mkv.Limits{})
	var out [][]byte
	for {
		ev, err := r.Next()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		switch ev.Kind {
		case mkv.KindClusterEnd:
			out = append(out, bytes.Clone(ev.Raw))
		case mkv.KindTags:
			out[len(out)-1] = append(out[len(out)-1], ev.Raw...)
		}
	}
}

func TestPutMediaRejections(t *testing.T) {
	s := startPutMedia(t)
	st := s.createStream(t, "cam-1")

	do := func(req *http.Request) (*http.Response, string) {
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	resp, body := do(s.putMediaRequest(t, "missing", strings.NewReader("")))
	require.Equal(t, http.StatusNotFound, resp.StatusCode, body)
	require.Equal(t, "ResourceNotFoundException", resp.Header.Get("x-amzn-ErrorType"))

	req := s.putMediaRequest(t, st.Name, strings.NewReader(""))
	req.Header.Del("x-amzn-fragment-timecode-type")
	req.Header.Del("Authorization")
	require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: pmKey, SecretAccessKey: pmSecret},
		req, sigv4.EmptySHA256, "kinesisvideo", pmRegion, time.Now()))
	resp, body = do(req)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, body)
	require.Equal(t, "InvalidArgumentException", resp.Header.Get("x-amzn-ErrorType"))

	// A second connection to a busy stream is accepted: the last one wins, as on AWS.
	pr, pw := io.Pipe()
	defer pw.Close()
	first, err := http.DefaultClient.Do(s.putMediaRequest(t, st.Name, pr))
	require.NoError(t, err)
	defer first.Body.Close()
	require.Equal(t, http.StatusOK, first.StatusCode)
	pr2, pw2 := io.Pipe()
	defer pw2.Close()
	second, err := http.DefaultClient.Do(s.putMediaRequest(t, st.Name, pr2))
	require.NoError(t, err)
	second.Body.Close()
	require.Equal(t, http.StatusOK, second.StatusCode)
}

// A raw client that waits for 100 Continue, as curl and kvssink do: it must come at once, and
// the acks follow on the same connection while the body is still open.
func TestPutMediaExpectContinue(t *testing.T) {
	s := startPutMedia(t)
	st := s.createStream(t, "cam-1")
	start := time.Now()
	conn := s.rawPutMedia(t, st.Name, "Expect: 100-continue\r\n")

	br := bufio.NewReader(conn)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	cont, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusContinue, cont.StatusCode)
	require.Less(t, time.Since(start), 500*time.Millisecond, "100 Continue was late")

	// One fragment, then END_OF_FRAGMENT: its acks come while the body stays open.
	media := cat(testHeader(), testCluster(0), mkv.AppendTags8(nil, []mkv.SimpleTag{{Name: fragment.TagEndOfFragment}}))
	writeChunk := func(b []byte) {
		_, err := fmt.Fprintf(conn, "%x\r\n%s\r\n", len(b), b)
		require.NoError(t, err)
	}
	writeChunk(media)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	acks := bufio.NewScanner(resp.Body)
	var got []string
	for len(got) < 3 && acks.Scan() {
		var a ack
		require.NoError(t, json.Unmarshal(acks.Bytes(), &a))
		got = append(got, a.EventType)
	}
	require.Equal(t, []string{"BUFFERING", "RECEIVED", "PERSISTED"}, got)
	_, err = io.WriteString(conn, "0\r\n\r\n")
	require.NoError(t, err)
	rest, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Empty(t, strings.TrimSpace(string(rest)))
}

// rawPutMedia opens a connection and sends a signed, chunked PutMedia request head (plus
// extra header lines) as curl and kvssink do; the body is the caller's to write.
func (s *pmServer) rawPutMedia(t *testing.T, name, extra string) net.Conn {
	t.Helper()
	req := s.putMediaRequest(t, name, nil)
	conn, err := net.Dial("tcp", s.Listener.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	var head strings.Builder
	fmt.Fprintf(&head, "POST /putMedia HTTP/1.1\r\nHost: %s\r\n", req.Host)
	for k, vs := range req.Header {
		for _, v := range vs {
			fmt.Fprintf(&head, "%s: %s\r\n", k, v)
		}
	}
	head.WriteString("Transfer-Encoding: chunked\r\n" + extra + "\r\n")
	_, err = io.WriteString(conn, head.String())
	require.NoError(t, err)
	return conn
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// testHeader and testCluster are a minimal one-track document: 1-byte sizes, unknown-size
// Segment and Cluster.
func testHeader() []byte {
	return mkvtest.Narrow.Header(1_000_000, mkv.TrackEntry{Track: mkv.Track{Number: 1}})
}

func testCluster(tc byte) []byte {
	return mkvtest.Narrow.Cluster(uint64(tc), mkvtest.Block{Track: 1, Key: true, Data: []byte{0x5A}})
}

// A PutMedia whose session ends while the producer is still sending (here an ERROR on a body
// that is not Matroska) closes its connection once the acks are sent: what the producer sends
// afterwards, the rest of its body and then a new request, is never read as a request (before,
// kvsd kept the connection and answered that request 400 Bad Request).
func TestPutMediaEndedEarlyClosesConnection(t *testing.T) {
	s := startPutMedia(t)
	st := s.createStream(t, "cam-1")
	conn := s.rawPutMedia(t, st.Name, "")
	junk := make([]byte, 64) // zeros: not an EBML element ID
	_, err := fmt.Fprintf(conn, "%x\r\n%s\r\n", len(junk), junk)
	require.NoError(t, err)

	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	acks, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Contains(t, string(acks), `"EventType":"ERROR"`)

	// The producer finishes its body and, as a kept-alive client would, sends its next request.
	_, err = fmt.Fprintf(conn, "%x\r\n%s\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", len(junk), junk)
	if err == nil {
		rest, _ := io.ReadAll(br)
		require.Empty(t, string(rest), "kvsd read the producer's leftover bytes as a request")
	}
}

// A client whose PutMedia body has ended goes on with its next request (a new connection: each
// PutMedia has one of its own); the session's read deadline never fails a later request with 499.
func TestPutMediaErrorLeavesClientUsable(t *testing.T) {
	s := startPutMedia(t)
	s.createStream(t, "cam")
	hc := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}
	truncated := []byte{0x1A, 0x45, 0xDF, 0xA3, 0xA3, 0x42, 0x86, 0x81} // an EBML header cut short
	for i := range 10 {
		resp, err := hc.Do(s.putMediaRequest(t, "cam", io.MultiReader(bytes.NewReader(truncated)))) // length unknown: chunked
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "request %d: %s", i, body)
		require.Contains(t, string(body), `"EventType":"ERROR"`, "request %d", i)
	}
}
