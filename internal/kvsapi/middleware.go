package kvsapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kvsd/kvsd/internal/awsapi"
	"github.com/kvsd/kvsd/internal/metric"
	"github.com/kvsd/kvsd/internal/sigv4"
)

type ctxKey int

const (
	keyLogger ctxKey = iota
	keyRequestID
)

// logger returns the request-scoped logger (it carries request_id; observe sets it), else the
// handler's.
func (h *Handler) logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(keyLogger).(*slog.Logger); ok {
		return l
	}
	return h.log
}

// streamingPaths carry media bodies that must not be buffered or hashed.
var streamingPaths = map[string]bool{"/putMedia": true}

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: metric.CounterVec("kvsd_api_requests_total", "API requests by operation and HTTP status.", "operation", "code"),
		latency: metric.HistogramVec("kvsd_api_request_duration_seconds",
			"API request latency by operation (streaming operations: until the response ends).",
			prometheus.ExponentialBuckets(0.0005, 4, 10), "operation"),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency)
	}
	return m
}

// statusWriter records the status for logs and metrics, keeps Flush/full-duplex reachable, and
// ends a response whose client stops reading: each piece of at most stallPiece bytes (and each
// flush) must reach the connection within stall, so a stuck reader cannot hold a handler, its
// buffers and a stream's reader slot forever.
type statusWriter struct {
	http.ResponseWriter
	status int
	stall  time.Duration // 0: no deadline
	rc     *http.ResponseController
}

// stallPiece is how much a client must accept within the write timeout.
const stallPiece = 256 << 10

func newStatusWriter(w http.ResponseWriter, stall time.Duration) *statusWriter {
	return &statusWriter{ResponseWriter: w, stall: stall, rc: http.NewResponseController(w)}
}

// extend moves the write deadline to stall from now. The deadline stays set after the request,
// for net/http's final flush; the next request on the connection moves it again.
func (w *statusWriter) extend() {
	if w.stall > 0 {
		_ = w.rc.SetWriteDeadline(time.Now().Add(w.stall))
	}
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n := 0
	for len(b) > 0 {
		piece := b[:min(len(b), stallPiece)]
		w.extend()
		k, err := w.ResponseWriter.Write(piece)
		n += k
		if err != nil {
			return n, err
		}
		b = b[len(piece):]
	}
	return n, nil
}

// FlushError is what http.ResponseController.Flush calls: a flush after a long quiet spell
// (a live GetMedia) gets a fresh deadline too.
func (w *statusWriter) FlushError() error {
	w.extend()
	return w.rc.Flush()
}

// ReadFrom keeps net/http's ReadFrom reachable through the wrapper: it sends an *os.File (or
// an io.LimitedReader of one) with sendfile, as GetClip's media, a piece at a time.
func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.stall <= 0 {
		return io.Copy(w.ResponseWriter, r)
	}
	src, limit := r, int64(-1)
	if lr, ok := r.(*io.LimitedReader); ok {
		src, limit = lr.R, lr.N
	}
	if _, ok := src.(*os.File); !ok {
		return io.Copy(writerOnly{w}, r) // through Write's pieces
	}
	var n int64
	for limit != 0 {
		piece := int64(stallPiece)
		if limit > 0 {
			piece = min(piece, limit)
		}
		w.extend()
		k, err := io.Copy(w.ResponseWriter, &io.LimitedReader{R: src, N: piece})
		n += k
		if limit > 0 {
			limit -= k
		}
		if err != nil || k < piece {
			if lr, ok := r.(*io.LimitedReader); ok {
				lr.N = limit
			}
			return n, err
		}
	}
	if lr, ok := r.(*io.LimitedReader); ok {
		lr.N = 0
	}
	return n, nil
}

// writerOnly hides ReadFrom, so io.Copy goes through Write.
type writerOnly struct{ io.Writer }

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// observe wraps every request: request id, scoped logger, access log line, metrics.
func (h *Handler) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := awsapi.NewRequestID()
		w.Header().Set(awsapi.RequestIDHeader, id)
		log := h.log.With("request_id", id)
		ctx := context.WithValue(context.WithValue(r.Context(), keyLogger, log), keyRequestID, id)
		sw := newStatusWriter(w, h.writeStall)
		sw.extend() // also covers what net/http writes itself (100 Continue)
		next.ServeHTTP(sw, r.WithContext(ctx))
		sw.extend() // and its final flush

		op := h.operationLabel(r.URL.Path)
		dur := time.Since(start)
		h.metrics.requests.WithLabelValues(op, strconv.Itoa(sw.status)).Inc()
		h.metrics.latency.WithLabelValues(op).Observe(dur.Seconds())
		log.LogAttrs(ctx, slog.LevelInfo, "request", slog.String("op", op), slog.Int("status", sw.status),
			slog.Duration("dur", dur), slog.String("remote", r.RemoteAddr))
	})
}

// operationLabel bounds metric cardinality to known operations.
func (h *Handler) operationLabel(path string) string {
	name := strings.TrimPrefix(path, "/")
	if h.ops[name] {
		return name
	}
	return "unknown"
}

// authenticate buffers JSON bodies (capped), verifies SigV4 and hands the body on. Streaming
// operations are verified without reading their body.
func (h *Handler) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isPlaybackPath(r.URL.Path) { // unsigned: the SessionToken authorises them
			next.ServeHTTP(w, r)
			return
		}
		bodyHash := ""
		if !streamingPaths[r.URL.Path] {
			// net/http bounds the headers only; this bounds the body. The deadline is lifted
			// once the body is in: net/http's background read (which notices a client that
			// goes away) would otherwise end long responses such as GetMedia's.
			rc := http.NewResponseController(w)
			_ = rc.SetReadDeadline(time.Now().Add(h.bodyRead))
			body, err := io.ReadAll(io.LimitReader(r.Body, awsapi.MaxBodyBytes+1))
			if err != nil { // the deadline stays: net/http then closes the connection
				h.fail(w, r, awsapi.InvalidArgument("reading request body: %v", err))
				return
			}
			_ = rc.SetReadDeadline(time.Time{})
			if len(body) > awsapi.MaxBodyBytes {
				h.fail(w, r, awsapi.Errorf(awsapi.CodeInvalidArgument, http.StatusRequestEntityTooLarge,
					"request body is larger than %d bytes", awsapi.MaxBodyBytes))
				return
			}
			sum := sha256.Sum256(body)
			bodyHash = hex.EncodeToString(sum[:])
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		key, err := h.auth.Verify(r, bodyHash)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		ctx := context.WithValue(r.Context(), keyLogger, h.logger(r.Context()).With("access_key", key))
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// fail writes err in the AWS shape and logs causes the client does not see.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	ae := toAPIError(err)
	log := h.logger(r.Context())
	switch {
	case ae.Status >= 500 && ae.Status != http.StatusNotImplemented:
		log.Error("request failed", "code", ae.Code, "err", err)
	default:
		log.Info("request rejected", "code", ae.Code, "msg", ae.Message)
	}
	awsapi.WriteError(w, ae)
}

// verifier checks request signatures; *sigv4.Verifier implements it.
type verifier interface {
	Verify(r *http.Request, bodyHash string) (string, error)
}

var _ verifier = (*sigv4.Verifier)(nil)
