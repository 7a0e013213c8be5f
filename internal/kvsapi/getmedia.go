package kvsapi

import (
	"bytes"
	"io"
	"net/http"

	"github.com/kvsd/kvsd/internal/awsapi"
	"github.com/kvsd/kvsd/internal/playback"
)

// flushSink adapts a ResponseWriter to playback.Sink.
type flushSink struct {
	http.ResponseWriter
	rc *http.ResponseController
}

func (s flushSink) Flush() error { return s.rc.Flush() }

// getMedia streams a stream's fragments from the selected start, then live.
func (h *Handler) getMedia(w http.ResponseWriter, r *http.Request) {
	var in struct {
		streamRef
		StartSelector *struct {
			StartSelectorType   string       `json:"StartSelectorType"`
			AfterFragmentNumber string       `json:"AfterFragmentNumber"`
			StartTimestamp      *awsapi.Time `json:"StartTimestamp"`
			ContinuationToken   string       `json:"ContinuationToken"`
		} `json:"StartSelector"`
	}
	body, _ := readBody(r)
	if err := awsapi.Decode(body, &in); err != nil {
		h.fail(w, r, err)
		return
	}
	if in.StartSelector == nil {
		h.fail(w, r, awsapi.InvalidArgument("StartSelector is required"))
		return
	}
	if h.liveOwner != nil {
		if proxy := h.liveOwner(r, in.ref()); proxy != nil {
			r.Body = io.NopCloser(bytes.NewReader(body)) // as signed, for the owner to verify
			if err := proxy(w, r); err != nil {
				h.fail(w, r, err)
			}
			return
		}
	}
	sel := playback.StartSelector{Type: in.StartSelector.StartSelectorType,
		AfterFragmentNumber: in.StartSelector.AfterFragmentNumber, ContinuationToken: in.StartSelector.ContinuationToken}
	if ts := in.StartSelector.StartTimestamp; ts != nil {
		sel.StartTimestamp = &ts.Time
	}
	run, release, err := h.playback.GetMedia(r.Context(), in.ref(), sel)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer release()
	w.Header().Set("Content-Type", mediaContentType)
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	if err := run(flushSink{w, rc}); err != nil {
		h.logger(r.Context()).Warn("getMedia ended early", "err", err)
	}
}
