package kvsapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
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

// statusWriter records the status for logs and metrics, and keeps Flush/full-duplex reachable.
type statusWriter struct {
	http.ResponseWriter
	status int
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
	return w.ResponseWriter.Write(b)
}

// ReadFrom keeps net/http's ReadFrom reachable through the wrapper: it sends an *os.File (or
// an io.LimitedReader of one) with sendfile, as GetClip's media.
func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return io.Copy(w.ResponseWriter, r)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// observe wraps every request: request id, scoped logger, access log line, metrics.
func (h *Handler) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := awsapi.NewRequestID()
		w.Header().Set(awsapi.RequestIDHeader, id)
		log := h.log.With("request_id", id)
		ctx := context.WithValue(context.WithValue(r.Context(), keyLogger, log), keyRequestID, id)
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(ctx))

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
