package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	amtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/app"
	"github.com/kvsd/kvsd/internal/catalog/postgres"
	"github.com/kvsd/kvsd/internal/catalog/postgres/pgtest"
	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/objstore/s3test"
	"github.com/kvsd/kvsd/internal/putmedia"
)

// startCluster starts two nodes on one database and bucket. The second polls for the other's
// changes only once an hour, so what it sees promptly, notifications brought.
func startCluster(t *testing.T) (a, b *kvstest.Server) {
	t.Helper()
	pgURL := pgtest.NewDatabase(t)
	s3 := s3test.Start(t)
	s3.CreateBucket(t, "kvsd-media")
	a = startScaled(t, t.TempDir(), pgURL, s3)
	b = startScaledWith(t, t.TempDir(), pgURL, s3, func(c *app.Config) { c.ClusterPoll = time.Hour })
	return a, b
}

// feed is a PutMedia in progress: fragments are written as the test goes.
type feed struct {
	pw   *io.PipeWriter
	acks chan putmedia.Ack
	done chan error
}

func startFeed(t *testing.T, srv *kvstest.Server, name string, header []byte) *feed {
	t.Helper()
	pr, pw := io.Pipe()
	f := &feed{pw: pw, acks: make(chan putmedia.Ack, 100), done: make(chan error, 1)}
	go func() {
		f.done <- srv.PutMediaClient().Put(context.Background(), putmedia.Request{StreamName: name, Body: pr}, func(ack putmedia.Ack) { f.acks <- ack })
	}()
	t.Cleanup(func() { _ = pw.Close(); <-f.done })
	_, err := pw.Write(header)
	require.NoError(t, err)
	return f
}

// ack waits for the next ack other than BUFFERING and RECEIVED.
func (f *feed) ack(t *testing.T) putmedia.Ack {
	t.Helper()
	for {
		select {
		case a := <-f.acks:
			if a.EventType != "BUFFERING" && a.EventType != "RECEIVED" {
				return a
			}
		case <-time.After(20 * time.Second):
			t.Fatal("no ack")
		}
	}
}

// TestStreamChangesReachEveryNode: a stream deleted through one node stops the PutMedia that
// another node is running for it at its next fragment, as on a single node, without waiting
// for a restart or a poll: the deleting node's catalog commit notified the other.
func TestStreamChangesReachEveryNode(t *testing.T) {
	a, b := startCluster(t)
	a.CreateStream(t, "cam", 24)
	header, frags := kvstest.Clusters(t, kvstest.TestPattern(t, 3, time.Now().Add(-time.Minute).Truncate(time.Second)))
	f := startFeed(t, b, "cam", header)
	_, err := f.pw.Write(slices.Concat(frags[0], frags[1])) // the second completes the first
	require.NoError(t, err)
	require.Equal(t, "PERSISTED", f.ack(t).EventType)

	before := metricSum(t, b.URL, "kvsd_cluster_notifications_total", `kind="stream"`)
	_, _, body := a.Call(t, "describeStream", map[string]any{"StreamName": "cam"})
	var d struct{ StreamInfo struct{ StreamARN string } }
	require.NoError(t, json.Unmarshal(body, &d))
	status, _, body := a.Call(t, "deleteStream", map[string]any{"StreamARN": d.StreamInfo.StreamARN})
	require.Equal(t, 200, status, string(body))
	require.Eventually(t, func() bool { return metricSum(t, b.URL, "kvsd_cluster_notifications_total", `kind="stream"`) > before },
		10*time.Second, 10*time.Millisecond, "node b heard of the deletion")

	_, err = f.pw.Write(frags[2])
	require.NoError(t, err)
	got := f.ack(t)
	require.Equal(t, "ERROR", got.EventType, "the fragment after the deletion is refused: %+v", got)
	require.Equal(t, 4008, got.ErrorID, "STREAM_NOT_ACTIVE, as on a single node")
}

// TestLiveReadsFromAnyNode: a live GetMedia (from NOW) and a LIVE HLS playlist on a node that
// does not ingest the stream get each fragment as the other node commits it, woken by the
// commit's notification rather than a poll.
func TestLiveReadsFromAnyNode(t *testing.T) {
	a, b := startCluster(t)
	a.CreateStream(t, "cam", 24)
	header, frags := kvstest.Clusters(t, kvstest.TestPattern(t, 5, time.Now().Add(-2*time.Second).Truncate(time.Second)))
	f := startFeed(t, a, "cam", header)
	_, err := f.pw.Write(slices.Concat(frags[0], frags[1]))
	require.NoError(t, err)
	require.Equal(t, "PERSISTED", f.ack(t).EventType)

	resp := b.Open(t, "getMedia", map[string]any{"StreamName": "cam", "StartSelector": map[string]any{"StartSelectorType": "NOW"}})
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	next := liveChunks(t, resp.Body)

	master := hlsURL(t, b, &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("cam"),
		PlaybackMode:        amtypes.HLSPlaybackModeLive,
		HLSFragmentSelector: &amtypes.HLSFragmentSelector{FragmentSelectorType: amtypes.HLSFragmentSelectorTypeServerTimestamp}})
	_, mv := get(t, master)
	mediaURL := resolve(master, variantURI(t, mv))
	m, _ := mediaPlaylistAt(t, mediaURL)
	require.Len(t, m.Segments, 1, "the fragment committed so far")

	for i := 1; i < 4; i++ {
		_, err := f.pw.Write(frags[i+1]) // completes fragment i
		require.NoError(t, err)
		ack := f.ack(t)
		require.Equal(t, "PERSISTED", ack.EventType)
		c := next(5 * time.Second) // far under the hour node b polls at
		require.Equal(t, ack.FragmentNumber, c.awsTags["AWS_KINESISVIDEO_FRAGMENT_NUMBER"])
		require.Equal(t, frags[i], c.media, "fragment %d byte for byte", i)
		m, _ := mediaPlaylistAt(t, mediaURL)
		require.Len(t, m.Segments, i+1, "node b's LIVE playlist lists fragment %d", i)
	}
}

// liveChunks reads a live GetMedia body chunk by chunk; next fails the test when no whole
// chunk came within wait (it closes the body, which ends the read).
func liveChunks(t *testing.T, body io.ReadCloser) (next func(wait time.Duration) chunk) {
	mr := mkv.NewReader(body, mkv.Limits{})
	return func(wait time.Duration) chunk {
		t.Helper()
		timer := time.AfterFunc(wait, func() { _ = body.Close() })
		defer timer.Stop()
		var c *chunk
		for {
			ev, err := mr.Next()
			require.NoError(t, err, "no whole chunk within %v", wait)
			switch ev.Kind {
			case mkv.KindHeader:
				c = &chunk{header: bytes.Clone(ev.Header.Raw), awsTags: tagsIn(t, ev.Header.Raw)}
			case mkv.KindClusterEnd:
				c.media = append(c.media, ev.Raw...)
			case mkv.KindTags:
				if ev.Tags[0].Name == "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW" {
					return *c
				}
				c.media = append(c.media, ev.Raw...)
			}
		}
	}
}

// variantURI is the first variant's URI in a multivariant playlist.
func variantURI(t *testing.T, body []byte) string {
	t.Helper()
	pl, err := playlist.Unmarshal(body)
	require.NoError(t, err, "%s", body)
	mv, ok := pl.(*playlist.Multivariant)
	require.True(t, ok, "%s", body)
	return mv.Variants[0].URI
}

// TestRetentionSweepsOncePerCluster: of two nodes on one catalog, one sweeps retention (the
// holder of the cluster:retention lease); /metrics says which.
func TestRetentionSweepsOncePerCluster(t *testing.T) {
	pgURL := pgtest.NewDatabase(t)
	s3 := s3test.Start(t)
	s3.CreateBucket(t, "kvsd-media")
	fast := func(c *app.Config) { c.RetentionInterval = 20 * time.Millisecond }
	a := startScaledWith(t, t.TempDir(), pgURL, s3, fast)
	b := startScaledWith(t, t.TempDir(), pgURL, s3, fast)
	sweeps := func(srv *kvstest.Server) float64 { return metricSum(t, srv.URL, "kvsd_retention_sweeps_total") }
	require.Eventually(t, func() bool { return sweeps(a)+sweeps(b) >= 10 }, 10*time.Second, 10*time.Millisecond)
	require.True(t, sweeps(a) == 0 || sweeps(b) == 0, "a swept %v times, b %v", sweeps(a), sweeps(b))
}

// TestLiveOnlyStreamFromAnyNode: a stream without retention lives only in the memory of the
// node ingesting it; a live GetMedia through another node is proxied to that node (named, with
// its --node-url, in the stream's lease) and gets every fragment, the client's signature
// verified by the owner as sent.
func TestLiveOnlyStreamFromAnyNode(t *testing.T) {
	a, b := startCluster(t)
	a.CreateStream(t, "cam", 0)
	header, frags := kvstest.Clusters(t, kvstest.TestPattern(t, 4, time.Now().Add(-2*time.Second).Truncate(time.Second)))
	f := startFeed(t, a, "cam", header)
	_, err := f.pw.Write(slices.Concat(frags[0], frags[1]))
	require.NoError(t, err)
	for a := range f.acks { // the session holds the stream's lease once it acknowledged
		if a.EventType == "RECEIVED" {
			break
		}
	}

	resp := b.Open(t, "getMedia", map[string]any{"StreamName": "cam", "StartSelector": map[string]any{"StartSelectorType": "NOW"}})
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	next := liveChunks(t, resp.Body)
	for i := 1; i < 3; i++ {
		_, err := f.pw.Write(frags[i+1]) // completes fragment i
		require.NoError(t, err)
		c := next(5 * time.Second)
		require.Equal(t, frags[i], c.media, "fragment %d byte for byte, from a's live buffer", i)
	}
}

// A stream without retention whose ingesting node does not answer (its lease still live, the
// node gone) fails a GetMedia through another node with an AWS-shaped error, not a hang.
func TestLiveOnlyStreamOwnerGone(t *testing.T) {
	pgURL := pgtest.NewDatabase(t)
	s3 := s3test.Start(t)
	s3.CreateBucket(t, "kvsd-media")
	b := startScaled(t, t.TempDir(), pgURL, s3)
	b.CreateStream(t, "cam", 0)
	db, err := postgres.Open(context.Background(), postgres.Config{URL: pgURL})
	require.NoError(t, err)
	defer db.Close()
	_, err = db.AcquireLease(context.Background(), "cam", "gone/1/ABCDEFGH http://127.0.0.1:1", time.Minute)
	require.NoError(t, err)

	status, _, body := b.Call(t, "getMedia", map[string]any{"StreamName": "cam", "StartSelector": map[string]any{"StartSelectorType": "NOW"}})
	require.Equal(t, 500, status, string(body))
	require.Contains(t, string(body), "InternalFailure")
}
