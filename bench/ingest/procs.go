package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"

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

// cpuTime is a process's CPU time so far, 0 when it cannot be read (it has exited).
func cpuTime(pid int) time.Duration {
	d, _ := child.CPUTime(pid)
	return d
}

// kvsdLauncher starts kvsd processes: the built binary, or (for CPU profiles) this program
// re-executed in its kvsd child mode.
type kvsdLauncher struct {
	bin        string // kvsd binary; "" runs this program's kvsd child mode
	profileDir string // with bin "": write <profileDir>/kvsd-<section>.pprof
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
		return "", errors.New("run from inside the kvsd module (go run ./bench/ingest)")
	}
	return filepath.Dir(mod), nil
}

// start runs kvsd serve on dataDir, listening on a free loopback port.
func (l *kvsdLauncher) start(section, dataDir string) (*kvsd, error) {
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
			args = append(args, "-cpuprofile", filepath.Join(l.profileDir, "kvsd-"+section+".pprof"),
				"-heapprofile", filepath.Join(l.profileDir, "kvsd-"+section+"-heap.pprof"))
		}
		args = append(append(args, "--"), serve...)
	}
	p, err := child.Start("kvsd", exe, args, append([]string{childEnv + "=1"}, env...), filepath.Join(l.logDir, "kvsd-"+section+".log"))
	if err != nil {
		return nil, err
	}
	k := newKvsd(p)
	k.profiling = l.bin == "" && l.profileDir != ""
	return k, nil
}

// kvsd is a running kvsd with clients for it.
type kvsd struct {
	*child.Proc
	http      *http.Client
	kv        *kinesisvideo.Client
	profiling bool // a bench child: SIGUSR1 writes a heap profile
}

// heapProfile has a profiling kvsd write its heap profile now.
func (k *kvsd) heapProfile() {
	if k.profiling {
		_ = k.Cmd.Process.Signal(syscall.SIGUSR1)
	}
}

func newKvsd(p *child.Proc) *kvsd {
	hc := newHTTPClient()
	kv := kinesisvideo.NewFromConfig(aws.Config{
		Region:           region,
		Credentials:      credentials.NewStaticCredentialsProvider(accessKeyID, secretAccessKey, ""),
		RetryMaxAttempts: 1,
		HTTPClient:       hc,
	}, func(o *kinesisvideo.Options) { o.BaseEndpoint = aws.String(p.URL) })
	return &kvsd{Proc: p, http: hc, kv: kv}
}

func (k *kvsd) putClient() *putmedia.Client {
	return &putmedia.Client{Endpoint: k.URL, Region: region, Credentials: creds, HTTP: k.http}
}

// createStreams creates streams with the given retention.
func (k *kvsd) createStreams(ctx context.Context, names []string, retentionHours int32) error {
	for _, n := range names {
		if _, err := k.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{
			StreamName: aws.String(n), DataRetentionInHours: aws.Int32(retentionHours), MediaType: aws.String("video/h264"),
		}); err != nil {
			return fmt.Errorf("create stream %s: %w", n, err)
		}
	}
	return nil
}

// newHTTPClient is a client for many concurrent long requests to one loopback server.
func newHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil, // loopback only, whatever the environment says
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}}
}

// cpuSnap is a moment's CPU counters: the whole machine's busy time, the kernel's own (irq,
// softirq, kernel threads: mostly work for our I/O), this process's and a server's. What is
// left is other processes, which make a measurement less trustworthy.
type cpuSnap struct {
	at                         time.Time
	machine, irq, self, server time.Duration
	kthreads                   map[int]time.Duration // by pid: kernel threads come and go
}

func snapCPU(serverPID int) cpuSnap {
	machine, irq := machineBusy()
	return cpuSnap{at: time.Now(), machine: machine, irq: irq, kthreads: kernelThreads(), self: cpuTime(os.Getpid()), server: cpuTime(serverPID)}
}

// kernelSince is the CPU time of interrupts and kernel threads since a: threads that exited
// meanwhile are lost (their time counts as other processes'), new ones count whole.
func (b cpuSnap) kernelSince(a cpuSnap) time.Duration {
	d := b.irq - a.irq
	for pid, t := range b.kthreads {
		if old, ok := a.kthreads[pid]; ok && old <= t {
			t -= old
		}
		d += t
	}
	return d
}

// cpuUse is CPU used between two snaps, in cores (CPU seconds per wall second).
type cpuUse struct{ server, self, kernel, other float64 }

func (a cpuSnap) to(b cpuSnap) cpuUse {
	wall := b.at.Sub(a.at).Seconds()
	u := cpuUse{
		server: (b.server - a.server).Seconds() / wall,
		self:   (b.self - a.self).Seconds() / wall,
		kernel: b.kernelSince(a).Seconds() / wall,
	}
	u.other = max(0, (b.machine-a.machine).Seconds()/wall-u.server-u.self-u.kernel)
	return u
}

// machineBusy is the CPU time all cores spent neither idle, waiting for I/O nor stolen by the
// hypervisor, and the part of it spent in interrupts (/proc/stat).
func machineBusy() (busy, irq time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0
	}
	var ticks, irqTicks int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		switch i {
		case 3, 4, 7, 8, 9: // idle, iowait, steal; guest times are already in user
			continue
		case 5, 6:
			irqTicks += n
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, time.Duration(irqTicks) * 10 * time.Millisecond
}

// kernelThreads is the CPU time of each kernel thread (writeback, workqueues, ...).
func kernelThreads() map[int]time.Duration {
	ents, _ := os.ReadDir("/proc")
	out := map[int]time.Duration{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 13 {
			continue
		}
		flags, _ := strconv.ParseUint(f[6], 10, 64)
		if flags&0x00200000 == 0 { // PF_KTHREAD
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		out[pid] = time.Duration(ut+st) * 10 * time.Millisecond
	}
	return out
}
