package kvsapi

import (
	"context"
	"net/http"

	"github.com/kvsd/kvsd/internal/awsapi"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/playback"
)

// mediaContentType is what KVS answers for GetMedia and GetMediaForFragmentList.
const mediaContentType = "video/webm"

type fragmentOut struct {
	FragmentNumber               string      `json:"FragmentNumber"`
	FragmentSizeInBytes          int64       `json:"FragmentSizeInBytes"`
	ProducerTimestamp            awsapi.Time `json:"ProducerTimestamp"`
	ServerTimestamp              awsapi.Time `json:"ServerTimestamp"`
	FragmentLengthInMilliseconds int64       `json:"FragmentLengthInMilliseconds"`
}

func toFragmentOut(f *fragment.Fragment) fragmentOut {
	return fragmentOut{FragmentNumber: f.Number, FragmentSizeInBytes: f.Size,
		ProducerTimestamp: awsapi.Time{Time: f.ProducerTime}, ServerTimestamp: awsapi.Time{Time: f.ServerTime},
		FragmentLengthInMilliseconds: f.Duration.Milliseconds()}
}

type timestampRange struct {
	StartTimestamp *awsapi.Time `json:"StartTimestamp"`
	EndTimestamp   *awsapi.Time `json:"EndTimestamp"`
}

// timeKind maps a selector type name to a timeline.
func timeKind(field, name string) (fragstore.TimeKind, error) {
	switch name {
	case "PRODUCER_TIMESTAMP":
		return fragstore.ProducerTime, nil
	case "SERVER_TIMESTAMP":
		return fragstore.ServerTime, nil
	}
	return 0, awsapi.InvalidArgument("%s %q must be PRODUCER_TIMESTAMP or SERVER_TIMESTAMP", field, name)
}

// archivedMedia returns the JSON operations of kinesis-video-archived-media.
func (h *Handler) archivedMedia() map[string]opFunc {
	pb := h.playback
	return map[string]opFunc{
		"listFragments": decode(func(ctx context.Context, in *struct {
			streamRef
			MaxResults       *int   `json:"MaxResults"`
			NextToken        string `json:"NextToken"`
			FragmentSelector *struct {
				FragmentSelectorType string          `json:"FragmentSelectorType"`
				TimestampRange       *timestampRange `json:"TimestampRange"`
			} `json:"FragmentSelector"`
		}) (any, error) {
			li := playback.ListInput{Ref: in.ref(), MaxResults: in.MaxResults, Token: in.NextToken}
			if fs := in.FragmentSelector; fs != nil {
				kind, err := timeKind("FragmentSelector.FragmentSelectorType", fs.FragmentSelectorType)
				if err != nil {
					return nil, err
				}
				r := fs.TimestampRange
				if r == nil || r.StartTimestamp == nil || r.EndTimestamp == nil {
					return nil, awsapi.InvalidArgument("FragmentSelector.TimestampRange needs StartTimestamp and EndTimestamp")
				}
				li.Selector = &playback.Selector{Kind: kind, From: r.StartTimestamp.Time, To: r.EndTimestamp.Time}
			}
			frags, next, err := pb.ListFragments(ctx, li)
			if err != nil {
				return nil, err
			}
			out := make([]fragmentOut, 0, len(frags))
			for _, f := range frags {
				out = append(out, toFragmentOut(f))
			}
			return struct {
				Fragments []fragmentOut `json:"Fragments"`
				NextToken *string       `json:"NextToken"`
			}{out, nullable(next)}, nil
		}),
	}
}

// DescribeFragmentsOperation is kvsd's own: POST /kvsdDescribeFragments with
// {"StreamName"|"StreamARN", "FragmentNumbers": [1–1000 numbers]} answers {"Fragments": [...]}
// with ListFragments' fields plus "Tags": [{"Name", "Value"}], the producer's fragment tags,
// which ListFragments does not carry (the console shows them on hover).
const DescribeFragmentsOperation = "kvsdDescribeFragments"

type tagOut struct {
	Name  string `json:"Name"`
	Value string `json:"Value"`
}

func (h *Handler) describeFragments(ctx context.Context, in *struct {
	streamRef
	FragmentNumbers []string `json:"FragmentNumbers"`
}) (any, error) {
	frags, err := h.playback.DescribeFragments(ctx, in.ref(), in.FragmentNumbers)
	if err != nil {
		return nil, err
	}
	type described struct {
		fragmentOut
		Tags []tagOut `json:"Tags"`
	}
	out := make([]described, len(frags))
	for i, f := range frags {
		tags := make([]tagOut, len(f.Tags))
		for j, t := range f.Tags {
			tags[j] = tagOut{Name: t.Name, Value: t.Value}
		}
		out[i] = described{toFragmentOut(f), tags}
	}
	return struct {
		Fragments []described `json:"Fragments"`
	}{out}, nil
}

// getMediaForFragmentList streams the listed fragments as MKV chunks.
func (h *Handler) getMediaForFragmentList(w http.ResponseWriter, r *http.Request) {
	var in struct {
		streamRef
		Fragments []string `json:"Fragments"`
	}
	body, _ := readBody(r)
	if err := awsapi.Decode(body, &in); err != nil {
		h.fail(w, r, err)
		return
	}
	run, err := h.playback.FragmentList(r.Context(), in.ref(), in.Fragments)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", mediaContentType)
	w.WriteHeader(http.StatusOK)
	if err := run(w); err != nil {
		h.logger(r.Context()).Warn("getMediaForFragmentList ended early", "err", err)
	}
}
