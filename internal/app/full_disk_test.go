package app_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/app"
	"github.com/kvsd/kvsd/internal/kvstest"
)

// inTmpfs is set in the copy of the test binary that runs inside its own mount namespace.
const inTmpfs = "KVSD_TEST_FULL_DISK_TMPFS"

// runInTmpfs runs the test t names again, in a new mount namespace (and user namespace when
// not root) with a tmpfs of size bytes mounted at the path it returns, so that the test can
// fill a real file system without touching the machine's. In the parent it returns "" once the
// child has passed (or fails with its output); the child gets the mount point.
func runInTmpfs(t *testing.T, size string) string {
	t.Helper()
	if dir := os.Getenv(inTmpfs); dir != "" {
		// Keep the mount to this namespace, then mount the small file system.
		require.NoError(t, syscall.Mount("none", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""))
		mountTmpfs(t, dir, size)
		return dir
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), inTmpfs+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	if os.Getuid() != 0 {
		cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}
	}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) || err == nil {
		require.NoError(t, err, "%s", out)
		require.Contains(t, string(out), "--- PASS: "+t.Name())
		return ""
	}
	t.Skipf("no mount namespace for a tmpfs here (%v)", err)
	return ""
}

// mountTmpfs mounts a tmpfs of size at dir (only inside runInTmpfs's namespace).
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o700))
	require.NoError(t, syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"))
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
}

// fill writes zeros to path until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			return
		}
	}
}

// TestFullDiskResumes: on a real file system that fills up (a 48 MiB tmpfs), PutMedia answers
// ERROR 5001 and kvsd stays up; the doctor and the log say the disk is full and how much room
// the data dir has; once space comes back, the producer (kvsd put, which resends after 5001)
// goes on by itself and every fragment is persisted, and the images and notifications that
// waited are delivered.
func TestFullDiskResumes(t *testing.T) {
	dir := runInTmpfs(t, "48m")
	if dir == "" {
		return
	}
	var mu sync.Mutex
	events := map[string]bool{} // fragment numbers of PERSISTED notifications
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m map[string]any
		require.NoError(t, json.Unmarshal(body, &m))
		if m["NotificationType"] == "PERSISTED" {
			mu.Lock()
			events[m["FragmentNumber"].(string)] = true
			mu.Unlock()
		}
	}))
	defer hook.Close()
	var logs lockedBuffer
	defer func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	}()
	// The images' local folder is a file system of its own, to fill and free on its own.
	dataDir := filepath.Join(dir, "data")
	mountTmpfs(t, filepath.Join(dataDir, "buckets"), "2m")
	srv := kvstest.Start(t, kvstest.Options{DataDir: dataDir, LogTo: &logs, Configure: func(c *app.Config) {
		c.DiskCheckInterval = 20 * time.Millisecond
		c.ImageRetryMax = 200 * time.Millisecond
	}})
	srv.CreateStream(t, "cam", 24)
	srv.ConfigureImages(t, "cam", kvstest.ImageConfig("s3://images/cam", 1000, nil))
	status, _, body := srv.Call(t, "updateNotificationConfiguration", map[string]any{"StreamName": "cam",
		"NotificationConfiguration": map[string]any{"Status": "ENABLED", "DestinationConfig": map[string]any{"Uri": hook.URL + "/events"}}})
	require.Equal(t, 200, status, string(body))
	clip, _ := kvstest.H264File(t, "6") // 5 or 6 fragments of about 1 s (keyframes every 0.4 s)
	start := time.Now().Add(-time.Hour).Truncate(time.Second)

	filler, imageFiller := filepath.Join(dir, "filler"), filepath.Join(dataDir, "buckets", "filler")
	fill(t, imageFiller)
	fill(t, filler)
	type result struct {
		out  string
		code int
	}
	done := make(chan result, 1)
	go func() {
		out, code := kvstest.Put(t, srv.URL, "", nil, false, "--stream", "cam", "--fast", "--fragment-duration", "1s",
			"--image-generation", "--notify", "--start-time", start.Format(time.RFC3339), clip)
		done <- result{out, code}
	}()
	require.Eventually(t, func() bool { return metricSum(t, srv.URL, "kvsd_ingest_errors_total", `code="ARCHIVAL_ERROR"`) >= 1 },
		20*time.Second, 20*time.Millisecond, "a full disk answers ERROR 5001")
	require.Eventually(t, func() bool { return metricSum(t, srv.URL, "kvsd_disk_full") == 1 }, 5*time.Second, 10*time.Millisecond)
	doc, code := kvstest.Doctor(t, srv.URL, "cam")
	require.Equal(t, 1, code, doc)
	require.Contains(t, doc, "[DISK_FULL]")
	require.Contains(t, doc, "the disk is full since")
	require.Contains(t, doc, "the data dir "+dataDir+" is on a file system of 48.0 MiB with ")
	require.Contains(t, doc, "fix: Free space on that file system")
	require.Contains(t, logs.String(), "the disk is full")
	require.Contains(t, logs.String(), "filesystem_size=\"48.0 MiB\"")
	select {
	case r := <-done:
		t.Fatalf("kvsd put gave up on a full disk: %d %s", r.code, r.out)
	default:
	}

	require.NoError(t, os.Remove(filler))
	var r result
	select {
	case r = <-done:
	case <-time.After(45 * time.Second):
		t.Fatal("kvsd put did not finish after the disk had room again")
	}
	require.Equal(t, 0, r.code, r.out)
	frags := srv.ListFragments(t, "cam")
	require.GreaterOrEqual(t, len(frags), 5)
	require.Contains(t, r.out, fmt.Sprintf("%d of %d fragments persisted", len(frags), len(frags)))
	require.Eventually(t, func() bool { return metricSum(t, srv.URL, "kvsd_disk_full") == 0 }, 5*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "the disk has room again") }, 5*time.Second, 10*time.Millisecond)

	// The notifications of every fragment arrive, and image delivery fails on the images' full
	// disk until it has room too.
	require.Eventually(t, func() bool { return metricSum(t, srv.URL, "kvsd_images_failed_total", `stream="cam"`) >= 1 },
		20*time.Second, 20*time.Millisecond, "image delivery fails on the full disk")
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, f := range frags {
			if !events[f.Number] {
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond, "notifications catch up")
	doc, _ = kvstest.Doctor(t, srv.URL, "cam")
	require.Contains(t, doc, "[DISK_SPACE]")
	require.NotContains(t, doc, "[DISK_FULL]")

	// The images waited for their own full disk, and come once it has room.
	require.Positive(t, metricSum(t, srv.URL, "kvsd_images_failed_total", `stream="cam"`), "image delivery failed on the full disk")
	require.Zero(t, metricSum(t, srv.URL, "kvsd_images_delivered_total", `stream="cam"`))
	require.NoError(t, os.Remove(imageFiller))
	require.Eventually(t, func() bool {
		return metricSum(t, srv.URL, "kvsd_images_delivered_total", `stream="cam"`) >= float64(len(frags))
	}, 30*time.Second, 20*time.Millisecond, "images catch up")
}

// lockedBuffer is a log destination read while kvsd writes to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
