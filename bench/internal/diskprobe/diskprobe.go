// Package diskprobe measures the disk beside a benchmark's data while the benchmark runs: a
// 4 KiB append and fdatasync at a fixed interval. Its tail shows the disk's own stalls (a
// virtual disk's, or writeback of other files'), which a server's fsync waits behind too.
package diskprobe

import (
	"os"
	"syscall"
	"time"
)

// Run appends 4 KiB to the file at path and fdatasyncs it every interval until stop is
// closed, and returns how long each append+fdatasync took. It stops early, with what it has,
// when the file cannot be written.
func Run(path string, every time.Duration, stop <-chan struct{}) []time.Duration {
	f, err := os.Create(path)
	if err != nil {
		return nil
	}
	defer os.Remove(path)
	defer f.Close()
	buf := make([]byte, 4096)
	var out []time.Duration
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return out
		case <-t.C:
		}
		start := time.Now()
		if _, err := f.Write(buf); err != nil {
			return out
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return out
		}
		out = append(out, time.Since(start))
	}
}
