package kvsapi

import (
	"context"
	"encoding/base64"
	"time"

	"github.com/kvsd/kvsd/internal/awsapi"
	"github.com/kvsd/kvsd/internal/imagegen"
	"github.com/kvsd/kvsd/internal/stream"
)

// images renders GetImages answers; *imagegen.Generator implements it.
type images interface {
	GetImages(ctx context.Context, st *stream.Stream, in imagegen.GetImagesInput) ([]imagegen.Image, string, error)
}

type getImagesIn struct {
	streamRef
	ImageSelectorType string            `json:"ImageSelectorType"`
	StartTimestamp    *awsapi.Time      `json:"StartTimestamp"`
	EndTimestamp      *awsapi.Time      `json:"EndTimestamp"`
	SamplingInterval  *int64            `json:"SamplingInterval"`
	Format            string            `json:"Format"`
	FormatConfig      map[string]string `json:"FormatConfig"`
	WidthPixels       *int              `json:"WidthPixels"`
	HeightPixels      *int              `json:"HeightPixels"`
	MaxResults        *int64            `json:"MaxResults"`
	NextToken         string            `json:"NextToken"`
}

type imageOut struct {
	TimeStamp    awsapi.Time `json:"TimeStamp"`
	Error        string      `json:"Error,omitempty"`
	ImageContent string      `json:"ImageContent,omitempty"` // base64: the model types it as a string
}

// getImages is GetImages (kinesis-video-archived-media): the request is validated completely
// before the stream is looked up, as AWS does.
func (h *Handler) getImages(ctx context.Context, in *getImagesIn) (any, error) {
	kind, err := timeKind("ImageSelectorType", in.ImageSelectorType)
	if err != nil {
		return nil, err
	}
	if in.StartTimestamp == nil || in.EndTimestamp == nil {
		return nil, awsapi.InvalidArgument("StartTimestamp and EndTimestamp are required")
	}
	gi := imagegen.GetImagesInput{Kind: kind, Start: in.StartTimestamp.Time, End: in.EndTimestamp.Time,
		SamplingInterval: in.SamplingInterval, Format: in.Format, FormatConfig: in.FormatConfig,
		WidthPixels: in.WidthPixels, HeightPixels: in.HeightPixels, MaxResults: in.MaxResults, NextToken: in.NextToken}
	if err := gi.Validate(); err != nil {
		return nil, err
	}
	st, err := h.streams.Describe(ctx, in.ref())
	if err != nil {
		return nil, err
	}
	imgs, next, err := h.images.GetImages(ctx, st, gi)
	if err != nil {
		return nil, err
	}
	out := make([]imageOut, len(imgs))
	for i, img := range imgs {
		out[i] = imageOut{TimeStamp: awsapi.Time{Time: img.Time.Truncate(time.Millisecond)}, Error: img.Error}
		if img.Content != nil {
			out[i].ImageContent = base64.StdEncoding.EncodeToString(img.Content)
		}
	}
	return struct {
		Images    []imageOut `json:"Images"`
		NextToken *string    `json:"NextToken"`
	}{out, nullable(next)}, nil
}
