// Command put measures the CPU that `kvsd put` uses for one real-time
// camera-like stream (1080p30 H.264 at 2 Mbit/s by default) from a file and
// from an RTSP camera, beside the CPU of the kvsd server taking the same
// stream. It prints Markdown tables on stdout; progress goes to stderr.
// See bench/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kvsd/kvsd/bench/internal/child"
	"github.com/kvsd/kvsd/bench/internal/kvsdproc"
	"github.com/kvsd/kvsd/bench/internal/machine"
	"github.com/kvsd/kvsd/internal/rtspsrc/rtsptest"
)

// target is the most CPU `kvsd put` may use for one stream, in cores.
const target = 0.05

type config struct {
	duration time.Duration
	width    int
	height   int
	fps      int
	bitrate  int
	kvsd     string
	cacheDir string
	workDir  string
	keep     bool
	only     string
}

// childEnv makes this program (or its test binary) run as kvsd, for
// -kvsd self: the smoke test has no kvsd binary to start.
const childEnv = "KVSD_BENCH_PUT_CHILD"

func main() {
	if os.Getenv(childEnv) != "" {
		os.Exit(kvsdproc.Serve(os.Args[1:], ""))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var cfg config
	fs := flag.NewFlagSet("put", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&cfg.duration, "duration", 60*time.Second, "how long each stream runs (real time)")
	size := fs.String("size", "1920x1080", "picture size of the test video")
	fs.IntVar(&cfg.fps, "fps", 30, "frame rate of the test video")
	fs.IntVar(&cfg.bitrate, "bitrate", 2_000_000, "bit rate of the test video")
	fs.StringVar(&cfg.kvsd, "kvsd", "", "benchmark this kvsd binary instead of building ./cmd/kvsd (self: this program)")
	fs.StringVar(&cfg.cacheDir, "cache-dir", filepath.Join(os.TempDir(), "kvsd-bench-cache"), "keeps the test video between runs")
	fs.StringVar(&cfg.workDir, "work-dir", "", "this run's data (default: a new temporary directory, removed at the end)")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the work dir (the logs of kvsd and kvsd put are there)")
	fs.StringVar(&cfg.only, "only", "file,rtsp", "sources to measure: file, rtsp (comma-separated)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if _, err := fmt.Sscanf(*size, "%dx%d", &cfg.width, &cfg.height); err != nil {
		fmt.Fprintf(stderr, "put: -size %q: want WxH\n", *size)
		return 2
	}
	rows, err := bench(context.Background(), cfg, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "put: %v\n", err)
		return 1
	}
	for _, r := range rows {
		if r.putCores() > target {
			return 3
		}
	}
	return 0
}

// row is one measured stream.
type row struct {
	source    string
	wall      time.Duration
	putCPU    time.Duration
	putRSS    int64 // bytes
	serverCPU time.Duration
	summary   string // kvsd put's last line
}

func (r row) putCores() float64    { return r.putCPU.Seconds() / r.wall.Seconds() }
func (r row) serverCores() float64 { return r.serverCPU.Seconds() / r.wall.Seconds() }

func bench(ctx context.Context, cfg config, stdout, stderr io.Writer) ([]row, error) {
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "put: "+format+"\n", a...) }
	work := cfg.workDir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "kvsd-bench-put-"); err != nil {
			return nil, err
		}
		if !cfg.keep {
			defer os.RemoveAll(work)
		}
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	bin := cfg.kvsd
	if bin == "self" {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		bin = self
		os.Setenv(childEnv, "1") // the children run as kvsd
		defer os.Unsetenv(childEnv)
	}
	if bin == "" {
		logf("building ./cmd/kvsd")
		var err error
		if bin, err = kvsdproc.Build(ctx, work); err != nil {
			return nil, err
		}
	}
	video, err := testVideo(ctx, cfg, logf)
	if err != nil {
		return nil, err
	}
	srv, err := (&kvsdproc.Launcher{Bin: bin, LogDir: work}).Start("serve", filepath.Join(work, "data"))
	if err != nil {
		return nil, err
	}
	defer srv.Stop()

	var rows []row
	if strings.Contains(cfg.only, "file") {
		logf("file: kvsd put %s in real time (%v)", filepath.Base(video), cfg.duration)
		r, err := measure(ctx, bin, srv, work, "file", []string{video})
		if err != nil {
			return nil, err
		}
		r.source = "file (MP4, real time)"
		rows = append(rows, r)
	}
	if strings.Contains(cfg.only, "rtsp") {
		cam, err := camera(video)
		if err != nil {
			return nil, err
		}
		logf("rtsp: kvsd put %s for %v", cam.URL(), cfg.duration)
		r, err := measure(ctx, bin, srv, work, "rtsp", []string{"--duration", cfg.duration.String(), cam.URL()})
		cam.Close()
		if err != nil {
			return nil, err
		}
		r.source = "RTSP camera (gortsplib server in this program)"
		rows = append(rows, r)
	}
	report(stdout, cfg, rows)
	return rows, nil
}

// testVideo makes (once, then from the cache) an MP4 of the configured
// stream with ffmpeg: testsrc2, libx264, a keyframe every 2 s, no B-frames,
// the bit rate held by the VBV as a camera holds it.
func testVideo(ctx context.Context, cfg config, logf func(string, ...any)) (string, error) {
	if err := os.MkdirAll(cfg.cacheDir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(cfg.cacheDir, fmt.Sprintf("put-%dx%d-%dfps-%dbps-%ds.mp4", cfg.width, cfg.height, cfg.fps, cfg.bitrate, int(cfg.duration.Seconds())))
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	logf("making the test video with ffmpeg (cached in %s)", cfg.cacheDir)
	gop := strconv.Itoa(2 * cfg.fps)
	br := strconv.Itoa(cfg.bitrate)
	tmp := path + ".tmp.mp4"
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=s=%dx%d:r=%d", cfg.width, cfg.height, cfg.fps), "-t", fmt.Sprint(cfg.duration.Seconds()),
		"-c:v", "libx264", "-preset", "ultrafast", "-b:v", br, "-maxrate", br, "-bufsize", strconv.Itoa(2*cfg.bitrate),
		"-g", gop, "-keyint_min", gop, "-sc_threshold", "0", "-bf", "0", "-pix_fmt", "yuv420p", tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("ffmpeg: %v\n%s", err, out)
	}
	return path, os.Rename(tmp, path)
}

// camera serves the video's frames over RTSP in real time, looping.
func camera(video string) (*rtsptest.Server, error) {
	track, frames, err := rtsptest.Load(context.Background(), video)
	if err != nil {
		return nil, err
	}
	return rtsptest.Start(rtsptest.Config{Track: track, Frames: frames, Loop: true})
}

// measure runs kvsd put on a new stream and returns its CPU (rusage of the
// child) and the server's over the same wall time (/proc/<pid>/stat).
func measure(ctx context.Context, bin string, srv *child.Proc, work, stream string, args []string) (row, error) {
	full := append([]string{"put", "--stream", stream, "--create", "--endpoint-url", srv.URL, "--region", kvsdproc.Region, "--quiet"}, args...)
	cmd := exec.CommandContext(ctx, bin, full...)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+kvsdproc.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+kvsdproc.SecretAccessKey,
		"AWS_SESSION_TOKEN=", "AWS_PROFILE=", "AWS_ENDPOINT_URL=", "AWS_ENDPOINT_URL_KINESIS_VIDEO=")
	logPath := filepath.Join(work, "put-"+stream+".log")
	out, err := os.Create(logPath)
	if err != nil {
		return row{}, err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	server0, err := child.CPUTime(srv.PID())
	if err != nil {
		return row{}, err
	}
	t0 := time.Now()
	runErr := cmd.Run()
	wall := time.Since(t0)
	server1, err := child.CPUTime(srv.PID())
	if err != nil {
		return row{}, err
	}
	log, _ := os.ReadFile(logPath)
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	if runErr != nil {
		return row{}, fmt.Errorf("kvsd put %s: %v\n%s", strings.Join(args, " "), runErr, log)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return row{
		wall:      wall,
		putCPU:    time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		putRSS:    ru.Maxrss * 1024,
		serverCPU: server1 - server0,
		summary:   lines[len(lines)-1],
	}, nil
}

func report(w io.Writer, cfg config, rows []row) {
	fmt.Fprintf(w, "## kvsd put: CPU for one real-time stream\n\n")
	fmt.Fprintf(w, "%s, %d cores, %s/%s, %s. Video: %dx%d at %d fps, H.264 %.1f Mbit/s, a keyframe every 2 s; each stream runs %v.\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, machine.CPUModel(),
		cfg.width, cfg.height, cfg.fps, float64(cfg.bitrate)/1e6, cfg.duration)
	fmt.Fprintf(w, "| source | wall s | kvsd put CPU s | kvsd put, %% of a core | target ≤ 5 %% | kvsd put max RSS | kvsd serve CPU s | kvsd serve, %% of a core |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---|---:|---:|---:|\n")
	for _, r := range rows {
		met := "met"
		if r.putCores() > target {
			met = "missed"
		}
		fmt.Fprintf(w, "| %s | %.1f | %.2f | %.2f %% | %s | %.0f MB | %.2f | %.2f %% |\n", r.source, r.wall.Seconds(), r.putCPU.Seconds(),
			100*r.putCores(), met, float64(r.putRSS)/1e6, r.serverCPU.Seconds(), 100*r.serverCores())
	}
	fmt.Fprintln(w)
	for _, r := range rows {
		fmt.Fprintf(w, "- %s: `%s`\n", r.source, r.summary)
	}
}
