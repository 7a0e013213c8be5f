package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"

	"github.com/kvsd/kvsd/bench/internal/child"
	"github.com/kvsd/kvsd/bench/internal/kvsdproc"
	"github.com/kvsd/kvsd/bench/internal/machine"
	"github.com/kvsd/kvsd/internal/putmedia"
)

// startKvsd runs kvsd serve on dataDir (kvsdproc.Launcher.Start) and makes clients for it.
func (b *bench) startKvsd(section, dataDir string) (*kvsd, error) {
	return startWith(b.kvsd, section, dataDir)
}

// startWith is startKvsd with the Launcher l (b.clear: media in clear).
func startWith(l *kvsdproc.Launcher, section, dataDir string) (*kvsd, error) {
	p, err := l.Start(section, dataDir)
	if err != nil {
		return nil, err
	}
	k := newKvsd(p)
	k.profiling = l.Profiling()
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
	hc := kvsdproc.NewHTTPClient()
	kv := kinesisvideo.NewFromConfig(aws.Config{
		Region:           kvsdproc.Region,
		Credentials:      credentials.NewStaticCredentialsProvider(kvsdproc.AccessKeyID, kvsdproc.SecretAccessKey, ""),
		RetryMaxAttempts: 1,
		HTTPClient:       hc,
	}, func(o *kinesisvideo.Options) { o.BaseEndpoint = aws.String(p.URL) })
	return &kvsd{Proc: p, http: hc, kv: kv}
}

func (k *kvsd) putClient() *putmedia.Client { return kvsdproc.PutClient(k.URL, k.http) }

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

// cpuSnap is a moment's CPU counters: the whole machine's busy time, the kernel's own (irq,
// softirq, kernel threads: mostly work for our I/O), this process's and a server's. What is
// left is other processes, which make a measurement less trustworthy.
type cpuSnap struct {
	at                         time.Time
	machine, irq, self, server time.Duration
	kthreads                   map[int]time.Duration // by pid: kernel threads come and go
}

func snapCPU(serverPID int) cpuSnap {
	busy, irq := machine.Busy()
	self, _ := child.CPUTime(os.Getpid())
	server, _ := child.CPUTime(serverPID) // 0 once it has exited
	return cpuSnap{at: time.Now(), machine: busy, irq: irq, kthreads: kernelThreads(), self: self, server: server}
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
