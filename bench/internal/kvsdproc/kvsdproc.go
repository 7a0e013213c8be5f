// Package kvsdproc runs the kvsd a benchmark program measures: a binary built from this module
// (or one given), or the program itself re-executed in its -kvsd-server child mode (for
// profiles), on a free loopback port with the benchmarks' credentials. It also makes the clients
// that talk to it, sends it signed requests (ListFragments among them) and describes it for the
// report.
package kvsdproc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/kvsd/kvsd/bench/internal/child"
	"github.com/kvsd/kvsd/internal/cli"
	"github.com/kvsd/kvsd/internal/putmedia"
)

// Credentials every kvsd a benchmark program starts accepts.
const (
	AccessKeyID     = "AKIAKVSDBENCHKEY0001"
	SecretAccessKey = "kvsdBenchSecretKey/0123456789abcdefghijkl"
	Region          = "us-east-1"
)

// Creds are the credentials as the AWS signer takes them.
var Creds = aws.Credentials{AccessKeyID: AccessKeyID, SecretAccessKey: SecretAccessKey}

// ChildEnv marks a process a benchmark program started, so that a test binary, which has no
// main, knows to run the child mode its arguments ask for.
const ChildEnv = "KVSD_BENCH_CHILD"

// ModuleRoot is the root of the module the running program belongs to (go env GOMOD).
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run from inside the kvsd module (go run ./bench/...)")
	}
	return filepath.Dir(mod), nil
}

// Build builds ./cmd/kvsd of the module this program belongs to into dir.
func Build(ctx context.Context, dir string) (string, error) {
	return BuildTagged(ctx, dir, "kvsd", "")
}

// ClearTag is the build tag of a kvsd that stores media in clear: benchmarks build one to
// measure what encryption at rest costs, in the same run.
const ClearTag = "kvsd_plaintext"

// BuildTagged builds ./cmd/kvsd with the build tags (comma-separated; "" for none) into
// dir/name.
func BuildTagged(ctx context.Context, dir, name, tags string) (string, error) {
	root, err := ModuleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", tags, "-o", bin, "./cmd/kvsd")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/kvsd: %v\n%s", err, out)
	}
	return bin, nil
}

// Launcher starts kvsd processes: the built binary, or (for profiles) this program re-executed
// in its -kvsd-server child mode (Serve).
type Launcher struct {
	Bin         string // kvsd binary; "" runs this program's -kvsd-server child mode
	ProfileDir  string // with Bin "": write <ProfileDir>/kvsd-<name>.pprof
	HeapProfile bool   // with a ProfileDir: also <ProfileDir>/kvsd-<name>-heap.pprof on SIGUSR1
	LogDir      string // kvsd-<name>.log
}

// NewLauncher is the Launcher for a program's -kvsd and -kvsd-cpuprofile flags: bin "" builds
// one into work, "self" (or a profileDir) runs the program's child mode.
func NewLauncher(ctx context.Context, bin, profileDir, work string, logf func(string, ...any)) (*Launcher, error) {
	l := &Launcher{Bin: bin, ProfileDir: profileDir, LogDir: work}
	switch {
	case profileDir != "":
		if err := os.MkdirAll(profileDir, 0o755); err != nil {
			return nil, err
		}
		l.Bin = ""
	case bin == "self":
		l.Bin = ""
	case bin == "":
		logf("building kvsd")
		built, err := Build(ctx, work)
		if err != nil {
			return nil, err
		}
		l.Bin = built
	}
	return l, nil
}

// Profiling reports whether the kvsds started write profiles (SIGUSR1 writes a heap profile
// where HeapProfile is set).
func (l *Launcher) Profiling() bool { return l.Bin == "" && l.ProfileDir != "" }

// Start runs kvsd serve on dataDir, listening on a free loopback port. name tells its log and
// profiles apart from the others of the run.
func (l *Launcher) Start(name, dataDir string) (*child.Proc, error) {
	// Every simulated camera and viewer connects from 127.0.0.1: one client address, so the
	// per-client connection limit is lifted (the total one stays).
	serve := []string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--region", Region, "--log-level", "warn",
		"--max-conns-per-client", "0"}
	env := []string{"KVSD_ACCESS_KEY_ID=" + AccessKeyID, "KVSD_SECRET_ACCESS_KEY=" + SecretAccessKey, "KVSD_SESSION_TOKEN=",
		"KVSD_LISTEN=", "KVSD_DATA_DIR=", "KVSD_PUBLIC_URL=", "KVSD_CREDENTIALS_FILE="}
	exe, args := l.Bin, serve
	if exe == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		exe, args = self, []string{"-kvsd-server"}
		if l.ProfileDir != "" {
			args = append(args, "-cpuprofile", filepath.Join(l.ProfileDir, "kvsd-"+name+".pprof"))
			if l.HeapProfile {
				args = append(args, "-heapprofile", filepath.Join(l.ProfileDir, "kvsd-"+name+"-heap.pprof"))
			}
		}
		args = append(append(args, "--"), serve...)
	}
	return child.Start("kvsd", exe, args, append([]string{ChildEnv + "=1"}, env...), filepath.Join(l.LogDir, "kvsd-"+name+".log"))
}

// Describe names the kvsd a Launcher with that Bin runs and the commit of its source.
func Describe(bin string) string {
	desc := "this program's -kvsd-server mode (kvsd's internal/app linked into the benchmark)"
	if bin != "" {
		desc = bin
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	root, err := ModuleRoot(ctx)
	if err != nil {
		return desc
	}
	rev, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return desc
	}
	desc += ", source at commit " + strings.TrimSpace(string(rev))
	if st, err := exec.CommandContext(ctx, "git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		desc += " plus uncommitted changes"
	}
	return desc
}

// Serve is the -kvsd-server child mode: kvsd's command line args, until SIGINT or SIGTERM.
// With heapProfile set, each SIGUSR1 writes a heap profile there.
func Serve(args []string, heapProfile string) int {
	if heapProfile != "" {
		writeHeapOnSignal(heapProfile)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return cli.Main(ctx, args, os.Stdout, os.Stderr)
}

// writeHeapOnSignal writes a heap profile to path each time the process gets SIGUSR1.
func writeHeapOnSignal(path string) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGUSR1)
	go func() {
		for range c {
			f, err := os.Create(path)
			if err != nil {
				fmt.Fprintln(os.Stderr, "heap profile:", err)
				continue
			}
			runtime.GC()
			_ = pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
	}()
}

// StartCPUProfile profiles this process into path until the returned function is called.
func StartCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// NewHTTPClient is a client for many concurrent long requests to one loopback server.
func NewHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil, // loopback only, whatever the environment says
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}}
}

// PutClient is a PutMedia client for the server at url.
func PutClient(url string, hc *http.Client) *putmedia.Client {
	return &putmedia.Client{Endpoint: url, Region: Region, Credentials: Creds, HTTP: hc}
}

// NewRequest is a SigV4-signed KVS JSON request (POST <url>/<op>) with in as its body.
func NewRequest(ctx context.Context, url, op string, in any) (*http.Request, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/"+op, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(ctx, Creds, req, hex.EncodeToString(sum[:]), "kinesisvideo", Region, time.Now()); err != nil {
		return nil, fmt.Errorf("sign %s: %w", op, err)
	}
	return req, nil
}

// Call sends a signed JSON request to the server at url and returns the answer's body and how
// long the exchange took, from sending the request to the last byte of the answer (signing and
// decoding are outside).
func Call(ctx context.Context, hc *http.Client, url, op string, in any) ([]byte, time.Duration, error) {
	req, err := NewRequest(ctx, url, op, in)
	if err != nil {
		return nil, 0, err
	}
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return nil, 0, err
	}
	out, err := io.ReadAll(resp.Body)
	d := time.Since(start)
	resp.Body.Close()
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("%s: %d %s", op, resp.StatusCode, strings.TrimSpace(string(out)))
	}
	return out, d, nil
}

// listPage is the part of ListFragments' answer the benchmarks read.
type listPage struct {
	Fragments []struct {
		FragmentNumber    string
		ProducerTimestamp float64
	}
	NextToken *string
}

// Listed is one fragment of a ListFragments answer.
type Listed struct {
	Ms     int64 // producer time
	Number string
}

// ListFragments lists [fromMs, toMs] of a stream by producer time with MaxResults 1000,
// following NextToken for at most maxPages calls: the fragments, and the time of each call.
func ListFragments(ctx context.Context, hc *http.Client, url, stream string, fromMs, toMs int64, maxPages int) ([]Listed, []time.Duration, error) {
	in := map[string]any{
		"StreamName": stream,
		"MaxResults": 1000,
		"FragmentSelector": map[string]any{
			"FragmentSelectorType": "PRODUCER_TIMESTAMP",
			"TimestampRange":       map[string]any{"StartTimestamp": float64(fromMs) / 1000, "EndTimestamp": float64(toMs) / 1000},
		},
	}
	var calls []time.Duration
	var out []Listed
	for range maxPages {
		raw, d, err := Call(ctx, hc, url, "listFragments", in)
		if err != nil {
			return out, calls, err
		}
		calls = append(calls, d)
		var p listPage
		if err := json.Unmarshal(raw, &p); err != nil {
			return out, calls, fmt.Errorf("listFragments answer: %w", err)
		}
		for _, f := range p.Fragments {
			out = append(out, Listed{Ms: int64(f.ProducerTimestamp*1000 + 0.5), Number: f.FragmentNumber})
		}
		if p.NextToken == nil || *p.NextToken == "" {
			return out, calls, nil
		}
		in = map[string]any{"StreamName": stream, "MaxResults": 1000, "NextToken": *p.NextToken}
	}
	return out, calls, fmt.Errorf("more than %d pages", maxPages)
}
