// Command put measures the CPU that `kvsd put` spends on one real-time 1080p30 H.264 stream at
// 2 Mbit/s read from a Matroska file, beside what kvsd itself spends ingesting it. Both run as
// separate processes over loopback; CPU is user+system time from the kernel (the put process's
// rusage, kvsd's /proc/<pid>/stat over the same span), so load from other processes changes the
// wall time little and the CPU figures not at all. It prints a Markdown table on stdout.
//
//	go run ./bench/put                  # 60 s of video, paced to real time
//	go run ./bench/put -seconds 20
//
// Exit status: 0 when `kvsd put` stays within 5 % of one core, 3 when it does not, 1 on error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const (
	accessKey = "AKIAKVSDBENCHPUT0001"
	secretKey = "kvsdBenchPutSecret/0123456789abcdefghij"
	target    = 5.0 // % of one core
)

func main() {
	seconds := flag.Int("seconds", 60, "length of the test video (it streams in real time)")
	workDir := flag.String("work-dir", "", "where the binary, video and data go (default: a new temporary directory, removed)")
	flag.Parse()
	code, err := run(*seconds, *workDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/put:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(seconds int, dir string) (int, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "kvsd-bench-put-")
		if err != nil {
			return 0, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	bin := filepath.Join(dir, "kvsd")
	fmt.Fprintln(os.Stderr, "building kvsd …")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/kvsd").CombinedOutput(); err != nil {
		return 0, fmt.Errorf("go build: %v: %s", err, out)
	}
	video := filepath.Join(dir, "hd.mkv")
	fmt.Fprintf(os.Stderr, "encoding %d s of 1080p30 at 2 Mbit/s …\n", seconds)
	if out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30",
		"-t", strconv.Itoa(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "2M", "-maxrate", "2M", "-bufsize", "4M",
		"-g", "60", "-f", "matroska", video).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("ffmpeg: %v: %s", err, out)
	}

	addr, err := freeAddr()
	if err != nil {
		return 0, err
	}
	url := "http://" + addr
	srv := exec.Command(bin, "serve", "--listen", addr, "--data-dir", filepath.Join(dir, "data"), "--log-level", "warn")
	srv.Env = append(os.Environ(), "KVSD_ACCESS_KEY_ID="+accessKey, "KVSD_SECRET_ACCESS_KEY="+secretKey)
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	if err := waitHealthy(url); err != nil {
		return 0, err
	}

	fmt.Fprintf(os.Stderr, "streaming for %d s …\n", seconds)
	put := exec.Command(bin, "put", "--stream", "bench", "--create", "--endpoint-url", url, "--quiet", video)
	put.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+accessKey, "AWS_SECRET_ACCESS_KEY="+secretKey, "AWS_REGION=us-east-1",
		"AWS_SESSION_TOKEN=", "AWS_PROFILE=", "AWS_CONFIG_FILE="+filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "none"))
	var summary strings.Builder
	put.Stderr = &summary
	before, err := procCPU(srv.Process.Pid)
	if err != nil {
		return 0, err
	}
	began := time.Now()
	if err := put.Run(); err != nil {
		return 0, fmt.Errorf("kvsd put: %v: %s", err, summary.String())
	}
	wall := time.Since(began)
	after, err := procCPU(srv.Process.Pid)
	if err != nil {
		return 0, err
	}
	putCPU := put.ProcessState.UserTime() + put.ProcessState.SystemTime()
	srvCPU := after - before

	pct := func(d time.Duration) float64 { return 100 * d.Seconds() / wall.Seconds() }
	fmt.Printf("One real-time stream, %d s of 1080p30 H.264 at 2 Mbit/s from a Matroska file, %.1f s wall.\n\n", seconds, wall.Seconds())
	fmt.Println("| process | CPU s | % of one core | target |")
	fmt.Println("|---|---:|---:|---|")
	met := pct(putCPU) <= target
	verdict := "met"
	if !met {
		verdict = "missed"
	}
	fmt.Printf("| `kvsd put` (whole process: start, DescribeStream/CreateStream, PutMedia) | %.2f | %.1f %% | ≤ %.0f %%: %s |\n", putCPU.Seconds(), pct(putCPU), target, verdict)
	fmt.Printf("| `kvsd serve` ingesting it (same span) | %.2f | %.1f %% | |\n", srvCPU.Seconds(), pct(srvCPU))
	fmt.Printf("\n`kvsd put` said: %s\n", strings.TrimSpace(summary.String()))
	if !met {
		return 3, nil
	}
	return 0, nil
}

// procCPU returns a process's user+system CPU time from /proc.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces) start after the last ')'.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, errors.New("short /proc stat")
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("bad /proc stat")
	}
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clkTck, nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitHealthy(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/healthz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("kvsd did not become healthy within 30 s")
}
