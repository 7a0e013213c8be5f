package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kvsd/kvsd/internal/imaging"
	"github.com/kvsd/kvsd/internal/media"
)

// tinyVideo is small enough for ffmpeg to make in about a second: 4 one-second fragments
// at 640×360, so that the 320×240 output is still scaled.
var tinyVideo = videoSpec{Name: "test-360p-g30-4s", FPS: 30, GOP: 30, Interval: time.Second, Args: []string{
	"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-t", "4",
	"-c:v", "libx264", "-preset", "ultrafast", "-bf", "0", "-b:v", "500k",
	"-g", "30", "-keyint_min", "30", "-sc_threshold", "0",
	"-cluster_size_limit", "5000000", "-cluster_time_limit", "5000",
}}

// TestSmoke runs the whole benchmark at toy size and checks that the report comes out whole.
// The numbers of a toy run on a test machine say nothing, so they are not checked.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ffmpeg about ten times")
	}
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("needs ffmpeg (make setup installs it)")
	}
	if _, err := media.NewDecoder(imaging.CodecH264, nil); errors.Is(err, imaging.ErrUnavailable) {
		t.Skip("(d) needs a build with cgo")
	}
	cfg := config{cacheDir: t.TempDir(), workDir: t.TempDir(), rounds: 2, video: &tinyVideo, latencyStreams: 2}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, log bytes.Buffer
	if err := runBench(ctx, cfg, &out, &log, "test"); err != nil {
		t.Fatalf("%v\nprogress:\n%s", err, log.String())
	}
	report := out.String()
	for _, want := range []string{
		"4 fragments of 1s", "images: 4, one per 1s, 320×240 JPEG (quality 80",
		"| (a) | kvsd, whole path: stored fragments → images in the local bucket | 4 |",
		"| (a0) | (a) with the media stored in clear (no encryption at rest) | 4 |", "| encryption at rest: (a) ÷ (a0), reported |",
		"| (b) | `ffmpeg -threads 1 -skip_frame nokey", "| (c) | ffmpeg spawned", "| (d) | media package loop", "| (e) | (d) decoding exactly",
		"(a) inside the media package, per image:", "(d) inside the media package, per image:",
		"4 packets decoded (0 of them keyframes without the deblocking filter), 116 skipped", "## Targets", "| (a) ≥ 10 × (c) |", "(c) |",
		"| PERSISTED → object visible, p99 ≤ 500 ms with 2 streams |", "## Delivery latency", "| 8 |",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	t.Log("\n" + report)
}

// tinySeed is the seed workload's shape at toy size: 3 s of 640×360, 30 fps, a keyframe
// every 25 frames, sampled every 200 ms; the two encodes of the seed workload.
func tinySeed(name string, encoder ...string) videoSpec {
	args := []string{"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-t", "3.3333", "-c:v", "libx264"}
	args = append(args, encoder...)
	return videoSpec{Name: name, FPS: 30, GOP: 25, Interval: 200 * time.Millisecond, Args: append(args,
		"-b:v", "300k", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
		"-cluster_size_limit", "5000000", "-cluster_time_limit", "5000")}
}

// TestSmokeSeed runs the seed workload's section at toy size, both encodes: every contender
// makes the 200-ms images (5 a second across 833-ms fragments), and the B-frame encode's
// loops skip the B-frames no sample shows.
func TestSmokeSeed(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ffmpeg")
	}
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("needs ffmpeg (make setup installs it)")
	}
	if _, err := media.NewDecoder(imaging.CodecH264, nil); errors.Is(err, imaging.ErrUnavailable) {
		t.Skip("needs a build with cgo")
	}
	cfg := config{cacheDir: t.TempDir(), workDir: t.TempDir(), rounds: 1, seed: []videoSpec{
		tinySeed("test-seed-ultrafast", "-preset", "ultrafast", "-tune", "zerolatency"),
		tinySeed("test-seed-cabac-bf3", "-preset", "faster", "-profile:v", "high", "-coder", "cabac", "-bf", "3"),
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, log bytes.Buffer
	if err := runBench(ctx, cfg, &out, &log, "test"); err != nil {
		t.Fatalf("%v\nprogress:\n%s", err, log.String())
	}
	report := out.String()
	for _, want := range []string{
		"# Seed workload: 5 images per second from every frame (test-seed-ultrafast)",
		"# Seed workload: 5 images per second from every frame (test-seed-cabac-bf3)",
		"4 fragments of 833ms", "images: 17, one per 200ms on the video's clock",
		"| (a) | kvsd, whole path", "| (f) | `ffmpeg -threads 1 -i f.mkv -vf fps=5,scale=320:240 -q:v 4 out%04d.jpg` | 17 |",
		"| (d) | media package loop", "| (a) ≥ 1.5 × (f) |", "| (a) ≥ 90 % of (d) |", "such cameras with kvsd",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	t.Log("\n" + report)
}

func TestFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"-rounds", "0"}, &out, &errOut); code != 2 {
		t.Errorf("-rounds 0: exit %d, want 2", code)
	}
	if code := run([]string{"-workload", "hourly"}, &out, &errOut); code != 2 {
		t.Errorf("unknown workload: exit %d, want 2", code)
	}
	if code := run([]string{"-nonsense"}, &out, &errOut); code != 2 {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
}
