package main

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
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/kvsd/kvsd/bench/internal/child"
	"github.com/kvsd/kvsd/internal/putmedia"
)

// Credentials every kvsd this program starts accepts.
const (
	accessKeyID     = "AKIAKVSDBENCHKEY0001"
	secretAccessKey = "kvsdBenchSecretKey/0123456789abcdefghijkl"
	region          = "us-east-1"
)

var creds = aws.Credentials{AccessKeyID: accessKeyID, SecretAccessKey: secretAccessKey}

// childEnv marks a process this program started, so that a test binary, which has no main,
// knows to run the child mode its arguments ask for.
const childEnv = "KVSD_BENCH_CHILD"

// kvsdLauncher starts kvsd processes: the built binary, or (for profiles) this program
// re-executed in its kvsd child mode.
type kvsdLauncher struct {
	bin        string // kvsd binary; "" runs this program's kvsd child mode
	profileDir string // with bin "": write <profileDir>/kvsd-<name>.pprof
	logDir     string
}

// buildKvsd builds ./cmd/kvsd of the module this program belongs to into dir.
func buildKvsd(ctx context.Context, dir string) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "kvsd")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/kvsd")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/kvsd: %v\n%s", err, out)
	}
	return bin, nil
}

func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run from inside the kvsd module (go run ./bench/playback)")
	}
	return filepath.Dir(mod), nil
}

// start runs kvsd serve on dataDir, listening on a free loopback port. name tells its log
// and profile apart from the others of the run.
func (l *kvsdLauncher) start(name, dataDir string) (*kvsd, error) {
	serve := []string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--region", region, "--log-level", "warn"}
	env := []string{"KVSD_ACCESS_KEY_ID=" + accessKeyID, "KVSD_SECRET_ACCESS_KEY=" + secretAccessKey, "KVSD_SESSION_TOKEN=",
		"KVSD_LISTEN=", "KVSD_DATA_DIR=", "KVSD_PUBLIC_URL=", "KVSD_CREDENTIALS_FILE="}
	exe, args := l.bin, serve
	if exe == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		exe, args = self, []string{"-kvsd-server"}
		if l.profileDir != "" {
			args = append(args, "-cpuprofile", filepath.Join(l.profileDir, "kvsd-"+name+".pprof"))
		}
		args = append(append(args, "--"), serve...)
	}
	p, err := child.Start("kvsd", exe, args, append([]string{childEnv + "=1"}, env...), filepath.Join(l.logDir, "kvsd-"+name+".log"))
	if err != nil {
		return nil, err
	}
	return &kvsd{Proc: p, http: newHTTPClient()}, nil
}

// kvsd is a running kvsd.
type kvsd struct {
	*child.Proc
	http *http.Client
}

// newHTTPClient is a client for many concurrent requests to one loopback server.
func newHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil, // loopback only, whatever the environment says
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}}
}

func (k *kvsd) putClient() *putmedia.Client {
	return &putmedia.Client{Endpoint: k.URL, Region: region, Credentials: creds, HTTP: k.http}
}

// apiError is an AWS JSON error answer.
type apiError struct {
	op, code, msg string
	status        int
}

func (e *apiError) Error() string { return fmt.Sprintf("%s: %d %s: %s", e.op, e.status, e.code, e.msg) }

// post sends a SigV4-signed KVS JSON request (POST /<op>) and returns the response, whose body
// the caller closes; a non-200 answer is an *apiError.
func (k *kvsd) post(ctx context.Context, op string, in any) (*http.Response, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, k.URL+"/"+op, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "kinesisvideo", region, time.Now()); err != nil {
		return nil, fmt.Errorf("sign %s: %w", op, err)
	}
	resp, err := k.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var e struct {
			Message string `json:"message"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&e)
		return nil, &apiError{op: op, code: strings.SplitN(resp.Header.Get("x-amzn-ErrorType"), ":", 2)[0], msg: e.Message, status: resp.StatusCode}
	}
	return resp, nil
}

// call is post for requests with a JSON answer, decoded into out.
func (k *kvsd) call(ctx context.Context, op string, in, out any) error {
	resp, err := k.post(ctx, op, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s: decode answer: %w", op, err)
	}
	return nil
}

// get fetches a playback resource (unsigned, as players do) and returns its body.
func (k *kvsd) get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := k.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %d: %.300s", url, resp.StatusCode, body)
	}
	return body, nil
}

// createStreams creates streams with the given retention.
func (k *kvsd) createStreams(ctx context.Context, names []string, retentionHours int) error {
	for _, n := range names {
		var out struct{ StreamARN string }
		if err := k.call(ctx, "createStream", map[string]any{"StreamName": n, "DataRetentionInHours": retentionHours,
			"MediaType": "video/h264"}, &out); err != nil {
			return fmt.Errorf("create stream %s: %w", n, err)
		}
	}
	return nil
}

// epoch is a timestamp as the AWS JSON protocol writes it: seconds, fractional.
func epoch(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

// procMem is a process's resident memory from /proc/<pid>/status, in bytes.
type procMem struct{ RSS, HWM int64 }

func readMem(pid int) (procMem, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procMem{}, err
	}
	var m procMem
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			m.RSS = kb << 10
		case "VmHWM:":
			m.HWM = kb << 10
		}
	}
	return m, nil
}

// resetPeak sets a process's VmHWM back to its current RSS (Linux 4.0 and later); false if
// the kernel does not allow it.
func resetPeak(pid int) bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
}

// cpuTime is a process's CPU time so far, 0 when it cannot be read (it has exited).
func cpuTime(pid int) time.Duration {
	d, _ := child.CPUTime(pid)
	return d
}

// machineBusy is the CPU time all cores spent neither idle, waiting for I/O nor stolen by the
// hypervisor (/proc/stat).
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var ticks int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 7 { // idle, iowait, steal, guest (already in user)
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// cpuSnap is a moment's CPU counters: the machine's busy time, this program's and kvsd's.
type cpuSnap struct {
	at                    time.Time
	machine, self, server time.Duration
}

func snapCPU(serverPID int) cpuSnap {
	return cpuSnap{at: time.Now(), machine: machineBusy(), self: cpuTime(os.Getpid()), server: cpuTime(serverPID)}
}

// cpuUse is what was used between two snaps: kvsd's CPU time, and in cores (CPU seconds per
// wall second) this program's and everything else's (other processes and the kernel's own
// threads), extra being CPU time of children the caller accounts for itself (ffmpeg).
type cpuUse struct {
	wall        time.Duration
	server      time.Duration
	self, other float64
}

func (a cpuSnap) to(b cpuSnap, extra time.Duration) cpuUse {
	wall := b.at.Sub(a.at)
	u := cpuUse{wall: wall, server: b.server - a.server, self: (b.self - a.self).Seconds() / wall.Seconds()}
	rest := b.machine - a.machine - u.server - (b.self - a.self) - extra
	u.other = max(0, rest.Seconds()/wall.Seconds())
	return u
}

func (u cpuUse) serverCores() float64 { return u.server.Seconds() / u.wall.Seconds() }
