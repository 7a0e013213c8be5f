package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kvsd/kvsd/bench/internal/child"
	"github.com/kvsd/kvsd/bench/internal/report"
)

// GetClip's limits (KVS): the first 200 fragments or 100 MiB of the range.
const (
	clipMaxFragments = 200
	clipMaxBytes     = 100 << 20
)

// clipRun is one clip made once, by kvsd or by ffmpeg.
type clipRun struct {
	wall  time.Duration
	cpu   time.Duration // of kvsd or of the ffmpeg process
	bytes int64         // of the MP4
	other float64       // other processes' CPU meanwhile, in cores
}

func (r clipRun) mbps() float64     { return float64(r.bytes) / 1e6 / r.wall.Seconds() }
func (r clipRun) cpuPerMB() float64 { return r.cpu.Seconds() / (float64(r.bytes) / 1e6) }

// clipFragments is what GetClip of frags' range holds: the first 200, at most 100 MiB.
func clipFragments(frags []fragInfo) []fragInfo {
	var size int64
	for i, f := range frags {
		if size += f.Size; i == clipMaxFragments || (i > 0 && size > clipMaxBytes) {
			return frags[:i]
		}
	}
	return frags
}

// getClip has kvsd make the clip of frags (their producer-time range) and reads it into w.
func (k *kvsd) getClip(ctx context.Context, frags []fragInfo, w io.Writer) (clipRun, error) {
	in := map[string]any{"StreamName": archiveStream, "ClipFragmentSelector": map[string]any{
		"FragmentSelectorType": "PRODUCER_TIMESTAMP",
		"TimestampRange": map[string]any{"StartTimestamp": epoch(frags[0].Producer),
			"EndTimestamp": epoch(frags[len(frags)-1].Producer.Add(time.Millisecond))}}}
	snap := snapCPU(k.PID())
	start := time.Now()
	resp, err := k.post(ctx, "getClip", in)
	if err != nil {
		return clipRun{}, err
	}
	// Reads of 1 MiB, as a downloader's (io.Copy's 32 KiB, or io.Discard's 8 KiB, would make the
	// client's read calls, not kvsd, what the wall time measures).
	n, err := io.CopyBuffer(onlyWriter{w}, resp.Body, make([]byte, 1<<20))
	resp.Body.Close()
	wall := time.Since(start)
	use := snap.to(snapCPU(k.PID()), 0)
	r := clipRun{wall: wall, cpu: use.server, bytes: n, other: use.other}
	if err != nil {
		return r, fmt.Errorf("getClip: reading the clip: %w", err)
	}
	return r, nil
}

// ffmpegClip remuxes in (Matroska) to an MP4 with the moov first, as GetClip delivers it.
func ffmpegClip(ctx context.Context, in, out string) (clipRun, error) {
	os.Remove(out)
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
		"-i", in, "-c", "copy", "-movflags", "+faststart", out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	snap := snapCPU(0)
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return clipRun{}, fmt.Errorf("ffmpeg %s: %v: %s", strings.Join(cmd.Args[1:], " "), err, stderr.String())
	}
	st, err := os.Stat(out)
	if err != nil {
		return clipRun{}, err
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return clipRun{wall: wall, cpu: cpu, bytes: st.Size(), other: snap.to(snapCPU(0), cpu).other}, nil
}

// fetchFragments writes GetMediaForFragmentList's answer for frags to path: the baseline's
// input, the same fragments as kvsd stores them, one Matroska document each.
func (k *kvsd) fetchFragments(ctx context.Context, frags []fragInfo, path string) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var total int64
	for chunk := range slices.Chunk(frags, 1000) {
		nums := make([]string, len(chunk))
		for i, fr := range chunk {
			nums[i] = fr.Number
		}
		resp, err := k.post(ctx, "getMediaForFragmentList", map[string]any{"StreamName": archiveStream, "Fragments": nums})
		if err != nil {
			return 0, err
		}
		n, err := io.Copy(f, resp.Body)
		resp.Body.Close()
		if total += n; err != nil {
			return 0, err
		}
	}
	return total, f.Close()
}

// videoFrames is the number of video frames an MP4's moov declares.
func videoFrames(ctx context.Context, path string) (int, error) {
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-select_streams", "v:0",
		"-show_entries", "stream=nb_frames", "-of", "csv=p=0", path).Output()
	if err != nil {
		return 0, fmt.Errorf("ffprobe %s: %w", path, err)
	}
	return strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(string(out)), ",")))
}

// clip runs section 1.
func (b *bench) clip(ctx context.Context) error {
	a, err := b.archive(ctx)
	if err != nil {
		return err
	}
	frags := clipFragments(a.frags[:min(b.cfg.clipFragments, len(a.frags))])
	small := frags[:min(b.cfg.smallClip, len(frags))]
	var size int64
	for _, f := range frags {
		size += f.Size
	}
	fmt.Fprintf(b.out, "## 1. GetClip of %d fragments against ffmpeg -c copy\n\n", len(frags))
	k, err := b.startKvsd("clip", a.dir)
	if err != nil {
		return err
	}
	defer k.Stop()
	input := filepath.Join(b.work, "clip-input.mkv")
	inBytes, err := k.fetchFragments(ctx, frags, input)
	if err != nil {
		return err
	}

	// One clip of each, not counted: page cache, lazy initialisation; their frame counts
	// must agree.
	kvsdMP4, ffMP4 := filepath.Join(b.work, "clip-kvsd.mp4"), filepath.Join(b.work, "clip-ffmpeg.mp4")
	b.logf("clip: warm-up (%d fragments, %.1f MB of Matroska)", len(frags), float64(inBytes)/1e6)
	f, err := os.Create(kvsdMP4)
	if err != nil {
		return err
	}
	_, err = k.getClip(ctx, frags, f)
	f.Close()
	if err != nil {
		return err
	}
	if _, err := ffmpegClip(ctx, input, ffMP4); err != nil {
		return err
	}
	kf, err := videoFrames(ctx, kvsdMP4)
	if err != nil {
		return err
	}
	ff, err := videoFrames(ctx, ffMP4)
	if err != nil {
		return err
	}
	if kf != ff || kf == 0 {
		return fmt.Errorf("kvsd's clip has %d video frames, ffmpeg's remux of the same fragments %d", kf, ff)
	}
	os.Remove(kvsdMP4)

	var kr, fr []clipRun
	for i := range b.cfg.clipRounds {
		kvsdFirst := i%2 == 0 // alternate, so that neither always runs on a warmer machine
		for j := range 2 {
			if (j == 0) == kvsdFirst {
				r, err := k.getClip(ctx, frags, io.Discard)
				if err != nil {
					return err
				}
				kr = append(kr, r)
			} else {
				r, err := ffmpegClip(ctx, input, ffMP4)
				if err != nil {
					return err
				}
				fr = append(fr, r)
			}
		}
		b.logf("clip: round %d: kvsd %.0f MB/s, ffmpeg %.0f MB/s", i+1, kr[i].mbps(), fr[i].mbps())
	}
	if err := k.Stop(); err != nil {
		return err
	}
	km, fm := medianRun(kr), medianRun(fr)
	ratio := km.mbps() / fm.mbps()
	speedOK := ratio >= 3

	t := &report.Table{Head: []string{"remux to MP4 (moov first)", "MP4 size", "wall", "MB/s", "CPU", "CPU s per MB", "other processes' CPU"}}
	t.Add(fmt.Sprintf("kvsd GetClip (%d fragments)", len(frags)), report.MB1(km.bytes), report.MS(km.wall), fmt.Sprintf("%.0f", km.mbps()),
		report.MS(km.cpu), fmt.Sprintf("%.4f", km.cpuPerMB()), report.Cores(km.other))
	t.Add("ffmpeg -c copy -movflags +faststart (same fragments)", report.MB1(fm.bytes), report.MS(fm.wall), fmt.Sprintf("%.0f", fm.mbps()),
		report.MS(fm.cpu), fmt.Sprintf("%.4f", fm.cpuPerMB()), report.Cores(fm.other))
	t.Add("kvsd/ffmpeg", "", "", fmt.Sprintf("**%.2f×** (target ≥ 3×: %s)", ratio, report.Verdict(speedOK)), "",
		fmt.Sprintf("%.2f×", km.cpuPerMB()/fm.cpuPerMB()), "")
	t.Write(b.out)
	fmt.Fprintf(b.out, "Median of %s each, alternating, after one unmeasured clip of each. The clip holds %d video frames "+
		"(%d fragments, %.1f MB of stored media); ffmpeg's input is the same fragments as GetMediaForFragmentList returned them "+
		"(%.1f MB of Matroska, one EBML document per fragment, read from the page cache), its output a file beside it. "+
		"kvsd: from sending the signed request to the clip's last byte at the client (which discards it); CPU is the kvsd "+
		"process's user+system time over that span. ffmpeg: the process's wall time and rusage, start-up included.\n\n",
		report.Plural(b.cfg.clipRounds, "run"), kf, len(frags), float64(size)/1e6, float64(inBytes)/1e6)

	b.results = append(b.results, result{What: fmt.Sprintf("GetClip (%d fragments): ≥ 3× ffmpeg's MB/s", len(frags)),
		Value: fmt.Sprintf("%.2f×", ratio), OK: speedOK, Other: max(km.other, fm.other)})
	return b.clipMemory(ctx, a, small, frags)
}

// medianRun is the run with the median throughput.
func medianRun(runs []clipRun) clipRun {
	s := slices.Clone(runs)
	slices.SortFunc(s, func(a, b clipRun) int { return cmp.Compare(a.mbps(), b.mbps()) })
	return s[len(s)/2]
}

// memSlack is the least growth the memory target allows between the short and the long clip:
// the garbage collector's headroom over a few fragments in flight.
const memSlack = 4 << 20

// clipMemory measures how much kvsd's resident memory grows while it makes a short and a long
// clip, each in a fresh kvsd.
func (b *bench) clipMemory(ctx context.Context, a *archive, small, long []fragInfo) error {
	type memRun struct {
		frags          int
		bytes          int64
		before, growth int64
		peakFromHWM    bool
	}
	var runs []memRun
	for _, frags := range [][]fragInfo{small, long} {
		k, err := b.startKvsd(fmt.Sprintf("clip-mem-%d", len(frags)), a.dir)
		if err != nil {
			return err
		}
		// Warm up the code paths with a one-fragment clip, then measure.
		if _, err := k.getClip(ctx, frags[:1], io.Discard); err != nil {
			k.Stop()
			return err
		}
		time.Sleep(100 * time.Millisecond)
		m0, err := child.ReadMem(k.PID())
		if err != nil {
			k.Stop()
			return err
		}
		hwm := child.ResetPeak(k.PID())
		stop := make(chan struct{})
		var peak int64
		var wg sync.WaitGroup
		wg.Go(func() {
			t := time.NewTicker(5 * time.Millisecond)
			defer t.Stop()
			for {
				if m, err := child.ReadMem(k.PID()); err == nil {
					peak = max(peak, m.RSS)
				}
				select {
				case <-stop:
					return
				case <-t.C:
				}
			}
		})
		r, err := k.getClip(ctx, frags, io.Discard)
		close(stop)
		wg.Wait()
		m1, _ := child.ReadMem(k.PID())
		if hwm {
			peak = max(peak, m1.HWM)
		}
		if err2 := k.Stop(); err == nil {
			err = err2
		}
		if err != nil {
			return err
		}
		runs = append(runs, memRun{frags: len(frags), bytes: r.bytes, before: m0.RSS, growth: max(0, peak-m0.RSS), peakFromHWM: hwm})
		b.logf("clip: %d fragments: RSS %s before, +%s", len(frags), report.MB1(m0.RSS), report.MB1(peak-m0.RSS))
	}
	s, l := runs[0], runs[1]
	allowed := s.growth + max((l.bytes-s.bytes)/10, memSlack)
	flatOK := l.growth <= allowed
	t := &report.Table{Head: []string{"kvsd, fresh process per clip", "clip size", "RSS before", "RSS growth during the clip"}}
	for _, r := range runs {
		t.Add(fmt.Sprintf("GetClip of %d fragments", r.frags), report.MB1(r.bytes), report.MB1(r.before), report.MB1(r.growth))
	}
	t.Add(fmt.Sprintf("target: long ≤ short + 10 %% of the size difference (at least %s)", report.MB1(memSlack)), "", "", fmt.Sprintf("≤ %s: %s", report.MB1(allowed), report.Verdict(flatOK)))
	t.Write(b.out)
	how := "the peak is VmHWM, reset (clear_refs 5) just before the clip, and VmRSS sampled every 5 ms"
	if !s.peakFromHWM {
		how = "the peak is VmRSS sampled every 5 ms (this kernel refused to reset VmHWM)"
	}
	fmt.Fprintf(b.out, "Each clip runs in a kvsd started for it on the same data dir, after a one-fragment clip "+
		"(code paths warm). Growth = peak RSS during the clip − RSS just before it; %s. A kvsd that held the clip in memory "+
		"would grow by about the clip's size.\n\n", how)
	b.results = append(b.results, result{What: "GetClip: RSS growth flat in the clip's length",
		Value: fmt.Sprintf("+%s (%d fragments) vs +%s (%d)", report.MB1(l.growth), l.frags, report.MB1(s.growth), s.frags), OK: flatOK, Other: -1})
	return nil
}

// onlyWriter hides a writer's ReadFrom (io.Discard has one, with 8 KiB reads) so that
// io.CopyBuffer reads with the buffer it is given.
type onlyWriter struct{ io.Writer }
