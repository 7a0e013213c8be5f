package app_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/kvstest"
)

// readmeBlocks returns the ```sh blocks of README.md that follow the line starting with after,
// each as its lines.
func readmeBlocks(t *testing.T, after string, n int) [][]string {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(data), "\n"+after)
	require.True(t, ok, "README.md has no line starting with %q", after)
	var out [][]string
	for len(out) < n {
		_, block, ok := strings.Cut(rest, "```sh\n")
		require.True(t, ok, "README.md: fewer than %d ```sh blocks after %q", n, after)
		body, tail, ok := strings.Cut(block, "```")
		require.True(t, ok)
		out = append(out, strings.Split(strings.TrimSpace(body), "\n"))
		rest = tail
	}
	return out
}

// TestBackupRecipe runs README.md's backup recipe, line by line, against a kvsd process that
// ingests meanwhile (stopping and starting it where the recipe says), then its restore steps,
// and plays every fragment the backup holds from a kvsd on the restored copy; what was stored
// after the backup is not in it.
func TestBackupRecipe(t *testing.T) {
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Skip("the recipe uses rsync")
	}
	bin := buildKVSD(t)
	work := t.TempDir()
	data := filepath.Join(work, "data")
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	var proc *process
	startKvsd := func(dir string) *kvstest.Server {
		proc = startProcess(t, bin, dir, nil, nil)
		return proc.server()
	}
	srv := startKvsd(data)
	srv.CreateStream(t, "cam", 24)
	var backedUp []string
	put := func(secs int, at time.Time) []string {
		return kvstest.Persisted(t, srv.PutMedia(t, "cam", bytes.NewReader(kvstest.GreyMedia(t, secs, at))))
	}
	backedUp = append(backedUp, put(3, start)...)

	run := func(line string) {
		t.Helper()
		cmd := exec.Command("bash", "-c", line)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s\n%s", line, out)
	}
	blocks := readmeBlocks(t, "**Backups.**", 2)
	rsyncs := 0
	for _, line := range blocks[0] {
		switch {
		case strings.HasPrefix(line, "# stop kvsd"):
			require.NoError(t, proc.cmd.Process.Signal(syscall.SIGTERM))
			require.NoError(t, proc.cmd.Wait())
		case strings.HasPrefix(line, "# start kvsd"):
			srv = startKvsd(data)
		case strings.HasPrefix(line, "#"):
		default:
			run(line)
			if strings.HasPrefix(line, "rsync") {
				rsyncs++
				if rsyncs == 1 {
					// Ingest goes on while the media is copied: these come with the second rsync.
					backedUp = append(backedUp, put(2, start.Add(10*time.Second))...)
				}
			}
		}
	}
	require.Equal(t, 2, rsyncs)
	after := put(2, start.Add(20*time.Second)) // after the backup: not in it
	require.NoError(t, proc.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, proc.cmd.Wait())

	for _, line := range blocks[1] {
		if !strings.HasPrefix(line, "#") {
			run(line)
		}
	}
	srv = startKvsd(filepath.Join(work, "restored"))
	listed := srv.ListFragments(t, "cam")
	require.Len(t, listed, len(backedUp), "the backup holds what was stored before the catalog was copied, and nothing after")
	status, _, body := srv.Call(t, "getMediaForFragmentList", map[string]any{"StreamName": "cam", "Fragments": backedUp})
	require.Equal(t, 200, status, string(body))
	require.NotContains(t, string(body), "AWS_KINESISVIDEO_ERROR_CODE")
	require.Equal(t, len(backedUp), strings.Count(string(body), "AWS_KINESISVIDEO_FRAGMENT_NUMBER"))
	status, _, _ = srv.Call(t, "getMediaForFragmentList", map[string]any{"StreamName": "cam", "Fragments": after[:1]})
	require.Equal(t, 404, status)
}
