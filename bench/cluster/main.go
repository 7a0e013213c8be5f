// Command cluster benchmarks kvsd's scale-out mode (PostgreSQL catalog, S3 media, HAProxy front
// door) and prints the results as Markdown tables on stdout (progress goes to stderr):
//
//  1. replay of 1, 16 and 64 streams as fast as the server takes them: one scaled node beside
//     the embedded single node and a baseline that PUTs each fragment to the same versitygw
//     and inserts one row per fragment into the same PostgreSQL, with CPU per MB of kvsd,
//     versitygw and PostgreSQL;
//  2. 200 real-time cameras through the front door of three nodes: fragment complete →
//     PERSISTED latency; then ListFragments over a 1.3-million-row index in PostgreSQL;
//  3. failover under 16 streams: kill -9 of the node holding most of them, time to the first
//     PERSISTED on another node, and every acknowledged fragment checked to be listed.
//
// It starts every piece itself on loopback: versitygw, a fresh PostgreSQL database on the
// machine's server, HAProxy with deploy/haproxy.cfg and kvsd processes built from this tree.
// Run it from the repository root:
//
//	go run ./bench/cluster              # everything, about 8 minutes
//	go run ./bench/cluster -quick       # smaller and shorter
//	go run ./bench/cluster -only failover
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
	"github.com/kvsd/kvsd/bench/internal/mkvload"
	"github.com/kvsd/kvsd/bench/internal/report"
)

// config is one benchmark run.
type config struct {
	only     map[string]bool
	cacheDir string // the ffmpeg test video, kept between runs
	workDir  string // "" makes (and removes) a temporary one
	keep     bool
	kvsdBin  string // "" builds ./cmd/kvsd
	s3Dir    string // "": versitygw's objects in the work dir
	media    mkvload.Spec

	streams        []int         // replay
	replayDuration time.Duration // per server and stream count
	nodes          int           // cameras and failover: nodes behind the front door
	cameras        int
	camDuration    time.Duration
	indexRows      int // ListFragments: fragments in the index
	listWindows    int
	listWarmup     int
	failStreams    int
	kills          int
}

func defaultConfig(quick bool) config {
	c := config{media: mkvload.FullHD, streams: []int{1, 16, 64}, replayDuration: 10 * time.Second, nodes: 3,
		cameras: 200, camDuration: 60 * time.Second, indexRows: 1_300_000, listWindows: 200, listWarmup: 10,
		failStreams: 16, kills: 10}
	if quick {
		c.streams = []int{1, 4, 16}
		c.replayDuration /= 4
		c.cameras /= 4
		c.camDuration /= 4
		c.indexRows /= 4
		c.listWindows /= 4
		c.listWarmup /= 2
		c.failStreams /= 4
		c.kills = 3
	}
	return c
}

var sections = []string{"replay", "cameras", "failover"}

func main() { os.Exit(run(os.Args[1:])) }

// run is main without the exit, so that a test binary can run the child mode too.
func run(args []string) int {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "1/4 of the streams, cameras, durations and index; 3 kills")
	only := fs.String("only", "", "run only these sections: replay, cameras, failover (comma-separated)")
	streams := fs.String("streams", "", "replay: comma-separated stream counts (default 1,16,64)")
	replaySecs := fs.Duration("replay-duration", 0, "replay: load per server and stream count (default 10s)")
	cameras := fs.Int("cameras", 0, "cameras: real-time cameras through the front door (default 200)")
	camSecs := fs.Duration("camera-duration", 0, "cameras: how long they stream (default 60s)")
	rows := fs.Int("index-rows", 0, "cameras: fragments in the ListFragments index (default 1300000)")
	windows := fs.Int("list-windows", 0, "cameras: 1-hour windows listed (default 200)")
	failStreams := fs.Int("failover-streams", 0, "failover: streams (default 16)")
	kills := fs.Int("kills", 0, "failover: kill -9 rounds (default 10)")
	nodes := fs.Int("nodes", 0, "cameras and failover: kvsd nodes behind the front door (default 3)")
	cacheDir := fs.String("cache-dir", filepath.Join(os.TempDir(), "kvsd-bench-cache"), "keeps the test video between runs")
	workDir := fs.String("work-dir", "", "directory for this run's data (default: a new temporary directory, removed afterwards)")
	keep := fs.Bool("keep", false, "keep the work dir (kvsd's logs are there)")
	kvsdBin := fs.String("kvsd", "", "a kvsd binary to benchmark (default: go build ./cmd/kvsd into the work dir)")
	s3Dir := fs.String("s3-dir", "", "keep versitygw's objects in a new directory under this one (default: in the work dir, on the disk of PostgreSQL's data here); a tmpfs such as /dev/shm stands for an object store on its own device")
	baseline := fs.Bool("baseline-server", false, "child mode: run the baseline server")
	s3Endpoint := fs.String("s3-endpoint", "", "baseline-server: versitygw's URL")
	pgURL := fs.String("pg-url", "", "baseline-server: the PostgreSQL database")
	fragBytes := fs.Int("frag-bytes", 0, "baseline-server: store and acknowledge every this many bytes")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *baseline {
		if err := serveBaseline(*s3Endpoint, *pgURL, *fragBytes); err != nil {
			fmt.Fprintln(os.Stderr, "baseline:", err)
			return 1
		}
		return 0
	}
	cfg := defaultConfig(*quick)
	cfg.cacheDir, cfg.workDir, cfg.keep, cfg.kvsdBin, cfg.s3Dir = *cacheDir, *workDir, *keep, *kvsdBin, *s3Dir
	if *streams != "" {
		var err error
		if cfg.streams, err = harness.Counts("-streams", *streams); err != nil {
			fmt.Fprintln(os.Stderr, "cluster:", err)
			return 2
		}
	}
	setPos := func(dst *int, v int) {
		if v > 0 {
			*dst = v
		}
	}
	setPos(&cfg.cameras, *cameras)
	setPos(&cfg.indexRows, *rows)
	setPos(&cfg.listWindows, *windows)
	setPos(&cfg.failStreams, *failStreams)
	setPos(&cfg.kills, *kills)
	setPos(&cfg.nodes, *nodes)
	if *replaySecs > 0 {
		cfg.replayDuration = *replaySecs
	}
	if *camSecs > 0 {
		cfg.camDuration = *camSecs
	}
	if cfg.nodes < 2 {
		fmt.Fprintln(os.Stderr, "cluster: -nodes: want at least 2 (a stream must have somewhere to move)")
		return 2
	}
	var err error
	if cfg.only, err = harness.Only(*only, sections); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		return 2
	}
	return harness.Main("cluster", args, func(ctx context.Context, out, log io.Writer, command string) ([]report.Result, error) {
		return runBench(ctx, cfg, out, log, command)
	})
}

// bench is one run in progress.
type bench struct {
	cfg     config
	out     io.Writer // the Markdown report
	log     io.Writer // progress
	work    string
	bin     string
	media   *mkvload.File
	in      *infra
	results []report.Result
	started time.Time
}

func (b *bench) logf(format string, a ...any) { harness.Logf(b.log, b.started, format, a...) }

// runBench runs the sections cfg selects and writes the report to out.
func runBench(ctx context.Context, cfg config, out, log io.Writer, command string) ([]report.Result, error) {
	b := &bench{cfg: cfg, out: out, log: log, started: time.Now()}
	work, done, err := harness.WorkDir(cfg.workDir, "kvsd-bench-cluster-", cfg.keep)
	if err != nil {
		return nil, err
	}
	defer done()
	b.work = work
	if err := os.MkdirAll(cfg.cacheDir, 0o755); err != nil {
		return nil, err
	}
	b.bin = cfg.kvsdBin
	if b.bin == "" {
		b.logf("building kvsd")
		bin, err := kvsdproc.Build(ctx, b.work)
		if err != nil {
			return nil, err
		}
		b.bin = bin
	}
	b.logf("preparing the test video (%s)", cfg.media.Name)
	var cached bool
	if b.media, cached, err = mkvload.Load(ctx, cfg.media, cfg.cacheDir); err != nil {
		return nil, err
	}
	b.logf("starting versitygw and a fresh PostgreSQL database")
	if b.in, err = startInfra(b.work, b.bin, cfg.s3Dir); err != nil {
		return nil, fmt.Errorf("start versitygw and PostgreSQL: %w", err)
	}
	defer b.in.close()
	b.header(command, cached)

	err = harness.RunSections(ctx, cfg.only,
		harness.Section{Name: "replay", Run: b.replay},
		harness.Section{Name: "cameras", Run: b.cameras},
		harness.Section{Name: "failover", Run: b.failover},
	)
	if err != nil {
		return b.results, err
	}
	report.WriteTargets(b.out, b.results)
	b.logf("done")
	return b.results, nil
}

// header describes the machine, the build, the pieces and the media.
func (b *bench) header(command string, cached bool) {
	w := b.out
	harness.Header(w, "kvsd cluster benchmark", command)
	fmt.Fprintf(w, "- kvsd: %s, built with %s; media encrypted at rest (one key file for every node)\n", kvsdproc.Describe(b.bin), runtime.Version())
	fmt.Fprintf(w, "- machine: %s; %d CPU cores; %s memory; Linux %s\n", machine.CPUModel(), runtime.NumCPU(), machine.Memory(), machine.Kernel())
	fmt.Fprintf(w, "- **everything shares the %d cores**: this program (the producers), every kvsd node, versitygw, "+
		"PostgreSQL and HAProxy run on this machine and talk over 127.0.0.1\n", runtime.NumCPU())
	fmt.Fprintf(w, "- versitygw: %s, POSIX backend in %s (%s; it never fsyncs); %s: a fresh database %s on the machine's server\n",
		b.in.s3.Endpoint, b.in.s3.Dir, machine.FSType(b.in.s3.Dir), b.in.pgDesc, b.in.dbName)
	fmt.Fprintf(w, "- test video: %s\n\n", b.media.Summary(b.cfg.media.Name, cached))
}
