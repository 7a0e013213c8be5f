package main

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/kvsd/kvsd/bench/internal/kvsdproc"
)

// TestMain lets the test binary run as kvsd (serve and put) for -kvsd self.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(kvsdproc.Serve(os.Args[1:], ""))
	}
	os.Exit(m.Run())
}

// TestSmoke runs both sources at toy size and checks that the report comes
// out whole with every frame persisted. The 5 % target is not checked: a
// toy run on a busy test machine says nothing about it.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("streams for ~10 s")
	}
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("needs ffmpeg (make setup installs it)")
	}
	var out, log bytes.Buffer
	code := run([]string{"-kvsd", "self", "-duration", "4s", "-size", "320x240", "-bitrate", "300000",
		"-cache-dir", t.TempDir(), "-work-dir", t.TempDir()}, &out, &log)
	if code != 0 && code != 3 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), log.String())
	}
	report := out.String()
	for _, want := range []string{"| file (MP4, real time) |", "| RTSP camera", "kvsd put: file: 2 of 2 fragments persisted"} {
		if !strings.Contains(report, want) {
			t.Errorf("the report lacks %q:\n%s\n%s", want, report, log.String())
		}
	}
	// The camera's stream starts when kvsd put has connected: at least one
	// fragment, all persisted.
	if m := regexp.MustCompile(`kvsd put: rtsp: ([1-9]) of ([1-9]) fragments persisted`).FindStringSubmatch(report); m == nil || m[1] != m[2] {
		t.Errorf("the RTSP stream was not persisted whole:\n%s", report)
	}
}
