package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kvsd/kvsd/bench/internal/kvsdproc"
)

// TestMain lets the test binary stand in for this program's kvsd child mode, which the
// benchmark starts by re-executing itself.
func TestMain(m *testing.M) {
	if os.Getenv(kvsdproc.ChildEnv) != "" {
		os.Exit(run(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// tinyVideo is small enough for ffmpeg to make in well under a second; 2-second clusters like
// the real one.
var tinyVideo = mediaSpec{Name: "test-240p-g60-8s", Fragments: 4, Args: []string{
	"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "8",
	"-c:v", "libx264", "-preset", "ultrafast", "-b:v", "500k",
	"-g", "60", "-keyint_min", "60", "-sc_threshold", "0",
}}

// TestSmoke runs every section at toy size against kvsd (in this test binary's kvsd child
// mode, so no go build) and checks that the report comes out whole. Targets are not checked:
// toy sizes on a busy test machine say nothing about them.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kvsd and streams for ~20 s")
	}
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (make setup installs it)", tool)
		}
	}
	cfg := config{
		cacheDir: t.TempDir(), workDir: t.TempDir(), kvsdBin: "self", media: tinyVideo,
		clipFragments: 8, smallClip: 2, clipRounds: 1,
		hlsClients: 2, hlsDuration: time.Second,
		liveStreams: 3, liveDuration: 6 * time.Second,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, log bytes.Buffer
	results, err := runBench(ctx, cfg, &out, &log, "test")
	if err != nil {
		t.Fatalf("%v\nreport:\n%s\nprogress:\n%s", err, out.String(), log.String())
	}
	report := out.String()
	for _, want := range []string{"## 1. GetClip of 8 fragments", "| kvsd GetClip (8 fragments)", "| ffmpeg -c copy",
		"| GetClip of 2 fragments", "## 2. Serving HLS", "| HLS: getMP4MediaFragment.mp4", "| HLS/raw",
		"## 3. Live", "PERSISTED ack → playlist answer listing it", "| 0 / 0 ", "## Targets"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if len(results) != 4 {
		t.Errorf("%d target results, want 4", len(results))
	}
	if strings.Contains(report, "- errors:") {
		t.Errorf("the report lists errors:\n%s", report)
	}
	t.Log("\n" + report)
}

// The paced body hands out the stream whole and in order, up to the Clusters asked for.
func TestPacedBody(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("needs ffmpeg (make setup installs it)")
	}
	raw, _, err := makeMedia(context.Background(), tinyVideo, 2, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m, err := parseMKV(raw)
	if err != nil {
		t.Fatal(err)
	}
	if m.Clusters != 8 || m.FragDur.Round(10*time.Millisecond) != 2*time.Second {
		t.Fatalf("%d clusters of %s; want 8 of 2s", m.Clusters, m.FragDur)
	}
	body, err := io.ReadAll(newPacedBody(context.Background(), m, time.Now().Add(-time.Hour), 8))
	if err != nil || !bytes.Equal(body, raw) {
		t.Fatalf("whole stream: %d of %d bytes, %v", len(body), len(raw), err)
	}
	body, err = io.ReadAll(newPacedBody(context.Background(), m, time.Now().Add(-time.Hour), 3))
	if err != nil {
		t.Fatal(err)
	}
	part, err := parseMKV(body)
	if err != nil || part.Clusters != 3 {
		t.Fatalf("3 clusters asked: %v, %d clusters", err, part.Clusters)
	}
}
