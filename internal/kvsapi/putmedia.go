package kvsapi

import (
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kvsd/kvsd/internal/awsapi"
	"github.com/kvsd/kvsd/internal/ingest"
)

// PutMedia request headers (§3.1).
const (
	hdrStreamName    = "x-amzn-stream-name"
	hdrStreamARN     = "x-amzn-stream-arn"
	hdrTimecodeType  = "x-amzn-fragment-timecode-type"
	hdrProducerStart = "x-amzn-producer-start-timestamp"
)

// PutMedia serves POST /putMedia: header errors as AWS JSON errors, then 200 at once and one
// JSON ack per line while the producer keeps sending (full duplex, HTTP/1.1 chunked both ways).
func (h *Handler) PutMedia(m *ingest.Manager) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, err := putMediaRequest(r.Header)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		s, err := m.Open(r.Context(), req)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		defer s.Close()

		rc := http.NewResponseController(w)
		if strings.Contains(strings.ToLower(r.Header.Get("Expect")), "100-continue") {
			writeContinue(w)
		}
		if err := rc.EnableFullDuplex(); err != nil {
			h.fail(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		// A session may end while the producer is still sending (superseded, an ERROR, shutdown).
		// net/http would then keep the connection and parse the rest of the body as the next
		// request; each PutMedia is long-lived, so it gets a connection of its own instead.
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusOK)
		_ = rc.Flush()

		line := make([]byte, 0, 256)
		emit := func(a ingest.Ack) error {
			b, err := a.MarshalJSON()
			if err != nil {
				return err
			}
			line = append(append(line[:0], b...), '\n')
			if _, err := w.Write(line); err != nil {
				return err
			}
			return rc.Flush()
		}
		// The session logs how it ended: a WARN line when it cost the producer video.
		_ = s.Run(r.Context(), &putMediaBody{r: r, rc: rc}, emit)
	}
}

// writeContinue answers "Expect: 100-continue" before the 200; a 200 first would cancel the
// 100 and leave curl and kvssink waiting a second before they send. Go sends the 100 by itself
// on the first body read, but that read then blocks until the first chunk arrives, which would
// hold back the 200 that KVS sends at once. The 100 goes to the innermost writer: it is not the
// response's status, which the middleware records.
func writeContinue(w http.ResponseWriter) {
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		w = u.Unwrap()
	}
	w.WriteHeader(http.StatusContinue)
}

// putMediaRequest reads the PutMedia headers.
func putMediaRequest(hdr http.Header) (ingest.Request, error) {
	req := ingest.Request{
		StreamName:   hdr.Get(hdrStreamName),
		StreamARN:    hdr.Get(hdrStreamARN),
		TimecodeType: hdr.Get(hdrTimecodeType),
	}
	switch {
	case req.StreamName != "" && req.StreamARN != "":
		return req, awsapi.InvalidArgument("send %s or %s, not both", hdrStreamName, hdrStreamARN)
	case req.StreamName == "" && req.StreamARN == "":
		return req, awsapi.InvalidArgument("%s or %s is required", hdrStreamName, hdrStreamARN)
	case req.TimecodeType == "":
		return req, awsapi.InvalidArgument("%s is required (ABSOLUTE or RELATIVE)", hdrTimecodeType)
	}
	if v := hdr.Get(hdrProducerStart); v != "" {
		t, err := parseEpochSeconds(v)
		if err != nil {
			return req, awsapi.InvalidArgument("%s %q is not a number of seconds since the epoch", hdrProducerStart, v)
		}
		req.ProducerStart = t
	}
	return req, nil
}

// parseEpochSeconds reads decimal epoch seconds. The C producer prints the milliseconds
// without zero padding (….70 for .070 s); that is its bug, and the value is read as the
// decimal number it is: it only matters for RELATIVE streams.
func parseEpochSeconds(v string) (time.Time, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > 1e11 {
		return time.Time{}, errors.New("bad timestamp")
	}
	return time.UnixMicro(int64(math.Round(f * 1e6))), nil
}

// putMediaBody is the request body as the session reads it. Close interrupts a pending Read
// through the connection's read deadline (closing the body would wait for that Read), so the
// session can stop at once; the server then drops the connection. Once the body has ended
// there is no Read to interrupt, and a deadline would only fail net/http's background read of
// the connection, which cancels the request's context while the last acks are written.
type putMediaBody struct {
	r   *http.Request
	rc  *http.ResponseController
	eof atomic.Bool
}

func (b *putMediaBody) Read(p []byte) (int, error) {
	n, err := b.r.Body.Read(p)
	if err == io.EOF {
		b.eof.Store(true)
	}
	return n, err
}

func (b *putMediaBody) Close() error {
	if b.eof.Load() {
		return nil
	}
	return b.rc.SetReadDeadline(time.Now())
}
