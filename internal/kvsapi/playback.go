package kvsapi

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kvsd/kvsd/internal/awsapi"
	"github.com/kvsd/kvsd/internal/playback"
	"github.com/kvsd/kvsd/internal/stream"
)

// sessionSelector is HLSFragmentSelector, DASHFragmentSelector and ClipFragmentSelector.
type sessionSelector struct {
	FragmentSelectorType string          `json:"FragmentSelectorType"`
	TimestampRange       *timestampRange `json:"TimestampRange"`
}

func (s *sessionSelector) apply(in *playback.SessionInput) {
	if s == nil {
		return
	}
	in.SelectorType = s.FragmentSelectorType
	if r := s.TimestampRange; r != nil {
		in.HasRange = true
		if r.StartTimestamp != nil {
			in.From = &r.StartTimestamp.Time
		}
		if r.EndTimestamp != nil {
			in.To = &r.EndTimestamp.Time
		}
	}
}

// Paths of the playback resources, under the data endpoint (§4.5).
const (
	hlsPrefix  = "/hls/v1/"
	dashPrefix = "/dash/v1/"
)

func isPlaybackPath(p string) bool {
	return strings.HasPrefix(p, hlsPrefix) || strings.HasPrefix(p, dashPrefix)
}

// sessionOps returns GetHLSStreamingSessionURL and GetDASHStreamingSessionURL.
func (h *Handler) sessionOps() map[string]opFunc {
	pb := h.playback
	return map[string]opFunc{
		"getHLSStreamingSessionURL": decode(func(ctx context.Context, in *struct {
			streamRef
			PlaybackMode                    string           `json:"PlaybackMode"`
			HLSFragmentSelector             *sessionSelector `json:"HLSFragmentSelector"`
			ContainerFormat                 string           `json:"ContainerFormat"`
			DiscontinuityMode               string           `json:"DiscontinuityMode"`
			DisplayFragmentTimestamp        string           `json:"DisplayFragmentTimestamp"`
			Expires                         *int             `json:"Expires"`
			MaxMediaPlaylistFragmentResults *int             `json:"MaxMediaPlaylistFragmentResults"`
		}) (any, error) {
			si := playback.SessionInput{Protocol: playback.HLS, Ref: in.ref(), Mode: in.PlaybackMode, Format: in.ContainerFormat,
				Discontinuity: in.DiscontinuityMode, DisplayTimestamp: in.DisplayFragmentTimestamp, Expires: in.Expires,
				MaxResults: in.MaxMediaPlaylistFragmentResults}
			in.HLSFragmentSelector.apply(&si)
			tok, err := pb.StartSession(ctx, si)
			if err != nil {
				return nil, err
			}
			return map[string]string{"HLSStreamingSessionURL": h.publicURL + hlsPrefix + "getHLSMasterPlaylist.m3u8?SessionToken=" + tok}, nil
		}),
		"getDASHStreamingSessionURL": decode(func(ctx context.Context, in *struct {
			streamRef
			PlaybackMode               string           `json:"PlaybackMode"`
			DASHFragmentSelector       *sessionSelector `json:"DASHFragmentSelector"`
			DisplayFragmentTimestamp   string           `json:"DisplayFragmentTimestamp"`
			DisplayFragmentNumber      string           `json:"DisplayFragmentNumber"`
			Expires                    *int             `json:"Expires"`
			MaxManifestFragmentResults *int             `json:"MaxManifestFragmentResults"`
		}) (any, error) {
			si := playback.SessionInput{Protocol: playback.DASH, Ref: in.ref(), Mode: in.PlaybackMode,
				DisplayTimestamp: in.DisplayFragmentTimestamp, DisplayNumber: in.DisplayFragmentNumber, Expires: in.Expires,
				MaxResults: in.MaxManifestFragmentResults}
			in.DASHFragmentSelector.apply(&si)
			tok, err := pb.StartSession(ctx, si)
			if err != nil {
				return nil, err
			}
			return map[string]string{"DASHStreamingSessionURL": h.publicURL + dashPrefix + "getDASHManifest.mpd?SessionToken=" + tok}, nil
		}),
	}
}

// getClip streams a progressive MP4 of a range.
func (h *Handler) getClip(w http.ResponseWriter, r *http.Request) {
	var in struct {
		streamRef
		ClipFragmentSelector *sessionSelector `json:"ClipFragmentSelector"`
	}
	body, _ := readBody(r)
	if err := awsapi.Decode(body, &in); err != nil {
		h.fail(w, r, err)
		return
	}
	if in.ClipFragmentSelector == nil {
		h.fail(w, r, awsapi.InvalidArgument("ClipFragmentSelector is required"))
		return
	}
	var si playback.SessionInput
	in.ClipFragmentSelector.apply(&si)
	clip, err := h.playback.Clip(r.Context(), playback.ClipInput{Ref: in.ref(), SelectorType: si.SelectorType, From: si.From, To: si.To})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer clip.Close()
	// With a Content-Length the response is not chunked, so net/http sends the media that
	// WriteTo hands over as files with sendfile (not over TLS, which must encrypt it).
	w.Header().Set("Content-Type", playback.TypeMP4)
	w.Header().Set("Content-Length", strconv.FormatInt(clip.Size, 10))
	w.Header().Set(ClipPathHeader, clipPath(clip.FromFiles, r.TLS != nil))
	w.WriteHeader(http.StatusOK)
	if _, err := clip.WriteTo(w); err != nil {
		h.logger(r.Context()).Warn("getClip ended early", "err", err)
	}
}

// ClipPathHeader tells how a GetClip answer was sent: "sendfile" (the media straight from the
// segment files to the socket), "file-copy" (from the segment files through memory: TLS) or
// "copy" (read into memory: the media backend keeps no files, or payloads are rewritten). For
// tests and benchmarks; KVS sends no such header.
const ClipPathHeader = "X-Kvsd-Clip-Path"

func clipPath(fromFiles, tls bool) string {
	switch {
	case !fromFiles:
		return "copy"
	case tls:
		return "file-copy"
	}
	return "sendfile"
}

// resourceFunc produces one playback resource from the request's query.
type resourceFunc func(ctx context.Context, q query) (*playback.Resource, error)

// query reads the playback resources' parameters.
type query struct{ r *http.Request }

func (q query) token() string { return q.r.URL.Query().Get("SessionToken") }
func (q query) str(name string) string {
	return q.r.URL.Query().Get(name)
}

func (q query) uint(name string) (uint64, error) {
	v := q.str(name)
	n, err := strconv.ParseUint(v, 10, 63)
	if err != nil {
		return 0, stream.Invalid("%s must be a non-negative integer, got %q", name, v)
	}
	return n, nil
}

// playbackRoutes returns the unsigned GET resources of HLS and DASH sessions.
func (h *Handler) playbackRoutes() map[string]resourceFunc {
	pb := h.playback
	track := func(q query) (uint64, error) { return q.uint("TrackNumber") }
	mediaFragment := func(protocol string) resourceFunc {
		return func(ctx context.Context, q query) (*playback.Resource, error) {
			tr, err := track(q)
			if err != nil {
				return nil, err
			}
			if protocol == playback.DASH {
				t, err := q.uint("Time")
				if err != nil {
					return nil, err
				}
				return pb.DASHMediaFragment(ctx, q.token(), tr, int64(t))
			}
			return pb.MediaFragment(ctx, protocol, q.token(), tr, q.str("FragmentNumber"))
		}
	}
	initFragment := func(protocol string) resourceFunc {
		return func(ctx context.Context, q query) (*playback.Resource, error) {
			tr, err := track(q)
			if err != nil {
				return nil, err
			}
			return pb.InitFragment(ctx, protocol, q.token(), tr, q.str("FragmentNumber"))
		}
	}
	return map[string]resourceFunc{
		hlsPrefix + "getHLSMasterPlaylist.m3u8": func(ctx context.Context, q query) (*playback.Resource, error) {
			return pb.HLSMasterPlaylist(ctx, q.token())
		},
		hlsPrefix + "getHLSMediaPlaylist.m3u8": func(ctx context.Context, q query) (*playback.Resource, error) {
			tr, err := track(q)
			if err != nil {
				return nil, err
			}
			return pb.HLSMediaPlaylist(ctx, q.token(), tr)
		},
		hlsPrefix + "getMP4InitFragment.mp4":  initFragment(playback.HLS),
		hlsPrefix + "getMP4MediaFragment.mp4": mediaFragment(playback.HLS),
		hlsPrefix + "getTSFragment.ts": func(ctx context.Context, q query) (*playback.Resource, error) {
			return pb.TSFragment(ctx, q.token(), q.str("FragmentNumber"))
		},
		dashPrefix + "getDASHManifest.mpd": func(ctx context.Context, q query) (*playback.Resource, error) {
			return pb.DASHManifest(ctx, q.token())
		},
		dashPrefix + "getMP4InitFragment.mp4":  initFragment(playback.DASH),
		dashPrefix + "getMP4MediaFragment.mp4": mediaFragment(playback.DASH),
	}
}

// serveResource answers a playback GET or HEAD; Range requests get 206 (http.ServeContent).
func (h *Handler) serveResource(fn resourceFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := query{r}
		if q.token() == "" {
			h.fail(w, r, fmt.Errorf("%w: SessionToken is required", playback.ErrSessionInvalid))
			return
		}
		res, err := fn(r.Context(), q)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		hd := w.Header()
		hd.Set("Content-Type", res.ContentType)
		if res.NoCache {
			hd.Set("Cache-Control", "no-cache")
		} else {
			hd.Set("Cache-Control", fmt.Sprintf("private, max-age=%d", max(int64(time.Until(res.Expires).Seconds()), 0)))
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(res.Body))
	}
}
