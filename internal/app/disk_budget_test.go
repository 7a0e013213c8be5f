package app_test

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/app"
	"github.com/kvsd/kvsd/internal/kvstest"
)

// bigClip writes an MKV of 20 one-second fragments of about 0.5 MB each (10 MB): enough to
// overflow a budget of a few MiB quickly.
func bigClip(t *testing.T, seconds int) string {
	t.Helper()
	data := kvstest.FFmpegMKV(t, "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-t", strconv.Itoa(seconds),
		"-c:v", "libx264", "-preset", "ultrafast", "-qp", "4", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
		"-f", "matroska", "-")
	path := filepath.Join(t.TempDir(), "big.mkv")
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path
}

// metricSum sums the series of name whose labels contain every one of labels.
func metricSum(t *testing.T, url, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
lines:
	for sc.Scan() {
		// The value follows the last space: label values may hold spaces (node ids do).
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		ok := i > 0
		series, value := line[:max(i, 0)], line[i+1:]
		if !ok || (series != name && !strings.HasPrefix(series, name+"{")) {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(series, l) {
				continue lines
			}
		}
		v, err := strconv.ParseFloat(value, 64)
		require.NoError(t, err)
		sum += v
	}
	return sum
}

// TestDiskBudget: kvsd serve --max-disk-usage 4MiB with kvsd put streaming 10 MB into one
// stream: every fragment is persisted (ingest goes on), the oldest are evicted and the media
// stays within the budget; the stream tagged kvsd:KeepOverBudget keeps all of its fragments.
// /metrics and the doctor count what was evicted. When only the kept stream holds video and it
// alone exceeds the budget, the doctor and the metrics say so.
func TestDiskBudget(t *testing.T) {
	const budget = 4 << 20
	srv := kvstest.Start(t, kvstest.Options{Configure: func(c *app.Config) {
		c.MaxDiskUsage = "4MiB"
		c.DiskCheckInterval = 20 * time.Millisecond
	}})
	srv.CreateStream(t, "cam", 24)
	srv.CreateStream(t, "evidence", 24)
	srv.TagStream(t, "evidence", map[string]string{"kvsd:KeepOverBudget": "true"})
	clip := bigClip(t, 20)
	start := time.Now().Add(-time.Hour).Truncate(time.Second)

	out, code := kvstest.Put(t, srv.URL, "", nil, false, "--stream", "evidence", "--fast", "--fragment-duration", "1s",
		"--start-time", start.Format(time.RFC3339), bigClip(t, 3))
	require.Equal(t, 0, code, out)
	out, code = kvstest.Put(t, srv.URL, "", nil, false, "--stream", "cam", "--fast", "--fragment-duration", "1s",
		"--start-time", start.Format(time.RFC3339), clip)
	require.Equal(t, 0, code, "every fragment persisted while the budget evicted: %s", out)
	require.Contains(t, out, "20 of 20 fragments persisted")

	// Evictions go on for a few checks after the upload (the gauge may still be a check's from
	// before the last fragments landed): wait until the media is within the budget, the
	// evictions counted did not change over the last poll (2.5 check intervals) and the
	// stream's listing agrees with them.
	var cam []kvstest.FragmentInfo
	last := -1.0
	require.Eventually(t, func() bool {
		ev := metricSum(t, srv.URL, "kvsd_disk_evicted_fragments_total", `stream="cam"`)
		settled := ev == last
		last = ev
		if !settled || metricSum(t, srv.URL, "kvsd_disk_media_bytes") > budget {
			return false
		}
		cam = srv.ListFragments(t, "cam")
		return float64(20-len(cam)) == ev
	}, 10*time.Second, 50*time.Millisecond, "the media shrinks to the budget")
	require.NotEmpty(t, cam, "the newest video is kept")
	require.Less(t, len(cam), 20, "the oldest video is evicted")
	require.Equal(t, start.Add(19*time.Second).UnixMilli(), cam[len(cam)-1].Producer, "the newest fragment is kept")
	require.Greater(t, cam[0].Producer, start.UnixMilli())
	require.Len(t, srv.ListFragments(t, "evidence"), 3, "the tagged stream is never evicted")
	evicted := 20 - len(cam)
	require.Equal(t, float64(evicted), metricSum(t, srv.URL, "kvsd_disk_evicted_fragments_total", `stream="cam"`))
	require.Zero(t, metricSum(t, srv.URL, "kvsd_disk_evicted_fragments_total", `stream="evidence"`))
	require.Equal(t, float64(evicted), metricSum(t, srv.URL, "kvsd_store_fragments_evicted_total"))
	require.InDelta(t, float64(evicted), metricSum(t, srv.URL, "kvsd_disk_evicted_seconds_total", `stream="cam"`), 0.5,
		"one second of video per fragment")
	require.Equal(t, float64(budget), metricSum(t, srv.URL, "kvsd_disk_budget_bytes"))

	doc, _ := kvstest.Doctor(t, srv.URL, "cam")
	t.Log(doc)
	require.Contains(t, doc, "[DISK_SPACE]")
	require.Contains(t, doc, "the disk budget is 4.0 MiB")
	require.Contains(t, doc, fmt.Sprintf("%d fragments, ", evicted))
	require.Contains(t, doc, "[BUDGET_EVICTED]")
	doc, _ = kvstest.Doctor(t, srv.URL, "evidence")
	require.Contains(t, doc, "[BUDGET_KEPT]")
	require.NotContains(t, doc, "[BUDGET_EVICTED]")

	// The kept stream alone outgrows the budget: everything else goes, then nothing can.
	out, code = kvstest.Put(t, srv.URL, "", nil, false, "--stream", "evidence", "--fast", "--fragment-duration", "1s",
		"--start-time", start.Add(time.Minute).Format(time.RFC3339), clip)
	require.Equal(t, 0, code, out)
	require.Eventually(t, func() bool { return metricSum(t, srv.URL, "kvsd_disk_budget_kept_only") == 1 },
		10*time.Second, 10*time.Millisecond)
	require.Empty(t, srv.ListFragments(t, "cam"))
	require.Len(t, srv.ListFragments(t, "evidence"), 23)
	doc, code = kvstest.Doctor(t, srv.URL, "evidence")
	require.Equal(t, 1, code, doc)
	require.Contains(t, doc, "[BUDGET_ONLY_KEPT]")
	require.Contains(t, doc, "only streams tagged kvsd:KeepOverBudget=true hold video")
}
