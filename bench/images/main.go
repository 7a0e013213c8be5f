// Command images benchmarks image generation: how many images per second one core makes from
// stored fragments, for kvsd and for the ffmpeg command lines people use instead. It prints a
// Markdown report on stdout (progress goes to stderr).
//
// The workload is the issue's: a 60 s 1080p30 H.264 file at 2 Mbit/s, a keyframe every 30
// frames (so 60 one-second fragments, one per Cluster), one 320×240 JPEG per second. The
// contenders, measured side by side in one run:
//
//	(a) kvsd's whole path: stored fragments → images in the local bucket (measureKVSD);
//	(b) one ffmpeg run over the whole file, decoding keyframes only (-skip_frame nokey);
//	(c) one ffmpeg run per 1-second fragment, each extracting its first frame (the
//	    do-it-yourself pattern; the file is split into fragments first, untimed);
//	(d) the bare loop of the media package: mkv.ReadFrames + Decoder.Render per fragment,
//	    on one core — the limit for (a);
//	(e) (d) with imaging.Spec.Exact: what the deblocking shortcut on keyframes saves.
//
// A second section measures delivery latency: kvsd with -latency-streams streams (default 50)
// fed the video in real time, one image per second each, from the PERSISTED ack to the image
// file appearing in the local bucket.
//
// -workload seed (or all) adds the seed user's workload (seedX264, seedCABAC in workload.go):
// 1080p30 H.264 with a keyframe every 25 frames, one 833-ms fragment per keyframe as kvssink
// cuts them, 320×240 every 200 ms, so every frame is decoded; once with the seed's encoder
// settings (x264 ultrafast, zerolatency, 1 Mbit/s) and once CABAC with B-frames. Contenders:
//
//	(a) kvsd's whole path, as above;
//	(f) `ffmpeg -threads 1 -i f.mkv -vf fps=5,scale=320:240 -q:v 4 out%04d.jpg`;
//	(d) the bare loop of the media package, as above, sampling as kvsd does.
//
// CPU time comes from getrusage: RUSAGE_CHILDREN for the ffmpeg runs, RUSAGE_SELF for the
// in-process loop. images/s per core = images ÷ CPU seconds. Run it from the repository root:
//
//	go run ./bench/images            # about 1 minute, plus 20 s to make the video once
//	go run ./bench/images -rounds 1  # one round instead of the median of three
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// config is one benchmark run.
type config struct {
	cacheDir string // the test video, kept between runs
	workDir  string // fragments and outputs; "" makes (and removes) a temporary one
	keep     bool
	rounds   int         // each contender runs this many times; the report shows the median
	video    *videoSpec  // the 1-per-second workload; nil skips it
	seed     []videoSpec // the seed user's workload, one section per encode
	// latencyStreams streams run the latency section (0: skip it), for latencySeconds of
	// the video each (0: all of it).
	latencyStreams, latencySeconds int
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("images", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cacheDir := fs.String("cache-dir", filepath.Join(os.TempDir(), "kvsd-bench-cache"), "keeps the test video between runs")
	workDir := fs.String("work-dir", "", "fragments and images of this run (default: a new temporary directory, removed afterwards)")
	keep := fs.Bool("keep", false, "keep the work dir")
	rounds := fs.Int("rounds", 3, "run each contender this many times (interleaved) and report the median")
	latencyStreams := fs.Int("latency-streams", 50, "streams of the delivery-latency section, fed in real time (0 skips it)")
	latencySeconds := fs.Int("latency-seconds", 0, "seconds of video each latency stream sends (default: all of it)")
	which := fs.String("workload", "1s", "1s (one image per second), seed (the seed user's 200-ms sampling, two encodes) or all")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *rounds < 1 {
		fmt.Fprintln(stderr, "images: -rounds must be at least 1")
		return 2
	}
	cfg := config{cacheDir: *cacheDir, workDir: *workDir, keep: *keep, rounds: *rounds,
		latencyStreams: *latencyStreams, latencySeconds: *latencySeconds}
	switch *which {
	case "1s":
		cfg.video = &fullHD
	case "seed":
		cfg.seed = []videoSpec{seedX264, seedCABAC}
	case "all":
		cfg.video, cfg.seed = &fullHD, []videoSpec{seedX264, seedCABAC}
	default:
		fmt.Fprintf(stderr, "images: -workload %q: want 1s, seed or all\n", *which)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runBench(ctx, cfg, stdout, stderr, "go run ./bench/images "+strings.Join(args, " ")); err != nil {
		fmt.Fprintln(stderr, "images:", err)
		return 1
	}
	return 0
}

// runBench prepares the workload, measures every contender cfg.rounds times, interleaved so
// that a disturbance hits them alike, and writes the report.
func runBench(ctx context.Context, cfg config, out, log io.Writer, command string) error {
	started := time.Now()
	work := cfg.workDir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "kvsd-bench-images-"); err != nil {
			return err
		}
		if !cfg.keep {
			defer os.RemoveAll(work)
		}
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	if cfg.video != nil {
		if err := runOneSecond(ctx, cfg, work, out, log, command, started); err != nil {
			return err
		}
	}
	for _, spec := range cfg.seed {
		if err := runSeed(ctx, cfg, spec, work, out, log, command, started); err != nil {
			return fmt.Errorf("%s: %w", spec.Name, err)
		}
	}
	return nil
}

// runOneSecond is the one-image-per-second workload with its five contenders and the
// delivery-latency section.
func runOneSecond(ctx context.Context, cfg config, work string, out, log io.Writer, command string, started time.Time) error {
	fmt.Fprintf(log, "images: making or loading the test video (%s)…\n", cfg.video.Name)
	wl, err := prepare(ctx, *cfg.video, cfg.cacheDir, filepath.Join(work, "1s"))
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "images: %d fragments of %s, %d bytes; work dir %s\n", len(wl.Fragments), wl.FragmentDuration, wl.FileSize, work)

	contenders := []contender{
		{"a", "kvsd, whole path: stored fragments → images in the local bucket", measureKVSD},
		{"a0", "(a) with the media stored in clear (no encryption at rest)", measureKVSDClear},
		{"b", "`ffmpeg -threads 1 -skip_frame nokey -i f.mkv -vf scale=320:240 -fps_mode passthrough -q:v 4 out%04d.jpg`", measureFFmpegFile},
		{"c", "ffmpeg spawned once per 1-s fragment (`ffmpeg -threads 1 -skip_frame nokey -i fragNNN.mkv -vf scale=320:240 -frames:v 1 -q:v 4 outNNNN.jpg`)", measureFFmpegPerFragment},
		{"d", "media package loop: `mkv.ReadFrames` + `Decoder.Render` per fragment, one core", measureMediaLoop},
		{"e", "(d) decoding exactly: keyframes keep the deblocking filter (`imaging.Spec.Exact`)", measureMediaLoopExact},
	}
	results, err := measureAll(ctx, cfg, wl, contenders, filepath.Join(work, "1s"), log)
	if err != nil {
		return err
	}
	var lat *latency
	if cfg.latencyStreams > 0 {
		seconds := cfg.latencySeconds
		if seconds <= 0 {
			seconds = len(wl.Fragments)
		}
		fmt.Fprintf(log, "images: delivery latency, %d streams × %d s in real time…\n", cfg.latencyStreams, seconds)
		l, err := measureLatency(ctx, wl, filepath.Join(work, "latency"), cfg.latencyStreams, seconds)
		if err != nil {
			return fmt.Errorf("latency: %w", err)
		}
		lat = &l
	}
	writeReport(out, reportInput{
		command: command, started: started, wl: wl, rounds: cfg.rounds,
		contenders: contenders, results: results, latency: lat,
	})
	return nil
}

// runSeed is the seed user's workload for one encode: kvsd, ffmpeg's fps filter and the bare
// loop.
func runSeed(ctx context.Context, cfg config, spec videoSpec, work string, out, log io.Writer, command string, started time.Time) error {
	fmt.Fprintf(log, "images: making or loading the seed video (%s)…\n", spec.Name)
	dir := filepath.Join(work, spec.Name)
	wl, err := prepare(ctx, spec, cfg.cacheDir, dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "images: %d fragments of %s, %d bytes\n", len(wl.Fragments), wl.FragmentDuration, wl.FileSize)
	rate := float64(time.Second) / float64(wl.Interval)
	contenders := []contender{
		{"a", "kvsd, whole path: stored fragments → images in the local bucket", measureKVSD},
		{"f", fmt.Sprintf("`ffmpeg -threads 1 -i f.mkv -vf fps=%g,scale=320:240 -q:v 4 out%%04d.jpg`", rate), measureFFmpegFPS},
		{"d", "media package loop: `mkv.ReadFrames` + `Decoder.Render` per fragment, one core", measureMediaLoop},
	}
	results, err := measureAll(ctx, cfg, wl, contenders, dir, log)
	if err != nil {
		return err
	}
	writeSeedReport(out, seedReport{command: command, started: started, spec: spec, wl: wl, rounds: cfg.rounds,
		contenders: contenders, results: results})
	return nil
}

// measureAll measures every contender cfg.rounds times, interleaved so that a disturbance
// hits them alike, and returns each one's median run.
func measureAll(ctx context.Context, cfg config, wl *workload, contenders []contender, work string, log io.Writer) ([]measurement, error) {
	runs := make([][]measurement, len(contenders))
	for round := 1; round <= cfg.rounds; round++ {
		for i, c := range contenders {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			fmt.Fprintf(log, "images: round %d/%d: (%s)…\n", round, cfg.rounds, c.id)
			m, err := measure(ctx, c, wl, filepath.Join(work, fmt.Sprintf("%s-%d", c.id, round)))
			if err != nil {
				return nil, fmt.Errorf("(%s): %w", c.id, err)
			}
			if !m.NotMeasured && m.Images != wl.Images() {
				return nil, fmt.Errorf("(%s) made %d images, want %d", c.id, m.Images, wl.Images())
			}
			runs[i] = append(runs[i], m)
		}
	}
	var results []measurement
	for _, r := range runs {
		results = append(results, median(r))
	}
	return results, nil
}

// contender is one way of making the images.
type contender struct {
	id, what string
	run      func(ctx context.Context, wl *workload, dir string) (measurement, error)
}

// measure runs c in a fresh output directory and adds how busy the machine was meanwhile.
func measure(ctx context.Context, c contender, wl *workload, dir string) (measurement, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return measurement{}, err
	}
	before := machineBusy()
	m, err := c.run(ctx, wl, dir)
	m.MachineCPU = machineBusy() - before
	return m, err
}
