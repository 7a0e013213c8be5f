package main

import (
	"bytes"
	"context"
	"fmt"
	"image/jpeg"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kvsd/kvsd/internal/imaging"
	"github.com/kvsd/kvsd/internal/media"
	"github.com/kvsd/kvsd/internal/mkv"
)

// measurement is one contender's run.
type measurement struct {
	Images int
	CPU    time.Duration // user + system CPU of the work (children or this process)
	Wall   time.Duration
	// MachineCPU is the CPU time all processes used meanwhile (/proc/stat); well above CPU
	// means something else was running and the numbers are disturbed.
	MachineCPU time.Duration
	Stages     *imaging.Stats // the media package's own stage timings, for (d)
	// NotMeasured marks a contender that is not implemented yet; Note says why.
	NotMeasured bool
	Note        string
}

// ImagesPerCore is images per CPU second.
func (m measurement) ImagesPerCore() float64 {
	if m.CPU <= 0 {
		return 0
	}
	return float64(m.Images) / m.CPU.Seconds()
}

// median returns the run with the median CPU time.
func median(runs []measurement) measurement {
	s := slices.Clone(runs)
	slices.SortFunc(s, func(a, b measurement) int { return int(a.CPU - b.CPU) })
	return s[(len(s)-1)/2]
}

// measureFFmpegFile is (b): one ffmpeg process over the whole file, decoding keyframes only.
func measureFFmpegFile(ctx context.Context, wl *workload, dir string) (measurement, error) {
	args := []string{"-threads", "1", "-skip_frame", "nokey", "-i", wl.File,
		"-vf", fmt.Sprintf("scale=%d:%d", wl.Spec.Width, wl.Spec.Height), "-fps_mode", "passthrough", "-q:v", "4",
		filepath.Join(dir, "out%04d.jpg")}
	m, err := timeChildren(func() error { return ffmpeg(ctx, args...) })
	if err != nil {
		return m, err
	}
	m.Images, err = countImages(dir, wl.Spec)
	return m, err
}

// measureFFmpegPerFragment is (c): one ffmpeg process per fragment file, each writing the
// fragment's first frame as a JPEG. It gets (b)'s options (one decoder thread, keyframes
// only), the cheapest way to ask ffmpeg for the first frame, so the comparison is not
// flattered by a careless command line.
func measureFFmpegPerFragment(ctx context.Context, wl *workload, dir string) (measurement, error) {
	m, err := timeChildren(func() error {
		for i, frag := range wl.FragmentFiles {
			err := ffmpeg(ctx, "-threads", "1", "-skip_frame", "nokey", "-i", frag,
				"-vf", fmt.Sprintf("scale=%d:%d", wl.Spec.Width, wl.Spec.Height), "-frames:v", "1", "-q:v", "4",
				filepath.Join(dir, fmt.Sprintf("out%04d.jpg", i+1)))
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return m, err
	}
	m.Images, err = countImages(dir, wl.Spec)
	return m, err
}

// measureMediaLoop is (d): in this process, on one goroutine, one Decoder for the stream;
// per fragment mkv.ReadFrames on its bytes and Decoder.Render at the fragment's sample
// times. Writing the images out is not timed.
func measureMediaLoop(ctx context.Context, wl *workload, dir string) (measurement, error) {
	return mediaLoop(wl, wl.Spec, dir)
}

// measureMediaLoopExact is (e): (d) decoding every picture exactly (imaging.Spec.Exact), with
// the deblocking filter that (d) skips on keyframes decoded alone for a small image.
func measureMediaLoopExact(ctx context.Context, wl *workload, dir string) (measurement, error) {
	spec := wl.Spec
	spec.Exact = true
	return mediaLoop(wl, spec, dir)
}

func mediaLoop(wl *workload, spec imaging.Spec, dir string) (measurement, error) {
	runtime.GC() // start without the previous contender's garbage
	var images [][]byte
	var stats imaging.Stats
	// A fragment ends where the next starts (ms timecodes), as kvsd's ingest measures it.
	starts := make([]uint64, len(wl.Fragments))
	for i, frag := range wl.Fragments {
		_, _, tc, err := splitFragment(frag)
		if err != nil {
			return measurement{}, err
		}
		starts[i] = tc
	}
	m, err := timeSelf(func() error {
		dec, err := media.NewDecoder(wl.Track.CodecID, wl.Track.CodecPrivate)
		if err != nil {
			return err
		}
		defer dec.Close()
		var packets []imaging.Packet
		var at []time.Duration
		for i, frag := range wl.Fragments {
			hdr, frames, err := mkv.ReadFrames(frag, mkv.Limits{})
			if err != nil {
				return err
			}
			end := time.Duration(-1)
			if i+1 < len(starts) {
				end = time.Duration(starts[i+1]) * time.Duration(hdr.TimecodeScale)
			}
			packets = packets[:0]
			for _, f := range frames {
				if f.Track == wl.Track.Number {
					pts := time.Duration(f.Timecode) * time.Duration(hdr.TimecodeScale)
					packets = append(packets, imaging.Packet{Data: f.Data, PTS: pts, Key: f.Keyframe})
				}
			}
			if len(packets) == 0 {
				continue
			}
			// Sample times: the multiples of the interval on the video's clock that fall in the
			// fragment (as kvsd samples), from its first frame to the end of its last.
			at = at[:0]
			start := packets[0].PTS
			for _, p := range packets {
				start = min(start, p.PTS)
			}
			if end < 0 { // the last fragment: its frames, in whole ms as ingest measures a duration
				end = start + (time.Duration(len(packets)) * wl.FrameStep).Truncate(time.Millisecond)
			}
			for t := (start + wl.Interval - 1) / wl.Interval * wl.Interval; t < end; t += wl.Interval {
				at = append(at, t)
			}
			for _, r := range dec.Render(packets, at, spec) {
				if r.Err != nil {
					return fmt.Errorf("render at %v: %w", r.At, r.Err)
				}
				images = append(images, r.Image)
			}
		}
		stats = dec.Stats()
		return nil
	})
	if err != nil {
		return m, err
	}
	m.Stages = &stats
	for i, img := range images {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("out%04d.jpg", i+1)), img, 0o644); err != nil {
			return m, err
		}
	}
	m.Images, err = countImages(dir, wl.Spec)
	return m, err
}

// measureFFmpegFPS is (f), the seed workload's ffmpeg: one run over the whole file, decoding
// every frame, the fps filter picking one per interval.
func measureFFmpegFPS(ctx context.Context, wl *workload, dir string) (measurement, error) {
	args := []string{"-threads", "1", "-i", wl.File,
		"-vf", fmt.Sprintf("fps=%g,scale=%d:%d", float64(time.Second)/float64(wl.Interval), wl.Spec.Width, wl.Spec.Height),
		"-q:v", "4", filepath.Join(dir, "out%04d.jpg")}
	m, err := timeChildren(func() error { return ffmpeg(ctx, args...) })
	if err != nil {
		return m, err
	}
	m.Images, err = countImages(dir, wl.Spec)
	return m, err
}

// ffmpeg runs the ffmpeg CLI quietly.
func ffmpeg(ctx context.Context, args ...string) error {
	args = append([]string{"-hide_banner", "-loglevel", "error", "-nostdin", "-y"}, args...)
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ffmpeg", args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ffmpeg %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return nil
}

// timeChildren measures the CPU time of the child processes f waits for.
func timeChildren(f func() error) (measurement, error) {
	return timeRusage(syscall.RUSAGE_CHILDREN, f)
}

// timeSelf measures the CPU time of this process (every thread) while f runs.
func timeSelf(f func() error) (measurement, error) {
	return timeRusage(syscall.RUSAGE_SELF, f)
}

func timeRusage(who int, f func() error) (measurement, error) {
	before, err := rusageCPU(who)
	if err != nil {
		return measurement{}, err
	}
	t0 := time.Now()
	err = f()
	wall := time.Since(t0)
	after, err2 := rusageCPU(who)
	if err == nil {
		err = err2
	}
	return measurement{CPU: after - before, Wall: wall}, err
}

func rusageCPU(who int) (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// countImages counts the JPEGs in dir, checking that each decodes to the wanted size.
func countImages(dir string, spec imaging.Spec) (int, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.jpg"))
	if err != nil {
		return 0, err
	}
	for _, n := range names {
		f, err := os.Open(n)
		if err != nil {
			return 0, err
		}
		cfg, err := jpeg.DecodeConfig(f)
		f.Close()
		if err != nil {
			return 0, fmt.Errorf("%s: %w", n, err)
		}
		if cfg.Width != spec.Width || cfg.Height != spec.Height {
			return 0, fmt.Errorf("%s is %d×%d, want %d×%d", n, cfg.Width, cfg.Height, spec.Width, spec.Height)
		}
	}
	return len(names), nil
}

// machineBusy returns the CPU time all CPUs spent outside idle and iowait so far.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var ticks int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is already in user
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}
