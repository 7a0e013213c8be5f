package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kvsd/kvsd/bench/internal/kvsdproc"
	"github.com/kvsd/kvsd/bench/internal/mkvload"
)

// TestMain lets the test binary stand in for this program's baseline server, which the
// benchmark starts by re-executing itself.
func TestMain(m *testing.M) {
	if os.Getenv(kvsdproc.ChildEnv) != "" {
		os.Exit(run(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// TestSmoke runs every section at toy size against the real pieces (versitygw, a fresh
// PostgreSQL database, HAProxy, kvsd built from this tree) and checks that the report comes
// out whole, that nothing failed and that the failover lost nothing. The latency and
// throughput targets are not checked: toy sizes on a busy test machine say nothing about them.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kvsd, starts versitygw, PostgreSQL, HAProxy and three nodes, ~1 minute")
	}
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("needs ffmpeg (make setup installs it)")
	}
	cfg := config{
		cacheDir: t.TempDir(), workDir: t.TempDir(), media: mkvload.Tiny,
		streams: []int{1, 3}, replayDuration: time.Second, nodes: 3,
		cameras: 4, camDuration: 4 * time.Second, indexRows: 2500, listWindows: 5, listWarmup: 1,
		failStreams: 3, kills: 1,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var out, log bytes.Buffer
	results, err := runBench(ctx, cfg, &out, &log, "test")
	if err != nil {
		if strings.Contains(err.Error(), "not installed") || strings.Contains(err.Error(), "not reachable") {
			t.Skip(err)
		}
		t.Fatalf("%v\nreport:\n%s\nprogress:\n%s", err, out.String(), log.String())
	}
	report := out.String()
	for _, want := range []string{"## 1. Replay", "| 3       | kvsd, scaled node", "kvsd, embedded single node", "baseline (S3 PUT",
		"## 2. 4 real-time cameras through the front door of 3 nodes", "fragment complete → PERSISTED, through the front door",
		"| 0 / 0 / 0 ", "### ListFragments over a 2500-row index", "per 1-hour window (1800 fragments",
		"## 3. Failover under 3 streams", "kill -9 → first PERSISTED on another node", "## Targets"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if len(results) != 2+2+1 {
		t.Errorf("%d target results, want 5", len(results))
	}
	if strings.Contains(report, "- errors:") {
		t.Errorf("the report lists errors:\n%s", report)
	}
	if m := regexp.MustCompile(`\| ([0-9]+) / ([0-9]+) +\| 0 lost`).FindStringSubmatch(report); m == nil || m[1] == "0" || m[2] != "0" {
		t.Errorf("the failover acknowledged nothing or lost acknowledged fragments (%q):\n%s", m, report)
	}
	t.Log("\n" + report + "\nprogress:\n" + log.String())
}
