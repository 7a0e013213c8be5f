// Package kvsapi serves the KVS API over HTTP: one route per operation, SigV4 on all of them,
// AWS-shaped errors. Handlers decode, call a domain package and encode; the rules live in the
// domain packages.
package kvsapi

import (
	"cmp"
	"context"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kvsd/kvsd/internal/awsapi"
	"github.com/kvsd/kvsd/internal/diag"
	"github.com/kvsd/kvsd/internal/playback"
	"github.com/kvsd/kvsd/internal/stream"
)

// Handler is the API's http.Handler.
type Handler struct {
	streams    *stream.Service
	playback   *playback.Service
	images     images
	status     []diag.Source
	auth       verifier
	publicURL  string
	log        *slog.Logger
	bodyRead   time.Duration
	writeStall time.Duration
	metrics    *metrics
	mux        *http.ServeMux
	ops        map[string]bool // every operation name served, for bounded metric labels
	chain      http.Handler
	liveOwner  func(r *http.Request, ref stream.Ref) func(w http.ResponseWriter, r *http.Request) error
}

// Config wires the handler's dependencies; a nil Registerer disables metrics registration.
type Config struct {
	Streams  *stream.Service
	Playback *playback.Service // nil: the media read APIs are not served
	Images   images            // nil: GetImages is not served
	Status   []diag.Source     // reports of the status API (kvsd doctor)
	Auth     verifier
	// PublicURL is the data endpoint session URLs name (the server's --public-url).
	PublicURL string
	Logger    *slog.Logger // nil: discard
	Registry  prometheus.Registerer
	// BodyReadTimeout bounds reading a JSON request's body, so a client that stops half-way
	// does not hold a handler (0: 10 s). Streaming bodies (PutMedia) have their own rules.
	BodyReadTimeout time.Duration
	// WriteTimeout ends a response whose client accepts less than 256 KiB within it (a client
	// that stopped reading a GetMedia stream, a playlist, acks). 0: 30 s.
	WriteTimeout time.Duration
	// LiveOwner, when set, is asked about each authenticated GetMedia: it returns a proxy to
	// the node that serves the stream when this one cannot (a stream without retention is only
	// in the memory of the node ingesting it), or nil to serve it here. A proxy's error, before
	// any response, is answered as the API's errors are.
	LiveOwner func(r *http.Request, ref stream.Ref) (proxy func(w http.ResponseWriter, r *http.Request) error)
}

// opFunc handles one JSON operation: body in, response value (or nil for {}) out.
type opFunc func(ctx context.Context, body []byte) (any, error)

// notImplemented are the KVS operations (signaling channels, edge agent, WebRTC storage) that
// kvsd knows by name but does not serve yet.
var notImplemented = []string{
	"createSignalingChannel", "deleteSignalingChannel", "describeSignalingChannel", "listSignalingChannels",
	"updateSignalingChannel", "getSignalingChannelEndpoint", "TagResource", "UntagResource", "ListTagsForResource",
	"updateMediaStorageConfiguration", "describeMediaStorageConfiguration", "describeMappedResourceConfiguration",
	"startEdgeConfigurationUpdate", "describeEdgeConfiguration", "deleteEdgeConfiguration", "listEdgeAgentConfigurations",
	"v1/get-ice-server-config", "v1/send-alexa-offer-to-master", "joinStorageSession", "joinStorageSessionAsViewer",
}

// New builds the API handler.
func New(cfg Config) *Handler {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{streams: cfg.Streams, playback: cfg.Playback, images: cfg.Images, status: cfg.Status, auth: cfg.Auth, publicURL: cfg.PublicURL, log: log, bodyRead: cmp.Or(cfg.BodyReadTimeout, 10*time.Second), writeStall: cmp.Or(cfg.WriteTimeout, 30*time.Second), metrics: newMetrics(cfg.Registry), liveOwner: cfg.LiveOwner,
		mux: http.NewServeMux(), ops: map[string]bool{}}
	h.chain = h.observe(h.cors(h.authenticate(h.mux)))
	for name, fn := range h.controlPlane() {
		h.handleJSON(name, fn)
	}
	if h.playback != nil {
		for name, fn := range h.archivedMedia() {
			h.handleJSON(name, fn)
		}
		h.handleJSON(DescribeFragmentsOperation, decode(h.describeFragments))
		h.Handle("getMedia", h.getMedia)
		h.Handle("getMediaForFragmentList", h.getMediaForFragmentList)
		if h.playback.Tokens != nil && h.playback.Muxer != nil {
			for name, fn := range h.sessionOps() {
				h.handleJSON(name, fn)
			}
			h.Handle("getClip", h.getClip)
			for path, fn := range h.playbackRoutes() {
				h.ops[strings.TrimPrefix(path, "/")] = true
				h.mux.Handle("GET "+path, h.serveResource(fn)) // GET patterns match HEAD too
			}
		}
	}
	if h.images != nil {
		h.handleJSON("getImages", decode(h.getImages))
		if g, ok := h.images.(gallery); ok {
			h.serveGallery(g)
		}
	}
	h.handleJSON(StatusOperation, decode(h.streamStatus))
	for _, name := range notImplemented {
		h.mux.Handle("POST /"+name, h.notImplemented(name))
		h.ops[name] = true
	}
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, awsapi.Errorf(awsapi.CodeUnknownOperation, http.StatusNotFound,
			"kvsd has no operation %s %s; KVS operations are POST /<operation>, e.g. POST /describeStream", r.Method, r.URL.Path))
	})
	return h
}

// Handle registers a handler for a streaming operation (PutMedia, GetMedia …) that manages
// its own request and response bodies. It runs behind the same auth and observation.
func (h *Handler) Handle(name string, fn http.HandlerFunc) {
	h.ops[name] = true
	h.mux.Handle("POST /"+name, fn)
}

func (h *Handler) handleJSON(name string, fn opFunc) {
	h.ops[name] = true
	h.mux.HandleFunc("POST /"+name, func(w http.ResponseWriter, r *http.Request) {
		body, _ := readBody(r)
		out, err := fn(r.Context(), body)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		awsapi.WriteJSON(w, out)
	})
}

func (h *Handler) notImplemented(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, awsapi.Errorf(awsapi.CodeNotImplemented, http.StatusNotImplemented,
			"kvsd does not implement %s yet (signaling channels, edge agent and WebRTC storage are not served)", name))
	})
}

// Operations lists every operation and playback resource the handler serves, sorted (the fuzz
// targets cover each).
func (h *Handler) Operations() []string {
	out := make([]string, 0, len(h.ops))
	for name := range h.ops {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// ServeHTTP runs every request through observation and authentication, then routing.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.chain.ServeHTTP(w, r)
}

// readBody returns the body authenticate already buffered (it cannot fail on a bytes.Reader).
func readBody(r *http.Request) ([]byte, error) { return io.ReadAll(r.Body) }

// decode is the generic JSON step of an operation.
func decode[In any](fn func(ctx context.Context, in *In) (any, error)) opFunc {
	return func(ctx context.Context, body []byte) (any, error) {
		in := new(In)
		if err := awsapi.Decode(body, in); err != nil {
			return nil, err
		}
		return fn(ctx, in)
	}
}
