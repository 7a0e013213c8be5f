package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/kvsd/kvsd/bench/internal/child"
	"github.com/kvsd/kvsd/bench/internal/diskprobe"
	"github.com/kvsd/kvsd/bench/internal/loadgen"
	"github.com/kvsd/kvsd/bench/internal/promhist"
	"github.com/kvsd/kvsd/bench/internal/report"
)

// cameras runs section 2.
func (b *bench) cameras(ctx context.Context) error {
	f := b.media
	n, dur := b.cfg.cameras, b.cfg.camDuration
	fmt.Fprintf(b.out, "## 2. %d simulated real-time cameras\n\n", n)
	k, err := b.startKvsd("cameras", filepath.Join(b.work, "kvsd-cameras"))
	if err != nil {
		return err
	}
	defer k.Stop()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("cam-%03d", i)
	}
	if err := k.createStreams(ctx, names, 24); err != nil {
		return err
	}
	fragDur := f.FragmentDuration()
	clusters := int((dur+fragDur-1)/fragDur) + 1 // the last one only completes the one before
	b.logf("cameras: %d cameras, %d fragments of %s each (about %s)", n, clusters-1, fragDur, dur)

	// Memory: VmHWM is the kernel's peak; sampling VmRSS shows the curve's shape too.
	samplerDone := make(chan struct{})
	var peakSampled int64
	var samplerWG sync.WaitGroup
	samplerWG.Go(func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			if m, err := child.ReadMem(k.PID()); err == nil {
				peakSampled = max(peakSampled, m.RSS)
			}
			select {
			case <-samplerDone:
				return
			case <-t.C:
			}
		}
	})
	memStart, _ := child.ReadMem(k.PID())
	var probe []time.Duration
	samplerWG.Go(func() { probe = diskprobe.Run(filepath.Join(b.work, "disk-probe"), 100*time.Millisecond, samplerDone) })

	pc := k.putClient()
	t0 := time.Now().Add(time.Second)
	cpu0 := snapCPU(k.PID())
	h0 := k.scrapeHistogram(ctx, promhist.StoreAppend)
	ctx, cancel := context.WithTimeout(ctx, dur+fragDur+2*time.Minute)
	defer cancel()
	heap := time.AfterFunc(time.Until(t0.Add(dur*3/4)), k.heapProfile) // all cameras streaming
	defer heap.Stop()
	sum := loadgen.Summarize(loadgen.RunCameras(ctx, pc, f, names, t0, clusters))
	cpu := cpu0.to(snapCPU(k.PID()))
	appends := k.scrapeHistogram(ctx, promhist.StoreAppend).Since(h0)
	close(samplerDone)
	samplerWG.Wait()
	memEnd, err := child.ReadMem(k.PID())
	if err != nil {
		return err
	}
	if err := k.Alive(); err != nil {
		return err
	}

	missing, failed, errAcks, firstErr := sum.Missing, sum.Failed, sum.ErrAcks, sum.FirstErr
	dp, dr, dl, dd := report.NewDist(sum.Persisted), report.NewDist(sum.Received), report.NewDist(sum.Lag), report.NewDist(probe)
	p99ok := len(dp) > 0 && dp.Pct(99) <= 50*time.Millisecond && missing == 0 && failed == 0
	rssOK := memEnd.HWM <= 300e6

	t := &report.Table{Head: []string{"latency per fragment", "samples", "p50", "p90", "p99", "max"}}
	t.AddDist("fragment complete → PERSISTED", dp)
	t.AddDist("fragment complete → RECEIVED", dr)
	t.AddDist("client pacing lag (late pieces only)", dl)
	t.AddDist("disk probe: 4 KiB write + fdatasync, every 100 ms", dd)
	t.Write(b.out)
	m := &report.Table{Head: []string{"kvsd", "value", "target"}}
	m.Add("peak RSS (VmHWM)", report.MB(memEnd.HWM), "≤ 300 MB: "+report.Verdict(rssOK))
	m.Add("RSS at the end (VmRSS)", report.MB(memEnd.RSS), "")
	m.Add("RSS before the cameras started", report.MB(memStart.RSS), "")
	m.Add("highest RSS sampled every 250 ms", report.MB(peakSampled), "")
	m.Add("CPU, mean over the run", fmt.Sprintf("%.2f cores", cpu.server), "")
	m.Add("(CPU of this program: the cameras)", fmt.Sprintf("%.2f cores", cpu.self), "")
	m.Add("(CPU of the kernel outside processes: interrupts, writeback)", fmt.Sprintf("%.2f cores", cpu.kernel), "")
	m.Add("(CPU of other processes, not the benchmark)", fmt.Sprintf("%.2f cores", cpu.other), "")
	m.Add("p99 fragment complete → PERSISTED", report.MS(dp.Pct(99)), "≤ 50 ms: "+report.Verdict(p99ok))
	m.Add("Store.Append per fragment (kvsd's own histogram)", appends.Describe(), "")
	m.Add("fragments without PERSISTED / failed sessions / ERROR acks", fmt.Sprintf("%d / %d / %d", missing, failed, errAcks), "0")
	m.Write(b.out)
	fmt.Fprintf(b.out, "%d cameras, one PutMedia session each, %d fragments of %s per camera (%.1f Mbit/s), "+
		"each block written at its presentation time; camera starts spread at random over the first %s. "+
		"Latency is measured per fragment from the moment the client finished writing the first bytes of the *next* Cluster "+
		"(no server can know a fragment ended before that) to the PERSISTED ack arriving at the client. "+
		"The frame interval between the fragment's last frame and the next Cluster (%s at 30 fps) is not counted; a viewer "+
		"would see it on top. Each camera's last fragment (ended by the end of the body, not by a Cluster) is left out. "+
		"Client pacing lag: how late the client handed out pieces that were already due (writes blocked by back-pressure "+
		"or the CPU being busy); it is 0 for pieces sent on time. Disk probe: this program appends 4 KiB to a file beside kvsd's "+
		"data dir and fdatasyncs it every 100 ms during the run; its tail shows disk stalls that are not kvsd's doing.\n\n",
		n, clusters-1, fragDur, float64(len(f.Raw)*8)/f.Duration().Seconds()/1e6, fragDur, 33*time.Millisecond)
	if firstErr != nil {
		fmt.Fprintf(b.out, "- errors: %d sessions failed; first: %v\n\n", failed, firstErr)
	}
	b.results = append(b.results,
		result{What: fmt.Sprintf("cameras (%d): p99 complete → PERSISTED ≤ 50 ms", n), Value: report.MS(dp.Pct(99)), OK: p99ok, Other: cpu.other},
		result{What: fmt.Sprintf("cameras (%d): kvsd peak RSS ≤ 300 MB", n), Value: report.MB(memEnd.HWM), OK: rssOK, Other: cpu.other})
	b.logf("cameras: p50 %s p99 %s max %s, peak RSS %s", report.MS(dp.Pct(50)), report.MS(dp.Pct(99)), report.MS(dp.Max()), report.MB(memEnd.HWM))
	return nil
}
