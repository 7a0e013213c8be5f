// Command playback benchmarks kvsd's playback API and prints the results as Markdown tables on
// stdout (progress goes to stderr), each side by side with its baseline from the same run:
//
//  1. GetClip of 200 fragments of 1080p 2 Mbit/s H.264 against `ffmpeg -c copy -movflags
//     +faststart` remuxing the same fragments: MB/s, CPU per MB; and kvsd's memory growth
//     during a 200- and a 20-fragment clip;
//  2. serving HLS: fMP4 media fragments (getMP4MediaFragment.mp4) per kvsd CPU-second against
//     the same fragments' stored bytes (GetMediaForFragmentList, one fragment per request);
//  3. live: from a fragment's PERSISTED ack to its appearance in a LIVE media playlist, 50
//     real-time streams.
//
// kvsd runs as a separate process on loopback. Run it from the repository root:
//
//	go run ./bench/playback             # everything, about 3 minutes
//	go run ./bench/playback -quick      # smaller runs, well under a minute
//	go run ./bench/playback -only live  # one section (clip, hls, live; comma-separated)
//
// bench/README.md explains each number.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/kvsd/kvsd/bench/internal/harness"
	"github.com/kvsd/kvsd/bench/internal/kvsdproc"
	"github.com/kvsd/kvsd/bench/internal/machine"
	"github.com/kvsd/kvsd/bench/internal/report"
)

// config is one benchmark run.
type config struct {
	only           map[string]bool
	quick          bool
	cacheDir       string // the test video, kept between runs
	workDir        string // data dirs of this run; "" makes (and removes) a temporary one
	keep           bool
	kvsdBin        string // a built kvsd; "" builds one; "self" runs this program's kvsd child mode
	kvsdProfileDir string // CPU profiles of the kvsd processes; implies "self"

	media         mediaSpec
	clipFragments int // the long clip, and the fragments of the archive stream
	smallClip     int // the short clip of the memory comparison
	clipRounds    int
	hlsClients    int
	hlsDuration   time.Duration // per path
	liveStreams   int
	liveDuration  time.Duration
}

func defaultConfig(quick bool) config {
	c := config{media: fullHD, clipFragments: 200, smallClip: 20, clipRounds: 3, hlsClients: 8, hlsDuration: 20 * time.Second,
		liveStreams: 50, liveDuration: 60 * time.Second, quick: quick}
	if quick {
		c.clipFragments, c.smallClip, c.clipRounds = 50, 5, 1
		c.hlsClients, c.hlsDuration = 4, 4*time.Second
		c.liveStreams, c.liveDuration = 12, 12*time.Second
	}
	return c
}

var sections = []string{"clip", "hls", "live"}

func main() { os.Exit(run(os.Args[1:])) }

// run is main without the exit, so that a test binary can run the child mode too.
func run(args []string) int {
	fs := flag.NewFlagSet("playback", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "smaller runs (50-fragment clip, 4 s of HLS, 12 live streams for 12 s), for CI smoke tests")
	only := fs.String("only", "", "run only these sections: clip, hls, live (comma-separated)")
	cacheDir := fs.String("cache-dir", filepath.Join(os.TempDir(), "kvsd-bench-cache"), "keeps the test video between runs")
	workDir := fs.String("work-dir", "", "directory for this run's data dirs (default: a new temporary directory, removed afterwards); must be on a real disk")
	keep := fs.Bool("keep", false, "keep the work dir")
	kvsdBin := fs.String("kvsd", "", "a kvsd binary to benchmark (default: go build ./cmd/kvsd into the work dir)")
	kvsdProf := fs.String("kvsd-cpuprofile", "", "write CPU profiles of the kvsd processes into this directory; kvsd then runs inside this program's -kvsd-server mode")
	cpuprofile := fs.String("cpuprofile", "", "write this process's CPU profile to the file")
	clip := fs.Int("clip", 0, "clip: fragments in the long clip (default 200, -quick 50; GetClip stops at 200 or 100 MiB)")
	clients := fs.Int("clients", 0, "hls: concurrent clients (default 8, -quick 4)")
	streams := fs.Int("streams", 0, "live: real-time streams (default 50, -quick 12)")
	kvsdServer := fs.Bool("kvsd-server", false, "child mode: run kvsd with the arguments after --")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cpuprofile != "" {
		stop, err := kvsdproc.StartCPUProfile(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "playback:", err)
			return 1
		}
		defer stop()
	}
	if *kvsdServer {
		return kvsdproc.Serve(fs.Args(), "")
	}

	cfg := defaultConfig(*quick)
	cfg.cacheDir, cfg.workDir, cfg.keep, cfg.kvsdBin, cfg.kvsdProfileDir = *cacheDir, *workDir, *keep, *kvsdBin, *kvsdProf
	if *clip > 0 {
		cfg.clipFragments = *clip
		cfg.smallClip = max(1, min(cfg.smallClip, *clip/10))
	}
	if *clients > 0 {
		cfg.hlsClients = *clients
	}
	if *streams > 0 {
		cfg.liveStreams = *streams
	}
	var err error
	if cfg.only, err = harness.Only(*only, sections); err != nil {
		fmt.Fprintln(os.Stderr, "playback:", err)
		return 2
	}
	return harness.Main("playback", args, func(ctx context.Context, out, log io.Writer, command string) ([]report.Result, error) {
		return runBench(ctx, cfg, out, log, command)
	})
}

// bench is one run in progress.
type bench struct {
	cfg     config
	out     io.Writer // the Markdown report
	log     io.Writer // progress
	work    string
	media   *mkvFile
	kvsd    *kvsdproc.Launcher
	arch    *archive // sections 1 and 2's stream, put on first use
	results []result
	started time.Time
}

// result is one target's outcome.
type result = report.Result

func (b *bench) logf(format string, a ...any) { harness.Logf(b.log, b.started, format, a...) }

// runBench runs the sections cfg selects and writes the report to out.
func runBench(ctx context.Context, cfg config, out, log io.Writer, command string) ([]result, error) {
	b := &bench{cfg: cfg, out: out, log: log, started: time.Now()}
	work, done, err := harness.WorkDir(cfg.workDir, "kvsd-bench-playback-", cfg.keep)
	if err != nil {
		return nil, err
	}
	defer done()
	b.work = work
	l, err := kvsdproc.NewLauncher(ctx, cfg.kvsdBin, cfg.kvsdProfileDir, b.work, b.logf)
	if err != nil {
		return nil, err
	}
	b.kvsd = l

	b.logf("preparing the test video (%s)", cfg.media.Name)
	raw, cached, err := makeMedia(ctx, cfg.media, b.loops(), cfg.cacheDir)
	if err != nil {
		return nil, err
	}
	if b.media, err = parseMKV(raw); err != nil {
		return nil, err
	}
	if b.media.Clusters < cfg.clipFragments {
		return nil, fmt.Errorf("the test video has %d fragments, fewer than the %d of the clip", b.media.Clusters, cfg.clipFragments)
	}
	b.header(command, cached)

	err = harness.RunSections(ctx, cfg.only,
		harness.Section{Name: "clip", Run: b.clip},
		harness.Section{Name: "hls", Run: b.hls},
		harness.Section{Name: "live", Run: b.live},
	)
	if err != nil {
		return b.results, err
	}
	report.WriteTargets(b.out, b.results)
	b.logf("done")
	return b.results, nil
}

// loops is how many times the test video is repeated: enough for the clip and the live run.
func (b *bench) loops() int {
	need := max(b.cfg.clipFragments, int(b.cfg.liveDuration/(2*time.Second))+1)
	return (need + b.cfg.media.Fragments - 1) / b.cfg.media.Fragments
}

// header describes the machine, the build and the media.
func (b *bench) header(command string, cached bool) {
	w := b.out
	harness.Header(w, "kvsd playback benchmark", command)
	fmt.Fprintf(w, "- kvsd: %s, built with %s\n", kvsdproc.Describe(b.kvsd.Bin), runtime.Version())
	fmt.Fprintf(w, "- machine: %s; %d CPU cores; Linux %s; ffmpeg %s\n", machine.CPUModel(), runtime.NumCPU(), machine.Kernel(), machine.FFmpegVersion())
	fmt.Fprintf(w, "- **the client load shares the %d cores with kvsd**: this program (producers, players), kvsd and ffmpeg "+
		"all run on this machine and talk over 127.0.0.1; kvsd and ffmpeg never run at the same time\n", runtime.NumCPU())
	m := b.media
	src := "made with ffmpeg"
	if cached {
		src = "from the cache, made earlier with ffmpeg"
	}
	fmt.Fprintf(w, "- test video: %s repeated to %d fragments of %s (%s): %.1f MB, %.2f Mbit/s\n\n",
		b.cfg.media.Name, m.Clusters, m.FragDur.Round(time.Millisecond), src, float64(len(m.Raw))/1e6,
		float64(len(m.Raw)*8)/m.duration().Seconds()/1e6)
}
