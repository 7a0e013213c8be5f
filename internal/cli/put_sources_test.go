//go:build cgo

package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kvsd/kvsd/internal/cli"
	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/rtspsrc/rtsptest"
	"github.com/stretchr/testify/require"
)

// srcPut runs kvsd put against srv and returns its exit status and output.
func srcPut(t *testing.T, srv *kvstest.Server, args ...string) (int, string) {
	t.Helper()
	// The AWS configuration loader reads the process environment.
	env := map[string]string{"AWS_ACCESS_KEY_ID": kvstest.AccessKeyID, "AWS_SECRET_ACCESS_KEY": kvstest.SecretAccessKey,
		"AWS_SESSION_TOKEN": "", "AWS_PROFILE": "", "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_CONFIG_FILE": filepath.Join(t.TempDir(), "none"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(t.TempDir(), "none")}
	for k, v := range env {
		t.Setenv(k, v)
	}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	full := append([]string{"--endpoint-url", srv.URL, "--region", kvstest.Region, "--create"}, args...)
	code := cli.Put(ctx, full, cli.PutEnv{Getenv: func(k string) string { return env[k] }, Stdin: strings.NewReader(""),
		Stdout: &out, Stderr: &out})
	return code, out.String()
}

var persistedAll = regexp.MustCompile(`: (\d+) of (\d+) fragments persisted \([^,]*, (\d+) frames\)`)

// srcPersisted checks kvsd put's summary: every fragment persisted, frames frames.
func srcPersisted(t *testing.T, code int, out string, frames int) {
	t.Helper()
	m := persistedAll.FindStringSubmatch(out)
	if code != 0 || m == nil || m[1] != m[2] || m[1] == "0" || (frames > 0 && m[3] != fmt.Sprint(frames)) {
		t.Fatalf("exit %d, want every fragment persisted and %d frames:\n%s", code, frames, out)
	}
}

func TestPutSourcesFromTheCommandLine(t *testing.T) {
	srv := kvstest.Start(t)
	t.Run("MP4", func(t *testing.T) {
		code, out := srcPut(t, srv, "--stream", "mp4", "--fast", kvstest.SourceFile(t, "clip.mp4", kvstest.X264...))
		srcPersisted(t, code, out, 50)
	})
	t.Run("raw H.264", func(t *testing.T) {
		code, out := srcPut(t, srv, "--stream", "h264", "--fast", kvstest.SourceFile(t, "clip.h264", append(kvstest.X264, "-f", "h264")...))
		srcPersisted(t, code, out, 50)
	})
	t.Run("raw H.264 at --fps 50", func(t *testing.T) {
		// 50 frames at 50 fps span one second of producer time, not the two of the 25-fps default.
		start := time.Now().UTC().Add(-time.Hour).Truncate(time.Second) // within --max-clock-skew of any day's clock
		code, out := srcPut(t, srv, "--stream", "h264-50", "--fast", "--fps", "50", "--start-time", start.Format(time.RFC3339),
			kvstest.SourceFile(t, "clip50.h264", append(kvstest.X264, "-f", "h264")...))
		srcPersisted(t, code, out, 50)
		frags := srv.ListFragments(t, "h264-50")
		require.NotEmpty(t, frags)
		first, last := frags[0], frags[len(frags)-1]
		require.Equal(t, start.UnixMilli(), first.Producer)
		require.InDelta(t, 980, last.Producer+last.Length-first.Producer, 20, "producer time spanned by 50 frames at 50 fps")
	})
	t.Run("testsrc", func(t *testing.T) {
		code, out := srcPut(t, srv, "--stream", "pattern", "--duration", "2500ms", "testsrc")
		srcPersisted(t, code, out, 0)
	})
	t.Run("RTSP", func(t *testing.T) {
		track, frames, err := rtsptest.Load(context.Background(), kvstest.SourceFile(t, "cam.mp4", kvstest.X264...))
		if err != nil {
			t.Fatal(err)
		}
		cam, err := rtsptest.Start(rtsptest.Config{Track: track, Frames: frames, Loop: true})
		if err != nil {
			t.Fatal(err)
		}
		defer cam.Close()
		code, out := srcPut(t, srv, "--stream", "cam", "--duration", "2500ms", cam.URL())
		srcPersisted(t, code, out, 0)
	})
	t.Run("other codecs refused in plain words", func(t *testing.T) {
		code, out := srcPut(t, srv, "--stream", "avi", kvstest.SourceFile(t, "x.avi", "-c:v", "mpeg4"))
		if code == 0 || !strings.Contains(out, "kvsd streams H.264/H.265; x.avi is MPEG-4 Part 2") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})
}
