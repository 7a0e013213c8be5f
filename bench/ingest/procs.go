package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"

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

// proc is a server process: kvsd or the baseline.
type proc struct {
	name string
	cmd  *exec.Cmd
	URL  string
	done chan error
	log  string // its stderr, for the error message when it dies
}

var urlLine = regexp.MustCompile(`serving (?:the KVS API|the baseline) on (http://127\.0\.0\.1:[0-9]+)`)

// startProc runs exe with args, waits for the line announcing its URL on stdout, and returns.
// stderr goes to logPath.
func startProc(name, exe string, args []string, env []string, logPath string) (*proc, error) {
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), append([]string{childEnv + "=1"}, env...)...)
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan error, 1), log: logPath}
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := urlLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case urlc <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, out)
		p.done <- cmd.Wait()
		logf.Close()
	}()
	select {
	case p.URL = <-urlc:
		return p, nil
	case err := <-p.done:
		p.done <- err
		return nil, fmt.Errorf("%s exited before serving (%v): %s", name, err, tail(logPath))
	case <-time.After(60 * time.Second):
		_ = p.stop()
		return nil, fmt.Errorf("%s did not announce its URL within 60 s: %s", name, tail(logPath))
	}
}

// stop ends the process with SIGTERM (SIGKILL after 30 s) and waits for it.
func (p *proc) stop() error {
	if p == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		err := <-p.done
		p.done <- err
		return fmt.Errorf("%s ignored SIGTERM for 30 s; killed", p.name)
	}
}

// alive reports an error if the process has exited.
func (p *proc) alive() error {
	select {
	case err := <-p.done:
		p.done <- err
		return fmt.Errorf("%s exited (%v): %s", p.name, err, tail(p.log))
	default:
		return nil
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

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

// cpuTime is the user+system CPU time a process has used (/proc/<pid>/stat; USER_HZ is 100 on
// every Linux this runs on).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
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
	p, err := startProc("kvsd", exe, args, env, filepath.Join(l.logDir, "kvsd-"+section+".log"))
	if err != nil {
		return nil, err
	}
	k := newKvsd(p)
	k.profiling = l.bin == "" && l.profileDir != ""
	return k, nil
}

// kvsd is a running kvsd with clients for it.
type kvsd struct {
	*proc
	http      *http.Client
	kv        *kinesisvideo.Client
	profiling bool // a bench child: SIGUSR1 writes a heap profile
}

// heapProfile has a profiling kvsd write its heap profile now.
func (k *kvsd) heapProfile() {
	if k.profiling {
		_ = k.cmd.Process.Signal(syscall.SIGUSR1)
	}
}

func newKvsd(p *proc) *kvsd {
	hc := newHTTPClient()
	kv := kinesisvideo.NewFromConfig(aws.Config{
		Region:           region,
		Credentials:      credentials.NewStaticCredentialsProvider(accessKeyID, secretAccessKey, ""),
		RetryMaxAttempts: 1,
		HTTPClient:       hc,
	}, func(o *kinesisvideo.Options) { o.BaseEndpoint = aws.String(p.URL) })
	return &kvsd{proc: p, http: hc, kv: kv}
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
