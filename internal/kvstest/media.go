package kvstest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/putmedia"
)

// FFmpegMKV runs ffmpeg with args (which must write Matroska to stdout, "-") and returns the
// bytes. Tests make their media this way instead of committing binaries.
func FFmpegMKV(t testing.TB, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("ffmpeg", append([]string{"-hide_banner", "-loglevel", "error", "-nostdin"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffmpeg %s: %v: %s (make setup installs ffmpeg)", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// TestPattern is an H.264 MKV of the given length with a keyframe every second (so one
// fragment per second) and absolute epoch-millisecond timecodes starting at start.
func TestPattern(t testing.TB, seconds int, start time.Time) []byte {
	return FFmpegMKV(t, "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", strconv.Itoa(seconds),
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
		"-output_ts_offset", fmt.Sprintf("%d.%03d", start.UnixMilli()/1000, start.UnixMilli()%1000),
		"-f", "matroska", "-live", "1", "-")
}

// Clusters splits an MKV stream into its header and the verbatim bytes of each cluster with the
// Tags that follow it: exactly what kvsd must store per fragment.
func Clusters(t testing.TB, data []byte) (header []byte, fragments [][]byte) {
	t.Helper()
	r := mkv.NewReader(bytes.NewReader(data), mkv.Limits{})
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			return header, fragments
		}
		if err != nil {
			t.Fatalf("parse test media: %v", err)
		}
		switch ev.Kind {
		case mkv.KindHeader:
			header = bytes.Clone(ev.Header.Raw)
		case mkv.KindClusterEnd:
			fragments = append(fragments, bytes.Clone(ev.Raw))
		case mkv.KindTags:
			if len(fragments) > 0 {
				fragments[len(fragments)-1] = append(fragments[len(fragments)-1], ev.Raw...)
			}
		}
	}
}

// PutMediaClient returns a PutMedia client for this server.
func (s *Server) PutMediaClient() *putmedia.Client {
	return &putmedia.Client{Endpoint: s.URL, Region: Region, HTTP: &http.Client{Transport: s.transport},
		Credentials: aws.Credentials{AccessKeyID: AccessKeyID, SecretAccessKey: SecretAccessKey}}
}

// PutMedia streams body to the stream and returns every ack.
func (s *Server) PutMedia(t testing.TB, streamName string, body io.Reader) []putmedia.Ack {
	t.Helper()
	var acks []putmedia.Ack
	err := s.PutMediaClient().Put(context.Background(), putmedia.Request{StreamName: streamName, Body: body},
		func(a putmedia.Ack) { acks = append(acks, a) })
	if err != nil {
		t.Fatalf("putMedia: %v", err)
	}
	return acks
}

// Call sends a signed JSON request to an operation, for tests about the wire itself (status,
// headers, the exact JSON) rather than what an SDK makes of it. It returns the status, headers
// and body.
func (s *Server) Call(t testing.TB, op string, in any) (int, http.Header, []byte) {
	t.Helper()
	resp := s.Open(t, op, in)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: read body: %v", op, err)
	}
	return resp.StatusCode, resp.Header, body
}

// Open is Call for streaming responses: the caller reads and closes the body.
func (s *Server) Open(t testing.TB, op string, in any) *http.Response {
	t.Helper()
	resp, err := s.OpenContext(context.Background(), op, in)
	if err != nil {
		t.Fatalf("%s: %v", op, err)
	}
	return resp
}

// OpenContext is Open with a context and an error instead of t.
func (s *Server) OpenContext(ctx context.Context, op string, in any) (*http.Response, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/"+op, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: AccessKeyID, SecretAccessKey: SecretAccessKey},
		req, hex.EncodeToString(sum[:]), "kinesisvideo", Region, time.Now()); err != nil {
		return nil, err
	}
	return (&http.Client{Transport: s.transport}).Do(req)
}
