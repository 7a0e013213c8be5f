package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/logtest"
	"github.com/kvsd/kvsd/internal/putmedia"
)

// process is a kvsd binary running as a child, so the test can SIGKILL it.
type process struct {
	cmd    *exec.Cmd
	url    string
	stderr *logtest.Buffer // its log
}

// startProcess runs `kvsd serve` on dataDir with the test credentials, plus extra flags and
// environment, and returns once it prints its URL. The test's end kills it if still running.
func startProcess(t *testing.T, bin, dataDir string, extraArgs, extraEnv []string) *process {
	t.Helper()
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--log-level", "warn"}, extraArgs...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(os.Environ(), "KVSD_ACCESS_KEY_ID="+kvstest.AccessKeyID, "KVSD_SECRET_ACCESS_KEY="+kvstest.SecretAccessKey), extraEnv...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr := &logtest.Buffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	urlRe := regexp.MustCompile(`serving the KVS API on (http://\S+)`)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if m := urlRe.FindStringSubmatch(sc.Text()); m != nil {
			go func() { // keep draining so the child never blocks on a full pipe
				for sc.Scan() {
				}
			}()
			p := &process{cmd: cmd, url: m[1], stderr: stderr}
			t.Cleanup(p.kill)
			return p
		}
	}
	_ = cmd.Wait()
	t.Fatalf("kvsd did not start: %s", stderr.String())
	return nil
}

func (p *process) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
}

// waitMetric polls the process's /metrics until there are series of name whose labels contain
// every one of labels (`stream="cam"`), and the sum of their values satisfies want.
func (p *process) waitMetric(t *testing.T, name string, labels []string, want func(float64) bool, what string) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		resp, err := http.Get(p.url + "/metrics")
		if !assert.NoError(c, err) {
			return
		}
		defer resp.Body.Close()
		var sum float64
		found := false
		sc := bufio.NewScanner(resp.Body)
	lines:
		for sc.Scan() {
			series, value, ok := strings.Cut(sc.Text(), " ")
			if !ok || (series != name && !strings.HasPrefix(series, name+"{")) {
				continue
			}
			for _, l := range labels {
				if !strings.Contains(series, l) {
					continue lines
				}
			}
			v, err := strconv.ParseFloat(value, 64)
			if !assert.NoError(c, err, sc.Text()) {
				return
			}
			sum, found = sum+v, true
		}
		assert.NoError(c, sc.Err())
		assert.True(c, found && want(sum), "%s: %s%v is %v (found: %v)", what, name, labels, sum, found)
	}, 30*time.Second, 20*time.Millisecond)
}

// server wraps a process URL in the kvstest helpers (same credentials).
func (p *process) server() *kvstest.Server {
	return kvstest.Attach(p.url)
}

// built is the kvsd binary the tests of this package run: built once (a build takes seconds
// even from the cache) into a folder TestMain removes.
var built struct {
	once     sync.Once
	dir, bin string
	err      error
}

func buildKVSD(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "kvsd-app-test-"); built.err != nil {
			return
		}
		bin := filepath.Join(built.dir, "kvsd")
		out, err := exec.Command("go", "build", "-o", bin, "github.com/kvsd/kvsd/cmd/kvsd").CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("go build: %w\n%s", err, out)
			return
		}
		built.bin = bin
	})
	require.NoError(t, built.err)
	return built.bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// TestCrashKeepsEveryPersistedFragment ingests into several streams, kills kvsd with SIGKILL at
// random moments, restarts it, and checks that every fragment acknowledged PERSISTED before the
// kill is listed and byte-identical, and that ingest goes on afterwards.
func TestCrashKeepsEveryPersistedFragment(t *testing.T) {
	t.Parallel() // Independent: its own process and data dir.
	bin := buildKVSD(t)
	dataDir := t.TempDir()
	streams := []string{"cam-a", "cam-b", "cam-c"}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))

	persistedBytes := map[string]map[string][]byte{} // stream → fragment number → media
	for _, s := range streams {
		persistedBytes[s] = map[string][]byte{}
	}
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	const rounds = 4
	for round := range rounds {
		p := startProcess(t, bin, dataDir, nil, nil)
		srv := p.server()
		if round == 0 {
			for _, s := range streams {
				_, err := srv.KinesisVideo().CreateStream(context.Background(), &kinesisvideo.CreateStreamInput{StreamName: aws.String(s), DataRetentionInHours: aws.Int32(24)})
				require.NoError(t, err)
			}
		}
		verifyPersisted(t, srv, persistedBytes) // everything acknowledged so far survived

		// Each round's media continues the timeline, one fragment per second.
		start := base.Add(time.Duration(round) * 10 * time.Minute)
		media := kvstest.TestPattern(t, 120, start)
		_, frags := kvstest.Clusters(t, media)

		// The kill comes right after a random number of PERSISTED acks (over all streams),
		// while the other streams are in the middle of their fragments.
		var mu sync.Mutex
		var wg sync.WaitGroup
		acked, killAt := 0, 5+rng.IntN(40)
		reached := make(chan struct{})
		ctx, cancel := context.WithCancel(context.Background())
		for _, s := range streams {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = srv.PutMediaClient().Put(ctx, putmedia.Request{StreamName: s, Body: bytes.NewReader(media)}, func(a putmedia.Ack) {
					if a.EventType != "PERSISTED" {
						return
					}
					i := int((int64(a.FragmentTimecode) - start.UnixMilli()) / 1000)
					mu.Lock()
					persistedBytes[s][a.FragmentNumber] = frags[i]
					if acked++; acked == killAt {
						close(reached)
					}
					mu.Unlock()
				})
			}()
		}
		select {
		case <-reached:
		case <-time.After(60 * time.Second):
			p.kill()
			cancel()
			wg.Wait()
			t.Fatalf("round %d: %d of %d fragments acknowledged", round, acked, killAt)
		}
		p.kill()
		cancel()
		wg.Wait()
	}
	p := startProcess(t, bin, dataDir, nil, nil)
	defer p.kill()
	srv := p.server()
	total := verifyPersisted(t, srv, persistedBytes)
	require.Greater(t, total, 10, "the test persisted too little to mean anything")
	t.Logf("%d fragments acknowledged PERSISTED across %d kills, all intact", total, rounds)

	// The store still takes new fragments after all those crashes.
	media := kvstest.TestPattern(t, 2, base.Add(2*time.Hour))
	require.Len(t, kvstest.Persisted(t, srv.PutMedia(t, "cam-a", bytes.NewReader(media))), 2)
}

// verifyPersisted checks every recorded fragment through ListFragments and
// GetMediaForFragmentList and returns how many there were.
func verifyPersisted(t *testing.T, srv *kvstest.Server, want map[string]map[string][]byte) int {
	t.Helper()
	total := 0
	for name, frags := range want {
		if len(frags) == 0 {
			continue
		}
		listed := map[string]bool{}
		token := ""
		for {
			in := map[string]any{"StreamName": name, "MaxResults": 1000}
			if token != "" {
				in["NextToken"] = token
			} else {
				in["FragmentSelector"] = map[string]any{"FragmentSelectorType": "SERVER_TIMESTAMP",
					"TimestampRange": map[string]any{"StartTimestamp": 0, "EndTimestamp": time.Now().Unix() + 60}}
			}
			var page struct {
				Fragments []struct{ FragmentNumber string }
				NextToken *string
			}
			status, _, body := srv.Call(t, "listFragments", in)
			require.Equal(t, 200, status, string(body))
			require.NoError(t, json.Unmarshal(body, &page))
			for _, f := range page.Fragments {
				listed[f.FragmentNumber] = true
			}
			if page.NextToken == nil {
				break
			}
			token = *page.NextToken
		}
		var numbers []string
		for n := range frags {
			require.True(t, listed[n], "stream %s: PERSISTED fragment %s is not listed after the crash", name, n)
			numbers = append(numbers, n)
		}
		slices.Sort(numbers)
		for i := 0; i < len(numbers); i += 1000 {
			batch := numbers[i:min(i+1000, len(numbers))]
			status, _, body := srv.Call(t, "getMediaForFragmentList", map[string]any{"StreamName": name, "Fragments": batch})
			require.Equal(t, 200, status, string(body))
			chunks := parseChunks(t, body)
			require.Len(t, chunks, len(batch))
			for j, c := range chunks {
				require.Equal(t, batch[j], c.awsTags["AWS_KINESISVIDEO_FRAGMENT_NUMBER"])
				require.True(t, bytes.Equal(frags[batch[j]], c.media), "stream %s fragment %s differs after the crash", name, batch[j])
			}
		}
		total += len(frags)
	}
	return total
}
