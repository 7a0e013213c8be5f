package fragstore_test

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/catalog/bolt"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/fragstore/disk"
	kvskeys "github.com/kvsd/kvsd/internal/keys"
)

const helperEnv = "KVSD_FRAGSTORE_CRASH_DIR"

// TestHelperProcess is not a test: TestKill9 runs the test binary with helperEnv set, and this
// then appends fragments for ever, printing each sequence once Append returned (the moment
// ingest would send PERSISTED), until it is killed.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		return
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	db, err := bolt.Open(filepath.Join(dir, "catalog.db"))
	if err != nil {
		fail(err)
	}
	kf, err := kvskeys.LoadFile(filepath.Join(dir, kvskeys.DefaultKeyFile), true) // encrypted, as kvsd runs
	if err != nil {
		fail(err)
	}
	m, err := disk.Open(disk.Config{Dir: filepath.Join(dir, "media"), Keys: kvskeys.NewRing(kf, nil)})
	if err != nil {
		fail(err)
	}
	s, err := fragstore.Open(fragstore.Config{Media: m, Index: db, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		fail(err)
	}
	last, err := s.LastSeq(ctx, key)
	if err != nil {
		fail(err)
	}
	for seq := last + 1; ; seq++ {
		if err := s.Append(ctx, key, header, frag(key, seq), media(seq)); err != nil {
			fail(err)
		}
		fmt.Printf("%d\n", seq) // os.Stdout is unbuffered: one write per line
	}
}

// TestKill9 kills a process that appends fragments at random moments, several times over, and
// checks after each kill that every acknowledged fragment is there, byte for byte, that
// nothing unacknowledged was kept as a hole, and that every segment ends exactly after its
// last record.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := t.TempDir()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	acked := map[uint64]bool{}
	var maxAcked uint64
	for round := range 6 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperEnv+"="+dir)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())

		// Kill it at a random moment: after a random number of acknowledgements (1 to 40,
		// about what it appends in 0 to 400 ms), while it appends the next fragment.
		killAfter := 1 + r.IntN(40)
		lines := make(chan uint64, 1<<16)
		readDone, reached := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(readDone)
			br := bufio.NewReader(out)
			for n := 0; ; {
				line, err := br.ReadString('\n')
				if err != nil { // a line cut by the kill has no newline: not acknowledged
					_, _ = io.Copy(io.Discard, br)
					return
				}
				if seq, perr := strconv.ParseUint(strings.TrimSpace(line), 10, 64); perr == nil {
					lines <- seq
					if n++; n == killAfter {
						close(reached)
					}
				}
			}
		}()
		select {
		case <-reached:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("round %d: helper acknowledged %d of %d fragments: %s", round, len(lines), killAfter, stderr.String())
		}
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		<-readDone
		err = cmd.Wait()
		require.Error(t, err, "killed")
		close(lines)
		n := 0
		for seq := range lines {
			acked[seq] = true
			maxAcked = max(maxAcked, seq)
			n++
		}
		t.Logf("round %d: %d fragments acknowledged, %d in all", round, n, len(acked))

		e := openEnv(t, dir)
		last, err := e.s.LastSeq(ctx, key)
		require.NoError(t, err)
		require.GreaterOrEqual(t, last, maxAcked, "every acknowledged fragment is indexed")
		e.check(key, span(1, last)) // contiguous, each entry and its bytes as appended
		for seq := range acked {
			require.LessOrEqual(t, seq, last)
		}
		checkSegmentsClean(t, e)
		e.close()
	}
}

// checkSegmentsClean scans every segment file: each record checks out (encrypted: version 3)
// and the file ends right after the last one.
func checkSegmentsClean(t *testing.T, e *env) {
	entries, err := os.ReadDir(streamDir(e, key))
	require.NoError(t, err)
	for _, d := range entries {
		require.True(t, strings.HasSuffix(d.Name(), ".seg"), "only segments remain: %s", d.Name())
		path := filepath.Join(streamDir(e, key), d.Name())
		info, end, err := disk.ScanSegment(path, func(disk.ScannedRecord) error { return nil })
		require.NoError(t, err, d.Name())
		require.Equal(t, 3, info.Version, "%s is encrypted", d.Name())
		require.Equal(t, size(t, path), end, d.Name())
	}
}
