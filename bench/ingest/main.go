// Command ingest benchmarks kvsd's ingest path and fragment index, and prints the results as
// Markdown tables on stdout (progress goes to stderr):
//
//  1. aggregate PutMedia throughput with 1, 16 and 64 streams, side by side with a baseline
//     server that only writes the body to a file and fsyncs once per fragment's worth of bytes;
//  2. 200 simulated real-time cameras: fragment-complete → PERSISTED latency, kvsd's RSS;
//  3. ListFragments over 1-hour windows of a stream with 30 days of 2-second fragments.
//
// kvsd and the baseline run as separate processes on loopback. Run it from the repository root:
//
//	go run ./bench/ingest              # everything, about 5 minutes
//	go run ./bench/ingest -quick       # 1/4 of the streams and durations
//	go run ./bench/ingest -only list   # one section (throughput, cameras, list; comma-separated)
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
	"strconv"
	"strings"
	"time"

	"github.com/kvsd/kvsd/bench/internal/harness"
	"github.com/kvsd/kvsd/bench/internal/kvsdproc"
	"github.com/kvsd/kvsd/bench/internal/machine"
	"github.com/kvsd/kvsd/bench/internal/mkvload"
	"github.com/kvsd/kvsd/bench/internal/report"
)

// config is one benchmark run.
type config struct {
	only           map[string]bool
	quick          bool
	cacheDir       string // ffmpeg output and filled list data dirs, kept between runs
	workDir        string // data dirs of this run; "" makes (and removes) a temporary one
	keep           bool
	kvsdBin        string // a built kvsd; "" builds one; "self" runs this program's kvsd child mode
	kvsdProfileDir string // CPU profiles of the kvsd (and baseline) processes; implies "self"
	// compareClear: throughput also runs a kvsd built with kvsdproc.ClearTag (media in clear)
	// beside the normal one (media encrypted at rest), to report what encryption costs.
	compareClear bool

	streams     []int
	tpDuration  time.Duration
	cameras     int
	camDuration time.Duration
	listDays    float64
	listWindows int
	listWarmup  int
	media       mkvload.Spec
}

func defaultConfig(quick bool) config {
	c := config{streams: []int{1, 16, 64}, tpDuration: 10 * time.Second, cameras: 200, camDuration: 60 * time.Second,
		listDays: 30, listWindows: 200, listWarmup: 10, media: mkvload.FullHD, quick: quick}
	if quick {
		c.streams = []int{1, 4, 16}
		c.tpDuration /= 4
		c.cameras /= 4
		c.camDuration /= 4
		c.listDays /= 4
		c.listWindows /= 4
		c.listWarmup /= 2
	}
	return c
}

var sections = []string{"throughput", "cameras", "list"}

func main() { os.Exit(run(os.Args[1:])) }

// run is main without the exit, so that a test binary can run the child modes too.
func run(args []string) int {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "smaller runs (1/4 of the streams and durations), for CI smoke tests")
	streams := fs.String("streams", "", "throughput: comma-separated stream counts (default 1,16,64)")
	only := fs.String("only", "", "run only these sections: throughput, cameras, list (comma-separated)")
	cacheDir := fs.String("cache-dir", filepath.Join(os.TempDir(), "kvsd-bench-cache"), "keeps the test video and the filled ListFragments data dir between runs")
	workDir := fs.String("work-dir", "", "directory for this run's data dirs (default: a new temporary directory, removed afterwards); must be on a real disk")
	keep := fs.Bool("keep", false, "keep the work dir")
	kvsdBin := fs.String("kvsd", "", "a kvsd binary to benchmark (default: go build ./cmd/kvsd into the work dir)")
	compareClear := fs.Bool("compare-clear", true, "throughput: also run a kvsd built with -tags "+kvsdproc.ClearTag+" (media stored in clear) and report what encryption at rest costs; only when this program builds kvsd")
	kvsdProf := fs.String("kvsd-cpuprofile", "", "write CPU profiles of the server processes into this directory; kvsd then runs inside this program's -kvsd-server mode")
	cpuprofile := fs.String("cpuprofile", "", "write this process's CPU profile to the file")
	baseline := fs.Bool("baseline-server", false, "child mode: run the baseline server")
	baseDir := fs.String("baseline-dir", "", "baseline-server: where request bodies go")
	syncBytes := fs.Int("sync-bytes", 0, "baseline-server: fsync and acknowledge every this many bytes")
	kvsdServer := fs.Bool("kvsd-server", false, "child mode: run kvsd with the arguments after --")
	heapprofile := fs.String("heapprofile", "", "kvsd-server: write a heap profile to this file on SIGUSR1")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cpuprofile != "" {
		stop, err := kvsdproc.StartCPUProfile(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ingest:", err)
			return 1
		}
		defer stop()
	}
	switch {
	case *baseline:
		if err := serveBaseline(*baseDir, *syncBytes); err != nil {
			fmt.Fprintln(os.Stderr, "baseline:", err)
			return 1
		}
		return 0
	case *kvsdServer:
		return kvsdproc.Serve(fs.Args(), *heapprofile)
	}

	cfg := defaultConfig(*quick)
	cfg.cacheDir, cfg.workDir, cfg.keep, cfg.kvsdBin, cfg.kvsdProfileDir = *cacheDir, *workDir, *keep, *kvsdBin, *kvsdProf
	cfg.compareClear = *compareClear && *kvsdBin == "" && *kvsdProf == ""
	if *streams != "" {
		var err error
		if cfg.streams, err = harness.Counts("-streams", *streams); err != nil {
			fmt.Fprintln(os.Stderr, "ingest:", err)
			return 2
		}
	}
	var err error
	if cfg.only, err = harness.Only(*only, sections); err != nil {
		fmt.Fprintln(os.Stderr, "ingest:", err)
		return 2
	}
	return harness.Main("ingest", args, func(ctx context.Context, out, log io.Writer, command string) ([]report.Result, error) {
		return runBench(ctx, cfg, out, log, command)
	})
}

// bench is one run in progress.
type bench struct {
	cfg     config
	out     io.Writer // the Markdown report
	log     io.Writer // progress
	work    string
	media   *mkvload.File
	kvsd    *kvsdproc.Launcher
	clear   *kvsdproc.Launcher // kvsd storing media in clear (compareClear); nil otherwise
	results []result
	started time.Time
}

// result is one target's outcome.
type result = report.Result

func (b *bench) logf(format string, a ...any) { harness.Logf(b.log, b.started, format, a...) }

// runBench runs the sections cfg selects and writes the report to out.
func runBench(ctx context.Context, cfg config, out, log io.Writer, command string) ([]result, error) {
	b := &bench{cfg: cfg, out: out, log: log, started: time.Now()}
	work, done, err := harness.WorkDir(cfg.workDir, "kvsd-bench-", cfg.keep)
	if err != nil {
		return nil, err
	}
	defer done()
	b.work = work
	if err := os.MkdirAll(cfg.cacheDir, 0o755); err != nil {
		return nil, err
	}
	l, err := kvsdproc.NewLauncher(ctx, cfg.kvsdBin, cfg.kvsdProfileDir, b.work, b.logf)
	if err != nil {
		return nil, err
	}
	l.HeapProfile = true
	b.kvsd = l
	if cfg.compareClear {
		b.logf("building kvsd with -tags %s (media in clear)", kvsdproc.ClearTag)
		bin, err := kvsdproc.BuildTagged(ctx, b.work, "kvsd-clear", kvsdproc.ClearTag)
		if err != nil {
			return nil, err
		}
		b.clear = &kvsdproc.Launcher{Bin: bin, LogDir: b.work}
	}

	b.logf("preparing the test video (%s)", cfg.media.Name)
	var cached bool
	if b.media, cached, err = mkvload.Load(ctx, cfg.media, cfg.cacheDir); err != nil {
		return nil, err
	}
	b.header(command, cached)

	err = harness.RunSections(ctx, cfg.only,
		harness.Section{Name: "throughput", Run: b.throughput},
		harness.Section{Name: "cameras", Run: b.cameras},
		harness.Section{Name: "list", Run: b.list},
	)
	if err != nil {
		return b.results, err
	}
	report.WriteTargets(b.out, b.results)
	b.logf("done")
	return b.results, nil
}

// header describes the machine, the build and the media.
func (b *bench) header(command string, cached bool) {
	w := b.out
	harness.Header(w, "kvsd ingest benchmark", command)
	fmt.Fprintf(w, "- kvsd: %s, built with %s; media encrypted at rest (key file)\n", kvsdproc.Describe(b.kvsd.Bin), runtime.Version())
	if b.clear != nil {
		fmt.Fprintf(w, "- kvsd, media in clear: %s, the same source built with -tags %s, for the throughput comparison\n", b.clear.Bin, kvsdproc.ClearTag)
	}
	fmt.Fprintf(w, "- machine: %s; %d CPU cores; %s memory; Linux %s\n", machine.CPUModel(), runtime.NumCPU(), machine.Memory(), machine.Kernel())
	fmt.Fprintf(w, "- **the client load shares the %d cores with the server**: this program (the simulated producers and "+
		"clients), kvsd and the baseline server all run on this machine and talk over 127.0.0.1; the baseline and kvsd "+
		"never run a load at the same time\n", runtime.NumCPU())
	fmt.Fprintf(w, "- data dirs: %s (%s); kvsd and the baseline write to the same file system\n", b.work, machine.FSType(b.work))
	fmt.Fprintf(w, "- test video: %s\n\n", b.media.Summary(b.cfg.media.Name, cached))
	if note := damonNote(); note != "" {
		fmt.Fprintf(w, "> note: %s\n\n", note)
	}
	if machine.FSType(b.work) == "tmpfs" {
		fmt.Fprintf(w, "> **warning**: the work dir is on tmpfs, where fsync costs nothing; use -work-dir on a disk.\n\n")
	}
}

// damonNote describes proactive reclaim by DAMON, which drops page cache that was idle for a
// while: on such a machine a file not read for a minute is read from disk again.
func damonNote() string {
	states, _ := filepath.Glob("/sys/kernel/mm/damon/admin/kdamonds/*/state")
	for _, st := range states {
		if b, _ := os.ReadFile(st); strings.TrimSpace(string(b)) != "on" {
			continue
		}
		kd := filepath.Dir(st)
		actions, _ := filepath.Glob(filepath.Join(kd, "contexts/*/schemes/*/action"))
		for _, a := range actions {
			if b, _ := os.ReadFile(a); strings.TrimSpace(string(b)) == "pageout" {
				scheme := filepath.Dir(a)
				age, _ := os.ReadFile(filepath.Join(scheme, "access_pattern/age/min"))
				aggr, _ := os.ReadFile(filepath.Join(scheme, "../../monitoring_attrs/intervals/aggr_us"))
				n, _ := strconv.Atoi(strings.TrimSpace(string(age)))
				us, _ := strconv.Atoi(strings.TrimSpace(string(aggr)))
				return fmt.Sprintf("this machine runs DAMON proactive reclaim (kdamond, action pageout): memory idle for %s "+
					"or more is paged out, page cache included, so files not read for that long come from disk again",
					time.Duration(n)*time.Duration(us)*time.Microsecond)
			}
		}
	}
	return ""
}
