package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kvsd/kvsd/bench/internal/kvsdproc"
	"github.com/kvsd/kvsd/bench/internal/mkvload"
)

// TestMain lets the test binary stand in for this program's child modes (the baseline server
// and kvsd), which the benchmark starts by re-executing itself.
func TestMain(m *testing.M) {
	if os.Getenv(kvsdproc.ChildEnv) != "" {
		os.Exit(run(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// TestSmoke runs every section at toy size against kvsd (in this test binary's kvsd child
// mode, so no go build; the throughput comparison with media in clear builds that one) and
// checks that the report comes out whole. Targets are not checked:
// toy sizes on a busy test machine say nothing about them.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers and streams for ~15 s")
	}
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("needs ffmpeg (make setup installs it)")
	}
	cfg := config{
		cacheDir: t.TempDir(), workDir: t.TempDir(), kvsdBin: "self", media: mkvload.Tiny, compareClear: true,
		streams: []int{1, 3}, tpDuration: time.Second,
		cameras: 4, camDuration: 4 * time.Second,
		listDays: 0.25, listWindows: 5, listWarmup: 1,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, log bytes.Buffer
	results, err := runBench(ctx, cfg, &out, &log, "test")
	if err != nil {
		t.Fatalf("%v\nreport:\n%s\nprogress:\n%s", err, out.String(), log.String())
	}
	report := out.String()
	for _, want := range []string{"## 1. Aggregate ingest throughput", "| 3       | kvsd", "## 2. 4 simulated real-time cameras",
		"fragment complete → PERSISTED", "| 0 / 0 / 0 ", "## 3. ListFragments", "per 1-hour window (1800 fragments", "## Targets",
		"| 3       | kvsd, media in clear", "encryption at rest, encrypted/clear (reported)", "media encrypted at rest"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if len(results) != 2+2+2+1 {
		t.Errorf("%d target results, want 7", len(results))
	}
	if strings.Contains(report, "- errors:") {
		t.Errorf("the report lists errors:\n%s", report)
	}
	t.Log("\n" + report)
}
