package kvsapi

import (
	"context"

	"github.com/kvsd/kvsd/internal/diag"
)

// StatusOperation is kvsd's own status API behind `kvsd doctor`: POST /kvsdStreamStatus with
// {"StreamName"|"StreamARN"}, SigV4-signed and answered with AWS-shaped errors like every KVS
// operation. Each diag.Source in Config.Status (image generation, notifications …) adds its
// report.
const StatusOperation = "kvsdStreamStatus"

// StreamStatus is the answer of StatusOperation.
type StreamStatus struct {
	StreamName           string            `json:"StreamName"`
	StreamARN            string            `json:"StreamARN"`
	Status               string            `json:"Status"`
	DataRetentionInHours int               `json:"DataRetentionInHours"`
	Tags                 map[string]string `json:"Tags"`
	Reports              []diag.Report     `json:"Reports"`
	// Images counts the images generated since kvsd started, from a Source that counts them
	// (diag.ImageCounter, the image generator); absent without one.
	Images *diag.Images `json:"Images,omitempty"`
}

func (h *Handler) streamStatus(ctx context.Context, in *streamRef) (any, error) {
	st, err := h.streams.Describe(ctx, in.ref())
	if err != nil {
		return nil, err
	}
	out := StreamStatus{StreamName: st.Name, StreamARN: st.ARN, Status: string(st.Status),
		DataRetentionInHours: st.RetentionHours, Tags: st.Tags, Reports: []diag.Report{}}
	for _, src := range h.status {
		out.Reports = append(out.Reports, src.Diagnose(ctx, st))
		if c, ok := src.(diag.ImageCounter); ok {
			n := c.ImageCounts(st)
			out.Images = &n
		}
	}
	return out, nil
}
