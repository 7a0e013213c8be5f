package app_test

import (
	"bytes"
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/objstore/s3test"
	"github.com/kvsd/kvsd/internal/putmedia"
)

// startImageProcess runs the kvsd binary as a child delivering images to s3.
func startImageProcess(t *testing.T, bin, dataDir string, s3 *s3test.Server) *process {
	t.Helper()
	return startProcess(t, bin, dataDir, []string{"--s3-endpoint", s3.Endpoint, "--s3-path-style"},
		[]string{"AWS_ACCESS_KEY_ID=" + s3test.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + s3test.SecretAccessKey, "AWS_SESSION_TOKEN=", "AWS_REGION=" + s3test.Region})
}

// TestImagesSurviveKillAndS3Outage kills kvsd (SIGKILL) while it generates images, takes the
// S3 server away while fragments keep arriving, kills kvsd again during the outage, and then
// checks that every image of every persisted fragment arrived exactly once.
func TestImagesSurviveKillAndS3Outage(t *testing.T) {
	t.Parallel() // Independent: its own processes, S3 server and data dir.
	bin := buildKVSD(t)
	s3 := s3test.Start(t)
	s3.CreateBucket(t, "images")
	dataDir := t.TempDir()
	start := time.Now().Add(-time.Hour).Truncate(time.Second)

	p := startImageProcess(t, bin, dataDir, s3)
	srv := p.server()
	srv.CreateStream(t, "cam", 24)
	srv.TagStream(t, "cam", map[string]string{"kvsd:ImageGeneration": "ALL_FRAGMENTS"})
	srv.ConfigureImages(t, "cam", kvstest.ImageConfig("s3://images/crash", 200, nil)) // 5 images per 1-s fragment

	// 1. Kill kvsd as soon as the first images are out, while ingest and generation run.
	ingest := func(srv *kvstest.Server, media []byte) (wait func()) {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = srv.PutMediaClient().Put(context.Background(), putmedia.Request{StreamName: "cam", Body: bytes.NewReader(media)}, func(putmedia.Ack) {})
		}()
		return wg.Wait
	}
	wait := ingest(srv, kvstest.GreyMedia(t, 30, start))
	require.NotEmpty(t, s3.WaitKeys(t, "images", 1, 30*time.Second))
	p.kill()
	wait()
	first := len(s3.Keys(t, "images"))

	// 2. Restart; S3 goes away; more fragments arrive; kvsd is killed again during the outage.
	p = startImageProcess(t, bin, dataDir, s3)
	srv = p.server()
	s3.Stop()
	acks := srv.PutMedia(t, "cam", bytes.NewReader(kvstest.GreyMedia(t, 5, start.Add(10*time.Minute))))
	require.Len(t, kvstest.Persisted(t, acks), 5)
	failed := func(n float64) bool { return n > 0 }
	p.waitMetric(t, "kvsd_images_failed_total", []string{`stream="cam"`}, failed, "deliveries fail and back off")
	p.kill()

	// 3. Restart; S3 comes back once the new process has failed too; everything arrives.
	p = startImageProcess(t, bin, dataDir, s3)
	srv = p.server()
	p.waitMetric(t, "kvsd_images_failed_total", []string{`stream="cam"`}, failed, "deliveries fail after the restart")
	s3.Resume(t)
	frags := srv.ListFragments(t, "cam")
	want := map[int64]bool{}
	for _, f := range frags {
		for off := int64(0); off == 0 || off < f.Length; off += 200 {
			want[f.Producer+off] = true
		}
	}
	require.Greater(t, len(frags), 5, "the test stored too little to mean anything")
	s3.WaitKeys(t, "images", len(want), 60*time.Second)
	// Nothing queued: every fragment's images are stored, and anything extra was sent before.
	p.waitMetric(t, "kvsd_images_queue_fragments", []string{`stream="cam"`}, func(n float64) bool { return n == 0 }, "the queue empties")
	keys := s3.Keys(t, "images")
	got := map[int64]int{}
	for _, k := range keys {
		got[parseKey(t, k).ms]++
	}
	var missing, dup []int64
	for ms := range want {
		if got[ms] != 1 {
			missing = append(missing, ms)
		}
	}
	for ms, n := range got {
		if n > 1 || !want[ms] {
			dup = append(dup, ms)
		}
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i] < missing[j] })
	require.Empty(t, missing, "images missing (or not exactly once)")
	require.Empty(t, dup, "images duplicated or unexpected")
	require.Len(t, keys, len(want))
	t.Logf("%d fragments, %d images exactly once (%d before the first kill)", len(frags), len(keys), first)
}
