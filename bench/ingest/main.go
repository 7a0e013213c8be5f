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
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kvsd/kvsd/bench/internal/report"
	"github.com/kvsd/kvsd/internal/cli"
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

	streams     []int
	tpDuration  time.Duration
	cameras     int
	camDuration time.Duration
	listDays    float64
	listWindows int
	listWarmup  int
	media       mediaSpec
}

func defaultConfig(quick bool) config {
	c := config{streams: []int{1, 16, 64}, tpDuration: 10 * time.Second, cameras: 200, camDuration: 60 * time.Second,
		listDays: 30, listWindows: 200, listWarmup: 10, media: fullHD, quick: quick}
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
		stop, err := startProfile(*cpuprofile)
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
		if *heapprofile != "" {
			writeHeapOnSignal(*heapprofile)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return cli.Main(ctx, fs.Args(), os.Stdout, os.Stderr)
	}

	cfg := defaultConfig(*quick)
	cfg.cacheDir, cfg.workDir, cfg.keep, cfg.kvsdBin, cfg.kvsdProfileDir = *cacheDir, *workDir, *keep, *kvsdBin, *kvsdProf
	if *streams != "" {
		cfg.streams = nil
		for _, s := range strings.Split(*streams, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n <= 0 {
				fmt.Fprintf(os.Stderr, "ingest: -streams %q: want positive numbers, comma-separated\n", *streams)
				return 2
			}
			cfg.streams = append(cfg.streams, n)
		}
	}
	cfg.only = map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !contains(sections, s) {
			fmt.Fprintf(os.Stderr, "ingest: -only %q: want one of %s\n", s, strings.Join(sections, ", "))
			return 2
		}
		cfg.only[s] = true
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	results, err := runBench(ctx, cfg, os.Stdout, os.Stderr, "go run ./bench/ingest "+strings.Join(args, " "))
	if err != nil {
		fmt.Fprintln(os.Stderr, "ingest:", err)
		return 1
	}
	for _, r := range results {
		if !r.ok {
			return 3 // a target was missed; the report says which
		}
	}
	return 0
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func startProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// writeHeapOnSignal writes a heap profile to path each time the process gets SIGUSR1.
func writeHeapOnSignal(path string) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGUSR1)
	go func() {
		for range c {
			f, err := os.Create(path)
			if err != nil {
				fmt.Fprintln(os.Stderr, "heap profile:", err)
				continue
			}
			runtime.GC()
			_ = pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
	}()
}

// bench is one run in progress.
type bench struct {
	cfg     config
	out     io.Writer // the Markdown report
	log     io.Writer // progress
	work    string
	media   *mkvFile
	kvsd    *kvsdLauncher
	results []result
	started time.Time
}

// result is one target's outcome.
type result struct {
	what, value string
	ok          bool
	other       float64 // other processes' CPU while it was measured, in cores
}

func (b *bench) logf(format string, a ...any) {
	fmt.Fprintf(b.log, "[%5.1fs] %s\n", time.Since(b.started).Seconds(), fmt.Sprintf(format, a...))
}

// runBench runs the sections cfg selects and writes the report to out.
func runBench(ctx context.Context, cfg config, out, log io.Writer, command string) ([]result, error) {
	b := &bench{cfg: cfg, out: out, log: log, started: time.Now()}
	b.work = cfg.workDir
	if b.work == "" {
		dir, err := os.MkdirTemp("", "kvsd-bench-")
		if err != nil {
			return nil, err
		}
		b.work = dir
		if !cfg.keep {
			defer os.RemoveAll(dir)
		}
	} else if err := os.MkdirAll(b.work, 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.cacheDir, 0o755); err != nil {
		return nil, err
	}
	b.kvsd = &kvsdLauncher{bin: cfg.kvsdBin, profileDir: cfg.kvsdProfileDir, logDir: b.work}
	switch {
	case cfg.kvsdProfileDir != "":
		if err := os.MkdirAll(cfg.kvsdProfileDir, 0o755); err != nil {
			return nil, err
		}
		b.kvsd.bin = ""
	case cfg.kvsdBin == "self":
		b.kvsd.bin = ""
	case cfg.kvsdBin == "":
		b.logf("building kvsd")
		bin, err := buildKvsd(ctx, b.work)
		if err != nil {
			return nil, err
		}
		b.kvsd.bin = bin
	}

	b.logf("preparing the test video (%s)", cfg.media.Name)
	raw, cached, err := makeMedia(ctx, cfg.media, cfg.cacheDir)
	if err != nil {
		return nil, err
	}
	if b.media, err = parseMKV(raw); err != nil {
		return nil, err
	}
	b.header(command, cached)

	run := func(name string, f func(context.Context) error) error {
		if len(cfg.only) > 0 && !cfg.only[name] {
			return nil
		}
		if err := f(ctx); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return ctx.Err()
	}
	err = errors.Join(run("throughput", b.throughput), run("cameras", b.cameras), run("list", b.list))
	if err != nil {
		return b.results, err
	}
	fmt.Fprintf(b.out, "## Targets\n\n")
	t := &report.Table{Head: []string{"target", "measured", "result", "other processes' CPU meanwhile"}}
	disturbed := false
	for _, r := range b.results {
		t.Add(r.what, r.value, report.Verdict(r.ok), fmt.Sprintf("%.2f cores", r.other))
		disturbed = disturbed || r.other > 0.2
	}
	t.Write(b.out)
	if disturbed {
		fmt.Fprintf(b.out, "> Other processes (not this benchmark) used more than 0.2 cores during some measurements: "+
			"those numbers are less trustworthy; repeat them on a quiet machine.\n\n")
	}
	b.logf("done")
	return b.results, nil
}

// header describes the machine, the build and the media.
func (b *bench) header(command string, cached bool) {
	w := b.out
	fmt.Fprintf(w, "# kvsd ingest benchmark\n\n")
	fmt.Fprintf(w, "- command: `%s`\n", strings.TrimSpace(command))
	fmt.Fprintf(w, "- date: %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "- kvsd: %s, built with %s\n", b.kvsdDescription(), runtime.Version())
	fmt.Fprintf(w, "- machine: %s; %d CPU cores; %s memory; Linux %s\n", cpuModel(), runtime.NumCPU(), memTotal(), kernel())
	fmt.Fprintf(w, "- **the client load shares the %d cores with the server**: this program (the simulated producers and "+
		"clients), kvsd and the baseline server all run on this machine and talk over 127.0.0.1; the baseline and kvsd "+
		"never run a load at the same time\n", runtime.NumCPU())
	fmt.Fprintf(w, "- data dirs: %s (%s); kvsd and the baseline write to the same file system\n", b.work, fsType(b.work))
	m := b.media
	src := "made with ffmpeg"
	if cached {
		src = "from the cache, made earlier with ffmpeg"
	}
	fmt.Fprintf(w, "- test video: %s (%s): %.2f MB, %d fragments of %s, %.2f Mbit/s, mean fragment %d bytes\n\n",
		b.cfg.media.Name, src, float64(len(m.Raw))/1e6, len(m.Clusters), m.fragmentDuration().Round(time.Millisecond),
		float64(len(m.Raw)*8)/m.duration().Seconds()/1e6, m.meanFragment())
	if note := damonNote(); note != "" {
		fmt.Fprintf(w, "> note: %s\n\n", note)
	}
	if fsType(b.work) == "tmpfs" {
		fmt.Fprintf(w, "> **warning**: the work dir is on tmpfs, where fsync costs nothing; use -work-dir on a disk.\n\n")
	}
}

func (b *bench) kvsdDescription() string {
	desc := "this program's -kvsd-server mode (kvsd's internal/app linked into the benchmark)"
	if b.kvsd.bin != "" {
		desc = b.kvsd.bin
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	root, err := moduleRoot(ctx)
	if err != nil {
		return desc
	}
	rev, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return desc
	}
	desc += ", source at commit " + strings.TrimSpace(string(rev))
	if st, err := exec.CommandContext(ctx, "git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		desc += " plus uncommitted changes"
	}
	return desc
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func memTotal() string {
	b, _ := os.ReadFile("/proc/meminfo")
	var kb int64
	fmt.Sscanf(string(b), "MemTotal: %d kB", &kb)
	return fmt.Sprintf("%.0f GB", float64(kb)*1024/1e9)
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

func fsType(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown file system"
	}
	switch st.Type {
	case 0xEF53:
		return "ext4"
	case 0x58465342:
		return "xfs"
	case 0x9123683E:
		return "btrfs"
	case 0x01021994:
		return "tmpfs"
	case 0x794C7630:
		return "overlayfs"
	}
	return fmt.Sprintf("file system 0x%x", st.Type)
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
