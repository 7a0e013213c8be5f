package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/app"
	"github.com/kvsd/kvsd/internal/catalog/postgres/pgtest"
	kvskeys "github.com/kvsd/kvsd/internal/keys"
	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/objstore/s3test"
	"github.com/kvsd/kvsd/internal/putmedia"
)

// startScaled runs kvsd on dataDir with its catalog in PostgreSQL and its media in versitygw,
// as `kvsd serve --catalog postgres://… --media s3://kvsd-media/site-a --s3-endpoint …
// --s3-path-style --key-file …` does, with the key file of the cluster (clusterKeyFile).
func startScaled(t *testing.T, dataDir, pgURL string, s3 *s3test.Server) *kvstest.Server {
	t.Helper()
	return startScaledWith(t, dataDir, pgURL, s3, nil)
}

// startScaledWith is startScaled with more configuration.
func startScaledWith(t *testing.T, dataDir, pgURL string, s3 *s3test.Server, configure func(c *app.Config)) *kvstest.Server {
	t.Helper()
	keyFile := clusterKeyFile(t, s3)
	return kvstest.Start(t, kvstest.Options{
		DataDir: dataDir,
		Env:     map[string]string{"AWS_ACCESS_KEY_ID": s3test.AccessKeyID, "AWS_SECRET_ACCESS_KEY": s3test.SecretAccessKey},
		Configure: func(c *app.Config) {
			c.Catalog, c.Media, c.S3Endpoint, c.S3PathStyle = pgURL, "s3://kvsd-media/site-a", s3.Endpoint, true
			c.KeyFile = keyFile
			if configure != nil {
				configure(c)
			}
		},
	})
}

// clusterKeyFiles holds the key file of each object store's cluster: every node of a cluster
// wraps its data keys with the same one.
var clusterKeyFiles sync.Map // *s3test.Server → path

func clusterKeyFile(t *testing.T, s3 *s3test.Server) string {
	t.Helper()
	if p, ok := clusterKeyFiles.Load(s3); ok {
		return p.(string)
	}
	p := filepath.Join(t.TempDir(), "cluster.key")
	_, err := kvskeys.LoadFile(p, true) // made as kvsd makes its default one
	require.NoError(t, err)
	if prev, loaded := clusterKeyFiles.LoadOrStore(s3, p); loaded {
		return prev.(string)
	}
	return p
}

// TestSingleNodeOnPostgresAndS3: PutMedia into a kvsd whose catalog is PostgreSQL and whose
// media is S3; every fragment acknowledged PERSISTED is an object in the bucket and a row in
// the database, nothing lands in the data dir, and a second kvsd started on an empty data dir
// against the same database and bucket lists and serves the same fragments byte for byte.
func TestSingleNodeOnPostgresAndS3(t *testing.T) {
	pgURL := pgtest.NewDatabase(t)
	s3 := s3test.Start(t)
	s3.CreateBucket(t, "kvsd-media")
	dataDir := t.TempDir()
	srv := startScaled(t, dataDir, pgURL, s3)
	srv.CreateStream(t, "cam", 24)

	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	media := kvstest.TestPattern(t, 5, start)
	_, frags := kvstest.Clusters(t, media)
	numbers := kvstest.Persisted(t, srv.PutMedia(t, "cam", bytes.NewReader(media)))
	require.Len(t, numbers, len(frags))

	keys := s3.Keys(t, "kvsd-media")
	require.Len(t, keys, len(frags), "one object per fragment: %v", keys)
	for _, k := range keys {
		require.Regexp(t, `^site-a/\d{13}_cam/\d{20}/\d{20}\.rec$`, k)
	}
	for _, name := range []string{"catalog.db", "media"} {
		_, err := os.Stat(filepath.Join(dataDir, name))
		require.ErrorIs(t, err, os.ErrNotExist, "%s in the data dir", name)
	}

	check := func(srv *kvstest.Server) {
		t.Helper()
		status, _, body := srv.Call(t, "listFragments", map[string]any{"StreamName": "cam",
			"FragmentSelector": map[string]any{"FragmentSelectorType": "PRODUCER_TIMESTAMP",
				"TimestampRange": map[string]any{"StartTimestamp": start.Unix(), "EndTimestamp": start.Unix() + 4}}})
		require.Equal(t, 200, status, string(body))
		var list struct {
			Fragments []struct{ FragmentNumber string }
		}
		require.NoError(t, json.Unmarshal(body, &list))
		var listed []string
		for _, f := range list.Fragments {
			listed = append(listed, f.FragmentNumber)
		}
		require.ElementsMatch(t, numbers, listed)

		status, _, out := srv.Call(t, "getMediaForFragmentList", map[string]any{"StreamName": "cam", "Fragments": numbers})
		require.Equal(t, 200, status, string(out))
		chunks := parseChunks(t, out)
		require.Len(t, chunks, len(frags))
		for i, c := range chunks {
			require.Equal(t, frags[i], c.media, "fragment %d byte-identical", i)
			require.Equal(t, numbers[i], c.awsTags["AWS_KINESISVIDEO_FRAGMENT_NUMBER"])
		}
	}
	check(srv)

	// Another node: an empty data dir, the same database and bucket.
	srv.Stop(t)
	other := startScaled(t, t.TempDir(), pgURL, s3)
	check(other)
	status, _, body := other.Call(t, "describeStream", map[string]any{"StreamName": "cam"})
	require.Equal(t, 200, status, string(body))
	require.True(t, strings.Contains(string(body), `"DataRetentionInHours":24`), string(body))
}

// A missing bucket or an unreachable database stops kvsd at start, naming what is wrong,
// rather than failing the first PutMedia.
func TestScaledStartFailsFast(t *testing.T) {
	s3 := s3test.Start(t) // no bucket
	env := map[string]string{"KVSD_ACCESS_KEY_ID": kvstest.AccessKeyID, "KVSD_SECRET_ACCESS_KEY": kvstest.SecretAccessKey,
		"AWS_ACCESS_KEY_ID": s3test.AccessKeyID, "AWS_SECRET_ACCESS_KEY": s3test.SecretAccessKey}
	cfg := app.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Region: "us-east-1", AccountID: app.DefaultAccountID,
		LogLevel: "info", LogFormat: "text", Media: "s3://missing/site-a", S3Endpoint: s3.Endpoint, S3PathStyle: true}
	_, err := app.Start(cfg, app.Env{Getenv: func(k string) string { return env[k] }})
	require.ErrorContains(t, err, "--media s3://missing/site-a")
	require.ErrorContains(t, err, "NoSuchBucket")

	cfg.Media, cfg.Catalog = "", "postgres://postgres@127.0.0.1:1/kvsd?connect_timeout=5"
	_, err = app.Start(cfg, app.Env{Getenv: func(k string) string { return env[k] }})
	require.ErrorContains(t, err, "postgres catalog 127.0.0.1/kvsd")
}

// Two nodes on one catalog and bucket, the second started while the first ingests (it repairs
// nothing at start: the media is shared): while a PutMedia streams into one node, a PutMedia
// of the same stream to the other is refused with ConnectionLimitExceeded, as a second live
// connection is on AWS; once the first connection ended, the other node takes the stream, and
// both nodes list every fragment.
func TestSecondNodeWaitsForTheStream(t *testing.T) {
	pgURL := pgtest.NewDatabase(t)
	s3 := s3test.Start(t)
	s3.CreateBucket(t, "kvsd-media")
	a := startScaled(t, t.TempDir(), pgURL, s3)
	a.CreateStream(t, "cam", 24)

	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	header, frags := kvstest.Clusters(t, kvstest.TestPattern(t, 3, start))
	pr, pw := io.Pipe()
	acks := make(chan putmedia.Ack, 100)
	putA := make(chan error, 1)
	go func() {
		putA <- a.PutMediaClient().Put(context.Background(), putmedia.Request{StreamName: "cam", Body: pr}, func(ack putmedia.Ack) { acks <- ack })
	}()
	_, err := pw.Write(slices.Concat(header, frags[0], frags[1]))
	require.NoError(t, err)
	require.Equal(t, "BUFFERING", (<-acks).EventType, "a streams")
	b := startScaled(t, t.TempDir(), pgURL, s3)

	_, err = putOnce(b, kvstest.TestPattern(t, 2, start.Add(10*time.Second)))
	var apiErr *putmedia.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, 400, apiErr.Status)
	require.Equal(t, "ConnectionLimitExceededException", apiErr.Code)

	_, err = pw.Write(frags[2])
	require.NoError(t, err)
	require.NoError(t, pw.Close())
	require.NoError(t, <-putA)
	close(acks)
	var persisted int
	for ack := range acks {
		if ack.EventType == "PERSISTED" {
			persisted++
		}
	}
	require.Equal(t, 3, persisted)

	got, err := putOnce(b, kvstest.TestPattern(t, 2, start.Add(10*time.Second)))
	require.NoError(t, err, "the stream is free once a's connection ended")
	require.Len(t, kvstest.Persisted(t, got), 2)
	for _, n := range []*kvstest.Server{a, b} {
		require.Len(t, n.ListFragments(t, "cam"), 5)
	}
}

func putOnce(srv *kvstest.Server, media []byte) ([]putmedia.Ack, error) {
	var acks []putmedia.Ack
	err := srv.PutMediaClient().Put(context.Background(), putmedia.Request{StreamName: "cam", Body: bytes.NewReader(media)},
		func(a putmedia.Ack) { acks = append(acks, a) })
	return acks, err
}
