package app_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/kvstest"
)

// The aws CLI as a reader: list-fragments, get-media-for-fragment-list and get-media.
func TestAWSCLIReadsMedia(t *testing.T) {
	t.Parallel() // Independent: its own server; the aws CLI runs in a clean environment.
	srv := kvstest.Start(t)
	srv.CreateStream(t, "cam", 24)
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	media := kvstest.TestPattern(t, 3, start)
	_, frags := kvstest.Clusters(t, media)
	numbers := kvstest.Persisted(t, srv.PutMedia(t, "cam", bytes.NewReader(media)))
	dir := t.TempDir()

	out, err := srv.AWSCLI(t, dir, "", "kinesis-video-archived-media", "list-fragments", "--stream-name", "cam",
		"--fragment-selector", "FragmentSelectorType=SERVER_TIMESTAMP,TimestampRange={StartTimestamp=2020-01-01T00:00:00Z,EndTimestamp=2099-01-01T00:00:00Z}")
	require.NoError(t, err)
	var l struct {
		Fragments []struct{ FragmentNumber string }
	}
	require.NoError(t, json.Unmarshal([]byte(out), &l))
	require.Len(t, l.Fragments, 3)

	_, err = srv.AWSCLI(t, dir, "", "kinesis-video-archived-media", "get-media-for-fragment-list", "list.mkv",
		"--stream-name", "cam", "--fragments", numbers[0], numbers[1], numbers[2])
	require.NoError(t, err)
	got, err := os.ReadFile(filepath.Join(dir, "list.mkv"))
	require.NoError(t, err)
	chunks := parseChunks(t, got)
	require.Len(t, chunks, 3)
	for i := range chunks {
		require.Equal(t, frags[i], chunks[i].media)
	}

	out, err = srv.AWSCLI(t, dir, "", "kinesis-video-media", "get-media", "--stream-name", "cam",
		"--start-selector", "StartSelectorType=EARLIEST", "media.mkv")
	require.NoError(t, err)
	require.Contains(t, out, `"ContentType": "video/webm"`)
	got, err = os.ReadFile(filepath.Join(dir, "media.mkv"))
	require.NoError(t, err)
	chunks = parseChunks(t, got)
	require.Len(t, chunks, 3)
	require.Equal(t, frags[2], chunks[2].media)
	requireDecodes(t, got, 75)

	_, err = srv.AWSCLI(t, dir, "", "kinesis-video-media", "get-media", "--stream-name", "missing",
		"--start-selector", "StartSelectorType=NOW", "x.mkv")
	require.Error(t, err)
	require.Contains(t, err.Error(), "ResourceNotFoundException")
}
