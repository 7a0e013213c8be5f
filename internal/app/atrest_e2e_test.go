package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/app"
	"github.com/kvsd/kvsd/internal/catalog/postgres/pgtest"
	"github.com/kvsd/kvsd/internal/fragstore/disk"
	kvskeys "github.com/kvsd/kvsd/internal/keys"
	"github.com/kvsd/kvsd/internal/keys/kmstest"
	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/objstore/s3test"
)

// runLen is the length of the producer's byte runs searched for in the data dir.
const runLen = 64

// frameRuns indexes every runLen-byte run of the frames' payloads by a rolling hash.
type frameRuns struct {
	runs map[uint64][]byte // hash → one run with that hash
}

const rollBase = 1099511628211

// rollPow is rollBase^(runLen-1): the weight of the byte that leaves the window.
var rollPow = func() uint64 {
	p := uint64(1)
	for range runLen - 1 {
		p *= rollBase
	}
	return p
}()

func indexFrames(frames [][]byte) *frameRuns {
	fr := &frameRuns{runs: map[uint64][]byte{}}
	for _, b := range frames {
		roll(b, func(h uint64, at int) bool {
			fr.runs[h] = b[at : at+runLen]
			return true
		})
	}
	return fr
}

// roll calls fn with the hash of every runLen-byte window of b and its offset, until fn says stop.
func roll(b []byte, fn func(h uint64, at int) bool) {
	if len(b) < runLen {
		return
	}
	var h uint64
	for i := range runLen {
		h = h*rollBase + uint64(b[i])
	}
	for at := 0; ; at++ {
		if !fn(h, at) || at+runLen >= len(b) {
			return
		}
		h = (h-uint64(b[at])*rollPow)*rollBase + uint64(b[at+runLen])
	}
}

// find returns the path and offset of the first run of the producer's frames in any file
// under dir, or "".
func (fr *frameRuns) find(t *testing.T, dir string) (string, int) {
	t.Helper()
	var foundPath string
	foundAt := -1
	require.NoError(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || foundPath != "" {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		roll(b, func(h uint64, at int) bool {
			if run, ok := fr.runs[h]; ok && bytes.Equal(run, b[at:at+runLen]) {
				foundPath, foundAt = path, at
				return false
			}
			return true
		})
		return nil
	}))
	return foundPath, foundAt
}

// TestNoFrameBytesAtRest: after ingest, no file in the data dir (catalog, segments, key file)
// holds any 64-byte run of the producer's frames, while every fragment reads back byte for
// byte. The data dir's key file was made on first start, mode 0600.
func TestNoFrameBytesAtRest(t *testing.T) {
	dir := t.TempDir()
	srv := kvstest.Start(t, kvstest.Options{DataDir: dir})
	srv.CreateStream(t, "cam", 24)
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	media := kvstest.TestPattern(t, 5, start)
	_, frames, err := mkv.ReadFrames(media, mkv.Limits{})
	require.NoError(t, err)
	var payloads [][]byte
	total := 0
	for _, f := range frames {
		payloads = append(payloads, f.Data)
		total += len(f.Data)
	}
	require.Greater(t, total, 50_000)
	runs := indexFrames(payloads)

	// The search works: the producer's own bytes are found in a file holding them.
	plain := filepath.Join(t.TempDir(), "plain.mkv")
	require.NoError(t, os.WriteFile(plain, media, 0o600))
	path, _ := runs.find(t, filepath.Dir(plain))
	require.Equal(t, plain, path)

	numbers := kvstest.Persisted(t, srv.PutMedia(t, "cam", bytes.NewReader(media)))
	require.Len(t, numbers, 5)
	srv.Stop(t) // everything on disk, nothing in flight

	path, at := runs.find(t, dir)
	require.Empty(t, path, "a run of the producer's frames at offset %d", at)
	fi, err := os.Stat(filepath.Join(dir, "kvsd.key"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	srv = kvstest.Start(t, kvstest.Options{DataDir: dir})
	_, frags := kvstest.Clusters(t, media)
	status, _, out := srv.Call(t, "getMediaForFragmentList", map[string]any{"StreamName": "cam", "Fragments": numbers})
	require.Equal(t, 200, status, string(out))
	chunks := parseChunks(t, out)
	require.Len(t, chunks, len(frags))
	for i, c := range chunks {
		require.Equal(t, frags[i], c.media, "fragment %d", i)
	}
}

// startKMS runs kvsd in-process with data keys from the KMS-compatible endpoint k.
func startKMS(t *testing.T, k *kmstest.Server, dir string) *kvstest.Server {
	return kvstest.Start(t, kvstest.Options{DataDir: dir,
		Env:       map[string]string{"AWS_ACCESS_KEY_ID": kmstest.AccessKey, "AWS_SECRET_ACCESS_KEY": kmstest.SecretKey, "AWS_REGION": kmstest.Region},
		Configure: func(c *app.Config) { c.KMSEndpoint = k.URL }})
}

func describeKey(t *testing.T, srv *kvstest.Server, name string) string {
	t.Helper()
	out, err := srv.KinesisVideo().DescribeStream(context.Background(), &kinesisvideo.DescribeStreamInput{StreamName: aws.String(name)})
	require.NoError(t, err)
	return aws.ToString(out.StreamInfo.KmsKeyId)
}

// TestKMSKeys: with KMS, CreateStream's KmsKeyId picks the key that wraps the stream's data keys
// (DescribeStream reports it; the default alias when none was given), a key KMS refuses is
// refused with InvalidArgumentException, a disabled key makes PutMedia answer ERROR 4501
// KMS_KEY_DISABLED and doctor say so, and nothing stored is lost: once the key is enabled
// again every fragment reads back.
func TestKMSKeys(t *testing.T) {
	k := kmstest.New(t)
	dir := t.TempDir()
	srv := startKMS(t, k, dir)
	ctx := context.Background()
	kv := srv.KinesisVideo()

	srv.CreateStream(t, "plain", 24)
	require.Equal(t, "arn:aws:kms:us-east-1:111122223333:alias/aws/kinesisvideo", describeKey(t, srv, "plain"))

	own := k.CreateKey()
	_, err := kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("own"), KmsKeyId: aws.String(own),
		DataRetentionInHours: aws.Int32(24), MediaType: aws.String("video/h264")})
	require.NoError(t, err)
	require.Equal(t, own, describeKey(t, srv, "own"))

	status, _, body := srv.Call(t, "createStream", map[string]any{"StreamName": "bad", "KmsKeyId": "alias/none"})
	require.Equal(t, 400, status)
	require.Contains(t, string(body), "InvalidArgumentException")
	require.Contains(t, string(body), "KMS_KEY_NOT_FOUND")

	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	media := kvstest.TestPattern(t, 3, start)
	numbers := kvstest.Persisted(t, srv.PutMedia(t, "own", bytes.NewReader(media)))
	require.Len(t, numbers, 3)
	segs, err := filepath.Glob(filepath.Join(dir, "media", "*_own", "*.seg"))
	require.NoError(t, err)
	require.NotEmpty(t, segs)
	info, _, err := disk.ScanSegment(segs[0], func(disk.ScannedRecord) error { return nil })
	require.NoError(t, err)
	require.Equal(t, own, info.DataKey.KeyID, "the segment names the stream's KMS key")
	require.Zero(t, k.Refused(), "every KMS call was signed")

	// Disabled: a restarted kvsd needs a new data key for new media, and the old one unwrapped.
	k.SetDisabled(own, true)
	srv.Stop(t)
	srv = startKMS(t, k, dir)
	acks := srv.PutMedia(t, "own", bytes.NewReader(kvstest.TestPattern(t, 2, start.Add(10*time.Second))))
	var errs []string
	for _, a := range acks {
		if a.EventType == "ERROR" {
			errs = append(errs, a.ErrorCode)
			require.Equal(t, 4501, a.ErrorID)
		}
	}
	require.Equal(t, []string{"KMS_KEY_DISABLED"}, errs)
	status, _, out := srv.Call(t, "getMediaForFragmentList", map[string]any{"StreamName": "own", "Fragments": numbers})
	require.Equal(t, 200, status)
	require.Contains(t, string(out), "KMS_KEY_DISABLED", "the stream ends with KVS's error for the fragment")
	report, code := kvstest.Doctor(t, srv.URL, "own")
	require.NotZero(t, code)
	require.Contains(t, report, "KMS_KEY_DISABLED")

	// Enabled again: everything stored before reads back; new media is stored.
	k.SetDisabled(own, false)
	status, _, out = srv.Call(t, "getMediaForFragmentList", map[string]any{"StreamName": "own", "Fragments": numbers})
	require.Equal(t, 200, status, string(out))
	_, frags := kvstest.Clusters(t, media)
	chunks := parseChunks(t, out)
	require.Len(t, chunks, len(frags))
	for i, c := range chunks {
		require.Equal(t, frags[i], c.media, "fragment %d", i)
	}
	kvstest.Persisted(t, srv.PutMedia(t, "own", bytes.NewReader(kvstest.TestPattern(t, 2, start.Add(20*time.Second)))))
	report, _ = kvstest.Doctor(t, srv.URL, "own")
	require.Contains(t, report, "MEDIA_ENCRYPTED")
}

// TestKeyFileRefusesKmsKeyId: without KMS, the key file encrypts every stream; CreateStream
// accepts only the default KmsKeyId, and refuses any other rather than report a key it does not
// use.
func TestKeyFileRefusesKmsKeyId(t *testing.T) {
	srv := kvstest.Start(t)
	status, _, body := srv.Call(t, "createStream", map[string]any{"StreamName": "a", "KmsKeyId": "arn:aws:kms:us-east-1:111122223333:key/1234"})
	require.Equal(t, 400, status)
	require.Contains(t, string(body), "--kms")
	status, _, body = srv.Call(t, "createStream", map[string]any{"StreamName": "b", "KmsKeyId": "alias/aws/kinesisvideo"})
	require.Equal(t, 200, status, string(body))
	var d struct{ StreamInfo struct{ KmsKeyId string } }
	_, _, body = srv.Call(t, "describeStream", map[string]any{"StreamName": "b"})
	require.NoError(t, json.Unmarshal(body, &d))
	require.Equal(t, "alias/aws/kinesisvideo", d.StreamInfo.KmsKeyId, "as given, as KVS reports it")
}

// TestMissingKeyFile: a data dir whose key file went missing does not start with a new key
// (which would leave the stored media unreadable and make a restored key file miss the new);
// once the key file is back, everything reads.
func TestMissingKeyFile(t *testing.T) {
	dir := t.TempDir()
	srv := kvstest.Start(t, kvstest.Options{DataDir: dir})
	srv.CreateStream(t, "cam", 24)
	media := kvstest.TestPattern(t, 2, time.Now().Add(-time.Minute).Truncate(time.Second))
	numbers := kvstest.Persisted(t, srv.PutMedia(t, "cam", bytes.NewReader(media)))
	srv.Stop(t)
	keyFile := filepath.Join(dir, "kvsd.key")
	saved := filepath.Join(t.TempDir(), "kvsd.key")
	require.NoError(t, os.Rename(keyFile, saved))

	_, err := app.Start(app.Config{Listen: "127.0.0.1:0", DataDir: dir, Region: kvstest.Region, AccountID: app.DefaultAccountID,
		LogLevel: "info", LogFormat: "text"}, app.Env{Getenv: func(k string) string {
		return map[string]string{"KVSD_ACCESS_KEY_ID": kvstest.AccessKeyID, "KVSD_SECRET_ACCESS_KEY": kvstest.SecretAccessKey}[k]
	}})
	require.ErrorContains(t, err, "key file "+keyFile+" is missing")
	_, err = os.Stat(keyFile)
	require.ErrorIs(t, err, os.ErrNotExist, "no new key file was made")

	require.NoError(t, os.Rename(saved, keyFile))
	srv = kvstest.Start(t, kvstest.Options{DataDir: dir})
	status, _, out := srv.Call(t, "getMediaForFragmentList", map[string]any{"StreamName": "cam", "Fragments": numbers})
	require.Equal(t, 200, status, string(out))
	require.Len(t, parseChunks(t, out), len(numbers))
}

// TestNoFrameBytesInTheBucket: with the media in S3, no object in the bucket (nor any file of
// the object store's or of the node's data dir) holds any 64-byte run of the producer's frames,
// while another node given the cluster's key file serves every fragment byte for byte. A node
// with another key file cannot open them: GetMediaForFragmentList ends with KVS's
// KMS_KEY_NOT_FOUND for the fragment, as on disk, and nothing is lost.
func TestNoFrameBytesInTheBucket(t *testing.T) {
	pgURL := pgtest.NewDatabase(t)
	s3 := s3test.Start(t)
	s3.CreateBucket(t, "kvsd-media")
	dataDir := t.TempDir()
	srv := startScaled(t, dataDir, pgURL, s3)
	srv.CreateStream(t, "cam", 24)
	media := kvstest.TestPattern(t, 5, time.Now().Add(-time.Minute).Truncate(time.Second))
	_, frames, err := mkv.ReadFrames(media, mkv.Limits{})
	require.NoError(t, err)
	var payloads [][]byte
	for _, f := range frames {
		payloads = append(payloads, f.Data)
	}
	runs := indexFrames(payloads)
	numbers := kvstest.Persisted(t, srv.PutMedia(t, "cam", bytes.NewReader(media)))
	require.Len(t, numbers, 5)
	srv.Stop(t)

	objects := s3.Keys(t, "kvsd-media")
	require.Len(t, objects, 5)
	// The scan reads the objects through S3, and the store's files as they lie on its disk.
	scan := t.TempDir()
	for i, k := range objects {
		require.NoError(t, os.WriteFile(filepath.Join(scan, fmt.Sprint(i)), s3.Get(t, "kvsd-media", k).Body, 0o600))
	}
	for _, dir := range []string{scan, s3.Dir, dataDir} {
		path, at := runs.find(t, dir)
		require.Empty(t, path, "a run of the producer's frames at offset %d", at)
	}

	_, frags := kvstest.Clusters(t, media)
	other := startScaled(t, t.TempDir(), pgURL, s3)
	status, _, out := other.Call(t, "getMediaForFragmentList", map[string]any{"StreamName": "cam", "Fragments": numbers})
	require.Equal(t, 200, status, string(out))
	chunks := parseChunks(t, out)
	require.Len(t, chunks, len(frags))
	for i, c := range chunks {
		require.Equal(t, frags[i], c.media, "fragment %d", i)
	}

	stranger := startScaledWith(t, t.TempDir(), pgURL, s3, func(c *app.Config) {
		c.KeyFile = filepath.Join(t.TempDir(), "other.key")
		_, err := kvskeys.LoadFile(c.KeyFile, true)
		require.NoError(t, err)
	})
	status, _, out = stranger.Call(t, "getMediaForFragmentList", map[string]any{"StreamName": "cam", "Fragments": numbers[:1]})
	require.Equal(t, 200, status)
	require.Contains(t, string(out), "KMS_KEY_NOT_FOUND", "the stream ends with KVS's error for the fragment")
	require.Len(t, s3.Keys(t, "kvsd-media"), 5, "nothing was removed")
}

// TestScaledNodeNeedsTheClusterKey: a node of a cluster (--catalog with --media) does not
// make a key file of its own, which would wrap its media with a key the other nodes lack.
func TestScaledNodeNeedsTheClusterKey(t *testing.T) {
	cfg := app.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Region: kvstest.Region, AccountID: app.DefaultAccountID,
		LogLevel: "info", LogFormat: "text", Catalog: "postgres://postgres@127.0.0.1/none", Media: "s3://b/p"}
	_, err := app.Start(cfg, app.Env{Getenv: func(string) string { return "" }})
	require.ErrorContains(t, err, "--key-file")
	_, err = os.Stat(filepath.Join(cfg.DataDir, "kvsd.key"))
	require.ErrorIs(t, err, os.ErrNotExist)
}
