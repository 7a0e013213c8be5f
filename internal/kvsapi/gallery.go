package kvsapi

import (
	"context"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/kvsd/kvsd/internal/awsapi"
	"github.com/kvsd/kvsd/internal/imagegen"
	"github.com/kvsd/kvsd/internal/stream"
)

// kvsd's own operations behind the console's image gallery, signed and answered like every KVS
// operation:
//
//   - POST /kvsdListImages with {"StreamName"|"StreamARN", "StartTimestamp", "EndTimestamp",
//     "MaxResults" (1–100, default 50), "NextToken"} lists the images delivered for the stream
//     at its current destination, newest first: {"Images": [{"Key", "Uri", "ImageTimestamp",
//     "Size", "ContentType", "ProducerTimestamp", "ServerTimestamp", "FragmentNumber",
//     "Tags"}], "NextToken"}. StartTimestamp and EndTimestamp (each optional, inclusive) keep
//     the images at or after and at or before them.
//   - GET /kvsdGetImage?StreamName=…&Key=… answers one of those images. Browsers load it as a
//     presigned URL (SigV4 in the query string, as S3's presigned GETs).
const (
	ListImagesOperation = "kvsdListImages"
	GetImageOperation   = "kvsdGetImage"
)

// gallery reads delivered images back; *imagegen.Generator implements it.
type gallery interface {
	ListDelivered(ctx context.Context, st *stream.Stream, in imagegen.ListDeliveredInput) ([]imagegen.DeliveredImage, string, error)
	OpenDelivered(ctx context.Context, st *stream.Stream, key string) (io.ReadCloser, string, error)
}

type deliveredOut struct {
	Key               string            `json:"Key"`
	URI               string            `json:"Uri"`
	ImageTimestamp    awsapi.Time       `json:"ImageTimestamp"`
	Size              int64             `json:"Size"`
	ContentType       string            `json:"ContentType,omitempty"`
	ProducerTimestamp *awsapi.Time      `json:"ProducerTimestamp,omitempty"`
	ServerTimestamp   *awsapi.Time      `json:"ServerTimestamp,omitempty"`
	FragmentNumber    string            `json:"FragmentNumber,omitempty"`
	Tags              map[string]string `json:"Tags,omitempty"`
}

func (h *Handler) serveGallery(g gallery) {
	h.handleJSON(ListImagesOperation, decode(func(ctx context.Context, in *struct {
		streamRef
		StartTimestamp *awsapi.Time `json:"StartTimestamp"`
		EndTimestamp   *awsapi.Time `json:"EndTimestamp"`
		MaxResults     int          `json:"MaxResults"`
		NextToken      string       `json:"NextToken"`
	}) (any, error) {
		li := imagegen.ListDeliveredInput{MaxResults: in.MaxResults, NextToken: in.NextToken}
		if in.StartTimestamp != nil {
			li.From = in.StartTimestamp.Time
		}
		if in.EndTimestamp != nil {
			li.To = in.EndTimestamp.Time
		}
		st, err := h.streams.Describe(ctx, in.ref())
		if err != nil {
			return nil, err
		}
		imgs, next, err := g.ListDelivered(ctx, st, li)
		if err != nil {
			return nil, err
		}
		out := make([]deliveredOut, len(imgs))
		for i, img := range imgs {
			out[i] = deliveredOut{Key: img.Key, URI: img.URI, ImageTimestamp: awsapi.Time{Time: img.Time}, Size: img.Size,
				ContentType: img.ContentType, ProducerTimestamp: optionalTime(img.ProducerTime),
				ServerTimestamp: optionalTime(img.ServerTime), FragmentNumber: img.FragmentNumber, Tags: img.Tags}
		}
		return struct {
			Images    []deliveredOut `json:"Images"`
			NextToken *string        `json:"NextToken"`
		}{out, nullable(next)}, nil
	}))
	h.ops[GetImageOperation] = true
	h.mux.HandleFunc("GET /"+GetImageOperation, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		st, err := h.streams.Describe(r.Context(), stream.Ref{Name: q.Get("StreamName"), ARN: q.Get("StreamARN")})
		if err != nil {
			h.fail(w, r, err)
			return
		}
		key := q.Get("Key")
		body, _, err := g.OpenDelivered(r.Context(), st, key)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		defer body.Close()
		// The type follows the key's extension (OpenDelivered only opens .jpg and .png keys),
		// whatever metadata someone else's upload carried, and the answer cannot run script.
		ctype := "image/jpeg"
		if strings.HasSuffix(key, ".png") {
			ctype = "image/png"
		}
		hd := w.Header()
		hd.Set("Content-Type", ctype)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Content-Security-Policy", "default-src 'none'")
		hd.Set("Cache-Control", "private, max-age=3600")
		if _, err := io.Copy(w, body); err != nil {
			h.logger(r.Context()).Info("kvsdGetImage ended early", "err", err)
		}
	})
}

func optionalTime(t time.Time) *awsapi.Time {
	if t.IsZero() {
		return nil
	}
	return &awsapi.Time{Time: t}
}
