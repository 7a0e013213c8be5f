// Package diag is the vocabulary of `kvsd doctor`: what a background component (image
// generation, notifications) says about one stream, in plain words with a fix. Components
// implement Source; the status API (kvsapi) collects their Reports and the doctor prints them.
package diag

import (
	"context"

	"github.com/kvsd/kvsd/internal/stream"
)

// Level orders findings by how much they need attention.
type Level string

const (
	OK    Level = "OK"    // working as configured
	Info  Level = "INFO"  // a fact worth knowing (counts, destinations)
	Warn  Level = "WARN"  // likely not what the user wants, or degraded
	Error Level = "ERROR" // the feature does not work for this stream
)

// Finding is one diagnosis. Code is stable (scripts and tests match on it); Message and Fix
// are for people.
type Finding struct {
	Level   Level  `json:"Level"`
	Code    string `json:"Code"`
	Message string `json:"Message"`
	Fix     string `json:"Fix,omitempty"`
}

// Report is what one component says about a stream.
type Report struct {
	Component string    `json:"Component"`
	Findings  []Finding `json:"Findings"`
}

// Source diagnoses a stream. It must not fail the whole status call: problems reading its own
// state are findings too.
type Source interface {
	Diagnose(ctx context.Context, st *stream.Stream) Report
}

// Images counts a stream's generated images since kvsd started, as numbers for programs (the
// IMAGES_DELIVERED finding says the same in words).
type Images struct {
	Delivered uint64 `json:"Delivered"` // stored at the destination
	Pending   int    `json:"Pending"`   // rendered, not stored yet (waiting or retried)
}

// ImageCounter is a Source that also counts a stream's images; the status API answers its
// counts as Images.
type ImageCounter interface {
	ImageCounts(st *stream.Stream) Images
}
