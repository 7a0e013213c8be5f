package app_test

import (
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBinaryServesAndStopsOnSIGTERM runs the real kvsd binary: /healthz answers without auth,
// SIGTERM ends it cleanly (exit 0), and a restart on the same data dir works.
func TestBinaryServesAndStopsOnSIGTERM(t *testing.T) {
	bin := buildKVSD(t)
	dir := t.TempDir()
	for range 2 {
		p := startProcess(t, bin, dir, nil, nil)
		resp, err := http.Get(p.url + "/healthz")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode)
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case err := <-done:
			require.NoError(t, err, "clean exit on SIGTERM")
		case <-time.After(20 * time.Second):
			p.kill()
			t.Fatal("kvsd did not stop within 20 s of SIGTERM")
		}
	}

	out, err := exec.Command(bin, "version").CombinedOutput()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(out), "kvsd "), string(out))
	out, err = exec.Command(bin, "frobnicate").CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), `unknown command "frobnicate"`)
	out, err = exec.Command(bin, "serve", "--region", "nowhere").CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), `--region "nowhere" is not a region name`)
}
