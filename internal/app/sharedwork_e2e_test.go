package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/app"
	"github.com/kvsd/kvsd/internal/catalog/postgres/pgtest"
	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/objstore/s3test"
)

// startWorkNode runs one node of a cluster on pgURL and s3's bucket kvsd-media, with image
// generation delivering to the same S3 server (a local folder would not be shared).
func startWorkNode(t *testing.T, pgURL string, s3 *s3test.Server) *kvstest.Server {
	t.Helper()
	return kvstest.Start(t, kvstest.Options{
		DataDir: t.TempDir(),
		Env:     map[string]string{"AWS_ACCESS_KEY_ID": s3test.AccessKeyID, "AWS_SECRET_ACCESS_KEY": s3test.SecretAccessKey},
		Configure: func(c *app.Config) {
			c.Catalog, c.Media, c.S3Endpoint, c.S3PathStyle = pgURL, "s3://kvsd-media/site-a", s3.Endpoint, true
			c.ImageRetryMax, c.KeyFile = time.Second, clusterKeyFile(t, s3)
		},
	})
}

// TestImagesSharedAcrossNodes: two nodes on one database and bucket, fragments of one stream
// ingested through both. Every image key is made once in the cluster (the nodes'
// kvsd_images_generated_total add up to the number of images); after one node stops right
// after its last PutMedia, the other makes that batch's images.
func TestImagesSharedAcrossNodes(t *testing.T) {
	pgURL := pgtest.NewDatabase(t)
	s3 := s3test.Start(t)
	s3.CreateBucket(t, "kvsd-media")
	s3.CreateBucket(t, "images")
	n1, n2 := startWorkNode(t, pgURL, s3), startWorkNode(t, pgURL, s3)
	n1.CreateStream(t, "cam", 24)
	n1.TagStream(t, "cam", map[string]string{"kvsd:ImageGeneration": "ALL_FRAGMENTS"})
	n1.ConfigureImages(t, "cam", kvstest.ImageConfig("s3://images/cam", 500, nil))

	start := time.Now().Add(-time.Hour).Truncate(2 * time.Second)
	batch := func(srv *kvstest.Server, i int) {
		t.Helper()
		media := kvstest.GreyMedia(t, 3, start.Add(time.Duration(3*i)*time.Second))
		require.Len(t, kvstest.Persisted(t, srv.PutMedia(t, "cam", bytes.NewReader(media))), 3)
	}
	batch(n1, 0)
	batch(n2, 1)
	keys := s3.WaitKeys(t, "images", 12, 30*time.Second)
	require.Len(t, keys, 12, "6 one-second fragments × 2 samples")
	generated := func() float64 {
		return metricSum(t, n1.URL, "kvsd_images_generated_total") + metricSum(t, n2.URL, "kvsd_images_generated_total")
	}
	require.Equal(t, float64(12), generated(), "each image made once in the cluster")

	// The doctor and /metrics of either node show the cluster: both nodes, who holds the
	// stream's work, and image work caught up (the cursor is saved before the claim goes).
	require.Eventually(t, func() bool {
		return metricSum(t, n2.URL, "kvsd_cluster_work_lag_fragments", `kind="imagegen"`, `stream="cam"`) == 0 &&
			metricSum(t, n2.URL, "kvsd_cluster_nodes") == 2
	}, 10*time.Second, 50*time.Millisecond)
	doctor, _ := kvstest.Doctor(t, n2.URL, "cam")
	for _, want := range []string{"2 node(s) in the cluster", "WORK_HOLDERS", "ingest: ", "images: ", "IMAGEGEN_LAG", "caught up"} {
		require.Contains(t, doctor, want, doctor)
	}

	// n1 stops with a batch's images possibly not made: n2, which ingested none of it, takes
	// the stream's image work over (n1 released its claim; its resync finds the stream).
	before := metricSum(t, n2.URL, "kvsd_images_generated_total")
	batch(n1, 2)
	n1.Stop(t)
	keys = s3.WaitKeys(t, "images", 18, 40*time.Second)
	t.Logf("after n1 stopped, n2 made %v of the last batch's images", metricSum(t, n2.URL, "kvsd_images_generated_total")-before)
	require.Len(t, keys, 18)
	for _, k := range keys {
		require.Equal(t, "cam", parseKey(t, k).stream, k)
	}
}

// TestNotificationsSharedAcrossNodes: the same for notifications to one webhook: every tagged
// fragment's PERSISTED event arrives (at least once; a redelivery has the same EventId), and
// after one node stops right after its last PutMedia, the other sends that batch's events.
func TestNotificationsSharedAcrossNodes(t *testing.T) {
	pgURL := pgtest.NewDatabase(t)
	s3 := s3test.Start(t)
	s3.CreateBucket(t, "kvsd-media")
	var mu sync.Mutex
	events := map[string][]string{} // fragment number → event ids received
	deliveries := 0
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m struct{ FragmentNumber, EventId, NotificationType string }
		if json.Unmarshal(body, &m) != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		mu.Lock()
		events[m.FragmentNumber] = append(events[m.FragmentNumber], m.EventId)
		deliveries++
		mu.Unlock()
	}))
	defer hook.Close()
	received := func() int { mu.Lock(); defer mu.Unlock(); return len(events) }

	n1, n2 := startWorkNode(t, pgURL, s3), startWorkNode(t, pgURL, s3)
	n1.CreateStream(t, "cam", 24)
	_, err := n1.KinesisVideo().UpdateNotificationConfiguration(context.Background(), &kinesisvideo.UpdateNotificationConfigurationInput{
		StreamName: aws.String("cam"), NotificationConfiguration: &types.NotificationConfiguration{Status: types.ConfigurationStatusEnabled,
			DestinationConfig: &types.NotificationDestinationConfig{Uri: aws.String(hook.URL + "/events")}}})
	require.NoError(t, err)

	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	tag := []mkv.SimpleTag{{Name: "AWS_KINESISVIDEO_NOTIFICATION"}}
	var numbers []string
	batch := func(srv *kvstest.Server, i int) {
		t.Helper()
		body := kvstest.WithTags(t, kvstest.TestPattern(t, 4, start.Add(time.Duration(4*i)*time.Second)), [][]mkv.SimpleTag{tag, tag, tag, tag})
		got := kvstest.Persisted(t, srv.PutMedia(t, "cam", bytes.NewReader(body)))
		require.Len(t, got, 4)
		numbers = append(numbers, got...)
	}
	batch(n1, 0)
	batch(n2, 1)
	require.Eventually(t, func() bool { return received() >= 8 }, 20*time.Second, 20*time.Millisecond)
	mu.Lock()
	require.Equal(t, 8, deliveries, "each event sent once in the cluster")
	mu.Unlock()

	before := metricSum(t, n2.URL, "kvsd_notify_delivered_total")
	batch(n1, 2)
	n1.Stop(t)
	require.Eventually(t, func() bool { return received() >= 12 }, 40*time.Second, 50*time.Millisecond)
	t.Logf("after n1 stopped, n2 sent %v of the last batch's events", metricSum(t, n2.URL, "kvsd_notify_delivered_total")-before)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, events, 12)
	for _, n := range numbers {
		ids := events[n]
		require.NotEmpty(t, ids, "fragment %s's event", n)
		for _, id := range ids {
			require.Equal(t, ids[0], id, "a redelivered event keeps its id")
		}
	}
}

// TestImageWorkMovesOnWhenItsNodeIsKilled: two kvsd processes on one database and bucket. A
// backlog of images is being made by the node that ingested it when that node is killed
// (SIGKILL: its claim is neither released nor renewed): the other node takes the stream's image
// work over once the claim expires and makes every image that is missing.
func TestImageWorkMovesOnWhenItsNodeIsKilled(t *testing.T) {
	pgURL := pgtest.NewDatabase(t)
	s3 := s3test.Start(t)
	s3.CreateBucket(t, "kvsd-media")
	s3.CreateBucket(t, "images")
	bin := buildKVSD(t)
	args := []string{"--catalog", pgURL, "--media", "s3://kvsd-media/site-a", "--s3-endpoint", s3.Endpoint, "--s3-path-style", "--key-file", clusterKeyFile(t, s3)}
	env := []string{"AWS_ACCESS_KEY_ID=" + s3test.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + s3test.SecretAccessKey}
	p1 := startProcess(t, bin, t.TempDir(), args, env)
	p2 := startProcess(t, bin, t.TempDir(), args, env)
	n1 := p1.server()
	n1.CreateStream(t, "cam", 24)
	n1.TagStream(t, "cam", map[string]string{"kvsd:ImageGeneration": "ALL_FRAGMENTS"})
	n1.ConfigureImages(t, "cam", kvstest.ImageConfig("s3://images/cam", 500, nil))

	// A backlog long enough that the node working on it is killed before its end.
	const seconds = 60
	media := kvstest.GreyMedia(t, seconds, time.Now().Add(-time.Hour).Truncate(2*time.Second))
	require.Len(t, kvstest.Persisted(t, n1.PutMedia(t, "cam", bytes.NewReader(media))), seconds)
	// Whichever node holds the stream's image work (both hear of the fragments; node ids hold
	// the process id) is killed while it works.
	holds := func(p *process) float64 {
		return metricSum(t, p2.url, "kvsd_cluster_work_held", `kind="imagegen"`, fmt.Sprintf(`/%d/`, p.cmd.Process.Pid))
	}
	require.Eventually(t, func() bool { return holds(p1)+holds(p2) == 1 }, 20*time.Second, 20*time.Millisecond, "a node holds the image work")
	worker, other := p1, p2
	if holds(p2) == 1 {
		worker, other = p2, p1
	}
	worker.kill()
	killed := time.Now()
	made := len(s3.Keys(t, "images"))
	t.Logf("the working node killed with %d of %d images made", made, 2*seconds)
	require.Eventually(t, func() bool { return holds(other) == 1 }, 30*time.Second, 20*time.Millisecond, "the other node takes the work")
	t.Logf("the other node took the image work %v after the kill (claims expire %v after their last renewal)", time.Since(killed).Round(10*time.Millisecond), leaseTTL)

	keys := s3.WaitKeys(t, "images", 2*seconds, 40*time.Second)
	require.Len(t, keys, 2*seconds, "every fragment's images, once p2 took over")
	require.Less(t, made, 2*seconds, "the node was killed with images left to make")
	other.waitMetric(t, "kvsd_images_generated_total", nil, func(v float64) bool { return v >= float64(2*seconds-made) }, "the other node made the rest")
	other.waitMetric(t, "kvsd_cluster_work_lag_fragments", []string{`kind="imagegen"`, `stream="cam"`}, func(v float64) bool { return v == 0 }, "caught up")
}

// TestNotificationWorkMovesOnWhenItsNodeIsKilled: two kvsd processes, one webhook that holds
// its first request unanswered. The node sending it is killed (SIGKILL) while it waits for the
// answer; the other node takes the stream's notification work over once the claim expires and
// sends every event from the last acknowledged one: the unanswered event again, with the same
// EventId (at least once), then the rest.
func TestNotificationWorkMovesOnWhenItsNodeIsKilled(t *testing.T) {
	pgURL := pgtest.NewDatabase(t)
	s3 := s3test.Start(t)
	s3.CreateBucket(t, "kvsd-media")
	var mu sync.Mutex
	events := map[string][]string{} // fragment number → event ids received
	first, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m struct{ FragmentNumber, EventId string }
		if json.Unmarshal(body, &m) != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		mu.Lock()
		events[m.FragmentNumber] = append(events[m.FragmentNumber], m.EventId)
		mu.Unlock()
		isFirst := false
		once.Do(func() { isFirst = true; close(first) })
		if isFirst {
			<-release // the sender dies waiting
			http.Error(w, "gone", http.StatusServiceUnavailable)
		}
	}))
	defer hook.Close()
	defer close(release)

	bin := buildKVSD(t)
	args := []string{"--catalog", pgURL, "--media", "s3://kvsd-media/site-a", "--s3-endpoint", s3.Endpoint, "--s3-path-style", "--key-file", clusterKeyFile(t, s3)}
	env := []string{"AWS_ACCESS_KEY_ID=" + s3test.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + s3test.SecretAccessKey}
	procs := []*process{startProcess(t, bin, t.TempDir(), args, env), startProcess(t, bin, t.TempDir(), args, env)}
	n1 := procs[0].server()
	n1.CreateStream(t, "cam", 24)
	_, err := n1.KinesisVideo().UpdateNotificationConfiguration(context.Background(), &kinesisvideo.UpdateNotificationConfigurationInput{
		StreamName: aws.String("cam"), NotificationConfiguration: &types.NotificationConfiguration{Status: types.ConfigurationStatusEnabled,
			DestinationConfig: &types.NotificationDestinationConfig{Uri: aws.String(hook.URL + "/events")}}})
	require.NoError(t, err)
	tag := []mkv.SimpleTag{{Name: "AWS_KINESISVIDEO_NOTIFICATION"}}
	body := kvstest.WithTags(t, kvstest.TestPattern(t, 6, time.Now().Add(-time.Hour).Truncate(time.Second)),
		[][]mkv.SimpleTag{tag, tag, tag, tag, tag, tag})
	numbers := kvstest.Persisted(t, n1.PutMedia(t, "cam", bytes.NewReader(body)))
	require.Len(t, numbers, 6)

	<-first
	// Whichever node sends holds the stream's notify claim (node ids hold the process id).
	sender, other := procs[0], procs[1]
	if metricSum(t, other.url, "kvsd_cluster_work_held", `kind="notify"`, fmt.Sprintf(`/%d/`, other.cmd.Process.Pid)) == 1 {
		sender, other = other, sender
	}
	require.Equal(t, float64(1), metricSum(t, other.url, "kvsd_cluster_work_held", `kind="notify"`, fmt.Sprintf(`/%d/`, sender.cmd.Process.Pid)),
		"the sender holds the claim")
	sender.kill()

	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(events) == 6 }, 40*time.Second, 50*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, events[numbers[0]], 2, "the unanswered event is sent again")
	for _, n := range numbers {
		ids := events[n]
		require.NotEmpty(t, ids, "fragment %s's event", n)
		for _, id := range ids {
			require.Equal(t, ids[0], id, "a redelivered event keeps its id")
		}
	}
}
