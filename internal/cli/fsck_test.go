package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/catalog/bolt"
	"github.com/kvsd/kvsd/internal/cli"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/kvstest"
)

func runFsck(args ...string) (string, string, int) {
	var out, errs bytes.Buffer
	code := cli.Main(context.Background(), append([]string{"fsck"}, args...), &out, &errs)
	return out.String(), errs.String(), code
}

// TestFsckOnARealDataDir: kvsd fsck refuses a data dir a running kvsd holds; on the stopped
// one it finds nothing, then the fragment whose byte was flipped, which the restarted server
// refuses to serve as if whole (GetMediaForFragmentList ends with KVS's error for it; doctor
// names it); --repair drops it, and every other fragment is served.
func TestFsckOnARealDataDir(t *testing.T) {
	dir := t.TempDir()
	srv := kvstest.Start(t, kvstest.Options{DataDir: dir})
	srv.CreateStream(t, "cam", 24)
	media := kvstest.GreyMedia(t, 5, time.Now().Add(-time.Minute).Truncate(time.Second))
	numbers := kvstest.Persisted(t, srv.PutMedia(t, "cam", bytes.NewReader(media)))
	require.Len(t, numbers, 5)

	_, errs, code := runFsck("--data-dir", dir)
	require.Equal(t, 2, code)
	require.Contains(t, errs, "in use by another kvsd process")
	require.Contains(t, errs, "stop kvsd first")
	srv.Stop(t)

	out, errs, code := runFsck("--data-dir", dir)
	require.Equal(t, 0, code, out+errs)
	require.Contains(t, out, "1 streams, 1 segments, 5 records")
	require.Contains(t, out, "no problems")

	// Flip a byte in the third fragment's media.
	db, err := bolt.Open(filepath.Join(dir, "catalog.db"))
	require.NoError(t, err)
	_, seq, err := fragment.ParseNumber(numbers[2])
	require.NoError(t, err)
	keys, err := db.FragmentStreams(context.Background())
	require.NoError(t, err)
	f, err := db.GetFragment(context.Background(), keys[0], seq)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	segs, err := filepath.Glob(filepath.Join(dir, "media", "*_cam", "*.seg"))
	require.NoError(t, err)
	require.Len(t, segs, 1)
	b, err := os.ReadFile(segs[0])
	require.NoError(t, err)
	b[f.Location.Offset+20] ^= 0xff
	require.NoError(t, os.WriteFile(segs[0], b, 0o600))

	out, _, code = runFsck("--data-dir", dir)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "stream cam: fragment "+numbers[2]+": media damaged")
	require.Contains(t, out, "1 problems")

	srv = kvstest.Start(t, kvstest.Options{DataDir: dir})
	status, _, body := srv.Call(t, "getMediaForFragmentList", map[string]any{"StreamName": "cam", "Fragments": numbers})
	require.Equal(t, 200, status)
	require.Contains(t, string(body), "INTERNAL_ERROR", "the stream ends with KVS's error chunk")
	require.Contains(t, string(body), numbers[2], "naming the damaged fragment")
	report, _ := kvstest.Doctor(t, srv.URL, "cam")
	require.Contains(t, report, "MEDIA_DAMAGED")
	require.Contains(t, report, numbers[2])
	srv.Stop(t)

	out, _, code = runFsck("--data-dir", dir, "--repair")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "repaired: stream cam: fragment "+numbers[2]+": index entry dropped")
	require.Contains(t, out, "no media was deleted")
	after, err := os.ReadFile(segs[0])
	require.NoError(t, err)
	require.Equal(t, b, after)
	out, _, code = runFsck("--data-dir", dir)
	require.Equal(t, 0, code, out)

	srv = kvstest.Start(t, kvstest.Options{DataDir: dir})
	listed := srv.ListFragments(t, "cam")
	require.Len(t, listed, 4)
	var left []string
	for _, n := range numbers {
		if n != numbers[2] {
			left = append(left, n)
		}
	}
	status, _, body = srv.Call(t, "getMediaForFragmentList", map[string]any{"StreamName": "cam", "Fragments": left})
	require.Equal(t, 200, status, string(body))
	require.NotContains(t, string(body), "INTERNAL_ERROR")
	require.Equal(t, 4, strings.Count(string(body), "AWS_KINESISVIDEO_FRAGMENT_NUMBER"))
}

func TestFsckUsage(t *testing.T) {
	_, errs, code := runFsck()
	require.Equal(t, 2, code)
	require.Contains(t, errs, "--data-dir DIR is required")
	_, errs, code = runFsck("--data-dir", t.TempDir())
	require.Equal(t, 2, code)
	require.Contains(t, errs, "not a kvsd data dir")
	_, _, code = runFsck("--nonsense")
	require.Equal(t, 2, code)
}
