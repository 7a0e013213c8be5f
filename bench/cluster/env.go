package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kvsd/kvsd/bench/internal/child"
	"github.com/kvsd/kvsd/bench/internal/kvsdproc"
	"github.com/kvsd/kvsd/bench/internal/machine"
	"github.com/kvsd/kvsd/internal/catalog/postgres/pgtest"
	kvskeys "github.com/kvsd/kvsd/internal/keys"
	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/objstore/s3test"
	"github.com/kvsd/kvsd/internal/putmedia"
)

// helperTB lets this program use the helpers the cluster tests start their pieces with
// (s3test.Start, pgtest.NewDatabase, kvstest.StartFrontDoor), which take a testing.TB, rather
// than keep copies of them. Fatal and Skip panic with a helperFailure that guard turns into an
// error; cleanups run, last first, when the benchmark ends. The embedded TB is nil: a helper
// calling another method panics, which the benchmark's own test would show.
type helperTB struct {
	testing.TB
	dir      string
	mu       sync.Mutex
	cleanups []func()
	n        int
}

type helperFailure struct{ msg string }

func newHelperTB(dir string) *helperTB { return &helperTB{dir: dir} }

func (t *helperTB) Helper()                        {}
func (t *helperTB) Name() string                   { return "bench-cluster" }
func (t *helperTB) Logf(format string, a ...any)   {}
func (t *helperTB) Errorf(format string, a ...any) { panic(helperFailure{fmt.Sprintf(format, a...)}) }
func (t *helperTB) Fatal(a ...any)                 { panic(helperFailure{fmt.Sprint(a...)}) }
func (t *helperTB) Fatalf(format string, a ...any) { panic(helperFailure{fmt.Sprintf(format, a...)}) }
func (t *helperTB) Skip(a ...any)                  { panic(helperFailure{fmt.Sprint(a...)}) }
func (t *helperTB) Skipf(format string, a ...any)  { panic(helperFailure{fmt.Sprintf(format, a...)}) }
func (t *helperTB) Cleanup(f func())               { t.mu.Lock(); t.cleanups = append(t.cleanups, f); t.mu.Unlock() }
func (t *helperTB) Setenv(key, value string)       { panic("helperTB: Setenv") }
func (t *helperTB) Context() context.Context       { return context.Background() }
func (t *helperTB) Failed() bool                   { return false }
func (t *helperTB) Skipped() bool                  { return false }
func (t *helperTB) Log(a ...any)                   {}
func (t *helperTB) Error(a ...any)                 { panic(helperFailure{fmt.Sprint(a...)}) }
func (t *helperTB) SkipNow()                       { panic(helperFailure{"skipped"}) }
func (t *helperTB) FailNow()                       { panic(helperFailure{"failed"}) }
func (t *helperTB) Fail()                          { panic(helperFailure{"failed"}) }
func (t *helperTB) TempDir() string {
	t.mu.Lock()
	t.n++
	dir := filepath.Join(t.dir, fmt.Sprintf("tmp-%03d", t.n))
	t.mu.Unlock()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		panic(helperFailure{err.Error()})
	}
	return dir
}

// close runs the cleanups, last first.
func (t *helperTB) close() {
	t.mu.Lock()
	cs := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		_ = guard(func() error { cs[i](); return nil })
	}
}

// guard runs f, turning a helper's Fatal or Skip into an error.
func guard(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			hf, ok := r.(helperFailure)
			if !ok {
				panic(r)
			}
			err = errors.New(hf.msg)
		}
	}()
	return f()
}

// infra is what every section shares: one versitygw with the media bucket, one fresh
// PostgreSQL database, the cluster key file and the kvsd binary.
type infra struct {
	tb      *helperTB
	s3      *s3test.Server
	pgURL   string
	dbName  string
	keyFile string
	bin     string
	work    string
	pgDesc  string // server version and durability settings, for the report
	s3Where string // where versitygw's objects are, for the report
}

const bucket = "kvsd-media"

// startInfra starts versitygw, with its objects in s3Dir ("": in the work dir), and a fresh
// PostgreSQL database.
func startInfra(work, bin, s3Dir string) (*infra, error) {
	in := &infra{tb: newHelperTB(filepath.Join(work, "helpers")), bin: bin, work: work}
	in.s3Where = "they share it in this run"
	var dir string
	if s3Dir != "" {
		var err error
		if dir, err = os.MkdirTemp(s3Dir, "kvsd-bench-versitygw-"); err != nil {
			return nil, fmt.Errorf("versitygw's directory: %w", err)
		}
		in.tb.Cleanup(func() { os.RemoveAll(dir) })
		in.s3Where = fmt.Sprintf("not in this run, whose versitygw keeps its objects in %s (%s)", dir, machine.FSType(dir))
	}
	err := guard(func() error {
		if dir == "" {
			dir = in.tb.TempDir()
		}
		in.s3 = s3test.StartIn(in.tb, dir)
		in.s3.CreateBucket(in.tb, bucket)
		in.pgURL = pgtest.NewDatabase(in.tb)
		return nil
	})
	if err != nil {
		in.tb.close()
		return nil, err
	}
	if err := in.describePostgres(); err != nil {
		in.tb.close()
		return nil, err
	}
	i := strings.LastIndexByte(in.pgURL, '/')
	in.dbName, _, _ = strings.Cut(in.pgURL[i+1:], "?")
	// One key file for every node: with --catalog and --media kvsd needs the cluster's key.
	in.keyFile = filepath.Join(work, "cluster.key")
	if _, err := kvskeys.LoadFile(in.keyFile, true); err != nil {
		in.tb.close()
		return nil, fmt.Errorf("make the cluster key file: %w", err)
	}
	return in, nil
}

func (in *infra) close() { in.tb.close() }

// describePostgres reads the server's version and the settings that decide what a commit
// costs.
func (in *infra) describePostgres() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, in.pgURL)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(context.Background())
	var version, syncCommit, fsync, walSync string
	if err := conn.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('synchronous_commit'),
		current_setting('fsync'), current_setting('wal_sync_method')`).Scan(&version, &syncCommit, &fsync, &walSync); err != nil {
		return fmt.Errorf("read PostgreSQL settings: %w", err)
	}
	in.pgDesc = fmt.Sprintf("PostgreSQL %s (synchronous_commit %s, fsync %s, wal_sync_method %s)", version, syncCommit, fsync, walSync)
	return nil
}

// freeAddr is kvstest.FreeAddr without a test.
func (in *infra) freeAddr() (addr string, err error) {
	err = guard(func() error { addr = kvstest.FreeAddr(in.tb); return nil })
	return addr, err
}

// frontDoor starts deploy/haproxy.cfg in front of the addresses.
func (in *infra) frontDoor(addrs []string) (fd *kvstest.FrontDoor, err error) {
	err = guard(func() error { fd = kvstest.StartFrontDoor(in.tb, addrs...); return nil })
	return fd, err
}

// node is one kvsd process on the shared catalog and media, reached directly at url.
type node struct {
	name string
	addr string
	url  string
	args []string
	env  []string
	log  string // kvsd-<name>.log; a restart writes kvsd-<name>-<n>.log
	runs int
	p    *child.Proc
	kv   *kvsd
}

// kvsdEnv is the environment of every kvsd this program starts: the benchmark's client
// credentials, versitygw's for the media, nothing of the caller's KVSD_* settings.
func kvsdEnv() []string {
	return []string{"KVSD_ACCESS_KEY_ID=" + kvsdproc.AccessKeyID, "KVSD_SECRET_ACCESS_KEY=" + kvsdproc.SecretAccessKey,
		"KVSD_SESSION_TOKEN=", "KVSD_LISTEN=", "KVSD_DATA_DIR=", "KVSD_PUBLIC_URL=", "KVSD_CREDENTIALS_FILE=",
		"KVSD_CATALOG=", "KVSD_MEDIA=", "KVSD_NODE_URL=", "AWS_PROFILE=", "AWS_SESSION_TOKEN=",
		"AWS_ACCESS_KEY_ID=" + s3test.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + s3test.SecretAccessKey, "AWS_REGION=" + s3test.Region}
}

// dataDir is the data dir of the node called name.
func (in *infra) dataDir(name string) string { return filepath.Join(in.work, "data-"+name) }

// scaledNode prepares (does not start) a kvsd on the shared catalog and media: the README's
// cluster command line. Nodes of one cluster share site, the media's prefix (every node
// reads every node's objects there). publicURL "" leaves GetDataEndpoint at the node's own
// address.
func (in *infra) scaledNode(name, site, addr, publicURL string) *node {
	args := []string{"serve", "--listen", addr, "--data-dir", in.dataDir(name), "--region", kvsdproc.Region,
		"--log-level", "warn", "--max-conns-per-client", "0", "--catalog", in.pgURL, "--media", "s3://" + bucket + "/" + site,
		"--s3-endpoint", in.s3.Endpoint, "--s3-path-style", "--key-file", in.keyFile}
	if publicURL != "" {
		args = append(args, "--public-url", publicURL)
	}
	return &node{name: name, addr: addr, url: "http://" + addr, args: args, env: kvsdEnv(), log: filepath.Join(in.work, "kvsd-"+name+".log")}
}

// embeddedNode prepares the single node with its embedded catalog and disk media.
func (in *infra) embeddedNode(name, addr string) *node {
	args := []string{"serve", "--listen", addr, "--data-dir", in.dataDir(name), "--region", kvsdproc.Region,
		"--log-level", "warn", "--max-conns-per-client", "0"}
	return &node{name: name, addr: addr, url: "http://" + addr, args: args, env: kvsdEnv(), log: filepath.Join(in.work, "kvsd-"+name+".log")}
}

// start runs the node's kvsd and waits until it serves.
func (n *node) start(bin string) error {
	n.runs++
	log := n.log
	if n.runs > 1 {
		log = strings.TrimSuffix(log, ".log") + fmt.Sprintf("-%d.log", n.runs)
	}
	p, err := child.Start("kvsd "+n.name, bin, n.args, n.env, log)
	if err != nil {
		return err
	}
	n.p = p
	n.kv = newKvsd(n.url, p.PID())
	return nil
}

// kill ends the node with SIGKILL and waits for it.
func (n *node) kill() {
	if n.p == nil {
		return
	}
	_ = n.p.Cmd.Process.Kill()
	_ = n.p.Stop() // reaps it
	n.p = nil
}

func (n *node) stop() error {
	if n.p == nil {
		return nil
	}
	err := n.p.Stop()
	n.p = nil
	return err
}

func (n *node) pid() int {
	if n.p == nil {
		return 0
	}
	return n.p.PID()
}

// kvsd is a kvsd (a node or the front door) with clients for it.
type kvsd struct {
	url  string
	pid  int
	http *http.Client
}

func newKvsd(url string, pid int) *kvsd {
	return &kvsd{url: url, pid: pid, http: kvsdproc.NewHTTPClient()}
}

func (k *kvsd) putClient() *putmedia.Client { return kvsdproc.PutClient(k.url, k.http) }

// createStreams creates the streams with the retention, through this endpoint.
func (k *kvsd) createStreams(ctx context.Context, names []string, retentionHours int) error {
	for _, n := range names {
		if _, _, err := k.call(ctx, "createStream", map[string]any{"StreamName": n, "DataRetentionInHours": retentionHours,
			"MediaType": "video/h264"}); err != nil {
			return fmt.Errorf("create stream %s: %w", n, err)
		}
	}
	return nil
}

// leaseHolders maps each stream with a live lease to the pid in its holder name
// (host/pid/random, then the node's URL), as the cluster tests read it.
func (in *infra) leaseHolders(ctx context.Context) (map[string]int, error) {
	conn, err := pgx.Connect(ctx, in.pgURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT stream, holder FROM stream_leases WHERE holder <> '' AND expires_at > now()`)
	if err != nil {
		return nil, fmt.Errorf("read stream leases: %w", err)
	}
	out := map[string]int{}
	for rows.Next() {
		var stream, holder string
		if err := rows.Scan(&stream, &holder); err != nil {
			return nil, err
		}
		id, _, _ := strings.Cut(holder, " ")
		if parts := strings.Split(id, "/"); len(parts) == 3 {
			if pid, err := strconv.Atoi(parts[1]); err == nil {
				out[stream] = pid
			}
		}
	}
	return out, rows.Err()
}

// waitHealthy waits until the front door's /healthz answers 200.
func waitHealthy(ctx context.Context, fd *kvstest.FrontDoor, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		status, err := fd.Healthz()
		if err == nil && status == http.StatusOK {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("front door not healthy after %s: %d %v", within, status, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond): // HAProxy's checks announce nothing: poll
		}
	}
}
