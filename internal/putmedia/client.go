// Package putmedia is a PutMedia client: it signs the request like the KVS producer SDK does
// (SigV4 with the empty-payload hash), streams an MKV body with chunked transfer encoding and
// decodes the acknowledgement stream while the body is still being sent.
package putmedia

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// emptySHA256 is the payload hash the C producer and kvssink sign PutMedia with.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// Ack is one acknowledgement event as KVS sends it.
type Ack struct {
	EventType        string `json:"EventType"`
	FragmentTimecode uint64 `json:"FragmentTimecode"`
	FragmentNumber   string `json:"FragmentNumber"`
	ErrorID          int    `json:"ErrorId"`
	ErrorCode        string `json:"ErrorCode"`
}

// Client sends PutMedia requests to one data endpoint.
type Client struct {
	Endpoint    string // GetDataEndpoint's answer, e.g. http://127.0.0.1:4580
	Region      string
	Credentials aws.Credentials
	HTTP        *http.Client // nil: a client without timeouts (the request streams)
}

// Request describes one PutMedia session.
type Request struct {
	StreamName    string
	StreamARN     string
	TimecodeType  string    // ABSOLUTE (default) or RELATIVE
	ProducerStart time.Time // x-amzn-producer-start-timestamp; default now
	Body          io.Reader
}

// APIError is an error answered before streaming started (AWS JSON error).
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("putMedia: %d %s: %s", e.Status, e.Code, e.Message)
}

// Put streams r.Body and calls onAck for each acknowledgement, in order, until the server ends
// the response. It returns once the response is complete.
func (c *Client) Put(ctx context.Context, r Request, onAck func(Ack)) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.Endpoint, "/")+"/putMedia", r.Body)
	if err != nil {
		return err
	}
	req.ContentLength = -1 // chunked
	tc := r.TimecodeType
	if tc == "" {
		tc = "ABSOLUTE"
	}
	start := r.ProducerStart
	if start.IsZero() {
		start = time.Now()
	}
	if r.StreamARN != "" {
		req.Header.Set("x-amzn-stream-arn", r.StreamARN)
	} else {
		req.Header.Set("x-amzn-stream-name", r.StreamName)
	}
	req.Header.Set("x-amzn-fragment-timecode-type", tc)
	req.Header.Set("x-amzn-fragment-acknowledgment-required", "1")
	req.Header.Set("x-amzn-producer-start-timestamp", fmt.Sprintf("%d.%03d", start.UnixMilli()/1000, start.UnixMilli()%1000))
	if err := v4.NewSigner().SignHTTP(ctx, c.Credentials, req, emptySHA256, "kinesisvideo", c.Region, time.Now()); err != nil {
		return fmt.Errorf("sign putMedia: %w", err)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("putMedia: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var body struct {
			Message string `json:"message"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body)
		return &APIError{Status: resp.StatusCode, Code: strings.SplitN(resp.Header.Get("x-amzn-ErrorType"), ":", 2)[0], Message: body.Message}
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var a Ack
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			return fmt.Errorf("putMedia: bad ack %q: %w", line, err)
		}
		if onAck != nil {
			onAck(a)
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("putMedia: reading acks: %w", err)
	}
	return nil
}
