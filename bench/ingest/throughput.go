package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/kvsd/kvsd/bench/internal/child"
	"github.com/kvsd/kvsd/bench/internal/kvsdproc"
	"github.com/kvsd/kvsd/bench/internal/loadgen"
	"github.com/kvsd/kvsd/bench/internal/promhist"
	"github.com/kvsd/kvsd/bench/internal/report"
	"github.com/kvsd/kvsd/internal/putmedia"
)

// tpResult is one throughput configuration against one server.
type tpResult struct {
	streams          int
	loadgen.Replayed // Acks: PERSISTED acks (kvsd) or sync acks (baseline)
	cpu              cpuUse
}

// merge adds up two runs of the same configuration.
func (r *tpResult) merge(o *tpResult) *tpResult {
	w1, w2 := r.Wall.Seconds(), o.Wall.Seconds()
	avg := func(a, b float64) float64 { return (a*w1 + b*w2) / (w1 + w2) }
	return &tpResult{streams: r.streams, Replayed: r.Replayed.Plus(o.Replayed),
		cpu: cpuUse{server: avg(r.cpu.server, o.cpu.server), self: avg(r.cpu.self, o.cpu.self),
			kernel: avg(r.cpu.kernel, o.cpu.kernel), other: avg(r.cpu.other, o.cpu.other)}}
}

func (r *tpResult) mbps() float64   { return r.MBps() }
func (r *tpResult) fragps() float64 { return float64(r.Acks) / r.Wall.Seconds() }

// runLoad is loadgen.Replay with the CPU the server, this program and the machine used.
func runLoad(ctx context.Context, pc *putmedia.Client, names []string, body []byte, dur time.Duration, wantAcks int, serverPID int) *tpResult {
	cpu0 := snapCPU(serverPID)
	r := loadgen.Replay(ctx, pc, names, body, dur, wantAcks)
	return &tpResult{streams: len(names), Replayed: r, cpu: cpu0.to(snapCPU(serverPID))}
}

// throughput runs section 1.
func (b *bench) throughput(ctx context.Context) error {
	f := b.media
	fmt.Fprintf(b.out, "## 1. Aggregate ingest throughput\n\n")
	b.logf("throughput: starting the baseline server and kvsd")
	baseDir := filepath.Join(b.work, "baseline")
	self, err := os.Executable()
	if err != nil {
		return err
	}
	baseArgs := []string{"-baseline-server", "-baseline-dir", baseDir, "-sync-bytes", fmt.Sprint(f.MeanFragment())}
	if b.cfg.kvsdProfileDir != "" {
		baseArgs = append(baseArgs, "-cpuprofile", filepath.Join(b.cfg.kvsdProfileDir, "baseline.pprof"))
	}
	base, err := child.Start("baseline", self, baseArgs, []string{kvsdproc.ChildEnv + "=1"}, filepath.Join(b.work, "baseline.log"))
	if err != nil {
		return err
	}
	defer base.Stop()
	k, err := b.startKvsd("throughput", filepath.Join(b.work, "kvsd-throughput"))
	if err != nil {
		return err
	}
	defer k.Stop()
	var kc *kvsd // media in clear, when compared
	if b.clear != nil {
		if kc, err = startWith(b.clear, "throughput-clear", filepath.Join(b.work, "kvsd-throughput-clear")); err != nil {
			return err
		}
		defer kc.Stop()
	}
	basePC := &putmedia.Client{Endpoint: base.URL, Region: kvsdproc.Region, Credentials: kvsdproc.Creds, HTTP: kvsdproc.NewHTTPClient()}

	t := &report.Table{Head: []string{"streams", "server", "MB/s", "fragments/s", "PutMedia calls", "server CPU", "client CPU",
		"kernel CPU", "other CPU", "kvsd/baseline", "target ≥ 70 %"}}
	appends := &report.Table{Head: []string{"streams", "kvsd Store.Append per fragment (kvsd's own histogram: media synced, index committed)"}}
	var notes []string
	for _, n := range b.cfg.streams {
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("tp%d-%03d", n, i)
		}
		if err := k.createStreams(ctx, names, 24); err != nil {
			return err
		}
		if kc != nil {
			if err := kc.createStreams(ctx, names, 24); err != nil {
				return err
			}
		}
		// ABBA: baseline, kvsd, kvsd, baseline, each for half the time, so that a disk or
		// machine that speeds up or slows down during the row favours neither. With the
		// clear kvsd: baseline, kvsd, clear, clear, kvsd, baseline.
		half := b.cfg.tpDuration / 2
		load := func(who string, pc *putmedia.Client, p *child.Proc) (*tpResult, error) {
			settle(baseDir)
			b.logf("throughput: %s against %s for %s", report.Plural(n, "stream"), who, half)
			r := runLoad(ctx, pc, names, f.Raw, half, len(f.Clusters), p.PID())
			return r, p.Alive()
		}
		rb1, err := load("the baseline", basePC, base)
		if err != nil {
			return err
		}
		h0 := k.scrapeHistogram(ctx, promhist.StoreAppend)
		rk1, err := load("kvsd", k.putClient(), k.Proc)
		if err != nil {
			return err
		}
		var rc *tpResult
		if kc != nil {
			rc1, err := load("kvsd with media in clear", kc.putClient(), kc.Proc)
			if err != nil {
				return err
			}
			rc2, err := load("kvsd with media in clear", kc.putClient(), kc.Proc)
			if err != nil {
				return err
			}
			rc = rc1.merge(rc2)
		}
		rk2, err := load("kvsd", k.putClient(), k.Proc)
		if err != nil {
			return err
		}
		appends.Add(n, k.scrapeHistogram(ctx, promhist.StoreAppend).Since(h0).Describe())
		rb2, err := load("the baseline", basePC, base)
		if err != nil {
			return err
		}
		rb, rk := rb1.merge(rb2), rk1.merge(rk2)
		ratio := rk.mbps() / rb.mbps() * 100
		row := func(who string, r *tpResult, ratio, target string) {
			t.Add(n, who, fmt.Sprintf("%.1f", r.mbps()), fmt.Sprintf("%.1f", r.fragps()), r.Puts,
				report.Cores(r.cpu.server), report.Cores(r.cpu.self), report.Cores(r.cpu.kernel), report.Cores(r.cpu.other), ratio, target)
		}
		row("baseline", rb, "", "")
		row("kvsd", rk, fmt.Sprintf("%.0f %%", ratio), report.Verdict(ratio >= 70))
		if rc != nil {
			clearRatio := rc.mbps() / rb.mbps() * 100
			row("kvsd, media in clear", rc, fmt.Sprintf("%.0f %%", clearRatio), "")
			b.results = append(b.results, result{What: fmt.Sprintf("throughput, %s: encryption at rest, encrypted/clear (reported)", report.Plural(n, "stream")),
				Value: fmt.Sprintf("%.0f %%", rk.mbps()/rc.mbps()*100), OK: true, Other: rc.cpu.other})
			b.logf("throughput: %d streams: kvsd with media in clear %.1f MB/s; encrypted/clear %.0f %%", n, rc.mbps(), rk.mbps()/rc.mbps()*100)
		}
		b.results = append(b.results, result{What: fmt.Sprintf("throughput, %s: kvsd/baseline ≥ 70 %%", report.Plural(n, "stream")), Value: fmt.Sprintf("%.0f %%", ratio),
			OK: ratio >= 70, Other: max(rb.cpu.other, rk.cpu.other)})
		for _, r := range []struct {
			who string
			r   *tpResult
		}{{"baseline", rb}, {"kvsd", rk}, {"kvsd, media in clear", rc}} {
			if r.r == nil {
				continue
			}
			if r.r.Errs > 0 || r.r.Short > 0 {
				notes = append(notes, fmt.Sprintf("%d streams, %s: %d of %d calls failed (first: %v), %d complete calls got fewer than %d acks",
					n, r.who, r.r.Errs, r.r.Puts, r.r.FirstErr, r.r.Short, len(f.Clusters)))
			}
		}
		b.logf("throughput: %d streams: baseline %.1f MB/s, kvsd %.1f MB/s (%.0f %%)", n, rb.mbps(), rk.mbps(), ratio)
	}
	t.Write(b.out)
	appends.Write(b.out)
	fmt.Fprintf(b.out, "Each stream sends the %.1f MB test file (%d fragments of %s, %d KB mean) through PutMedia again and again, "+
		"in 32 KiB HTTP chunks, for %s per server and stream count, in two halves ordered baseline, kvsd, kvsd, baseline; "+
		"calls in flight at the end of a half finish. MB/s = 10^6 bytes of PutMedia body "+
		"per second of wall time, all streams together. kvsd fragments/s counts PERSISTED acks; baseline fragments/s counts "+
		"its sync acks (one f.Sync() per %d bytes received, the file's mean fragment size). CPU columns are cores "+
		"(CPU seconds per wall second, user+system): the server process, this program (the producers), the kernel outside "+
		"any process (interrupts, writeback and journal threads: mostly the servers' I/O), and other processes on the machine "+
		"(not part of the benchmark; numbers taken while they are well above 0 are less trustworthy). "+
		"Each stream count has its own fresh streams; before each half the baseline's files are removed and dirty pages flushed. "+
		"kvsd encrypts the media at rest (AES-256-GCM, key file); \"kvsd, media in clear\" is the same source built with -tags "+kvsdproc.ClearTag+
		" (when compared: its two halves run between kvsd's, so the order is baseline, kvsd, clear, clear, kvsd, baseline).\n\n",
		float64(len(f.Raw))/1e6, len(f.Clusters), f.FragmentDuration().Round(time.Millisecond), f.MeanFragment()/1000,
		b.cfg.tpDuration, f.MeanFragment())
	for _, n := range notes {
		fmt.Fprintf(b.out, "- errors: %s\n", n)
	}
	if len(notes) > 0 {
		fmt.Fprintln(b.out)
	}
	return nil
}

// settle empties the baseline's directory and flushes dirty pages, so one run does not pay
// for the previous one's writes.
func settle(baseDir string) {
	entries, _ := os.ReadDir(baseDir)
	for _, e := range entries {
		_ = os.Remove(filepath.Join(baseDir, e.Name()))
	}
	syscall.Sync()
	time.Sleep(500 * time.Millisecond)
}
