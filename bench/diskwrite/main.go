//go:build linux

// Command diskwrite measures what the disk under a directory gives to durable appends of
// fragment-sized records, the two ways a server can make them: through the page cache (write,
// then fdatasync, as bench/ingest's baseline does) and with O_DIRECT|O_DSYNC (as kvsd's media
// store does). It prints a Markdown table: MB/s and this process's CPU per MB, for a few
// numbers of concurrent writers, each appending to a file of its own. A third mode seals each
// record with AES-256-GCM before the O_DIRECT write, as kvsd's encryption at rest does, to show
// what it adds on this machine.
//
//	go run ./bench/diskwrite -dir /var/tmp     # the directory must be on the disk to measure
//
// Linux only (O_DIRECT).
package main

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

func main() {
	dir := flag.String("dir", os.TempDir(), "where the test files go (removed afterwards)")
	size := flag.Int("size", 521471, "bytes per record (rounded up to 4 KiB); default: bench/ingest's mean fragment")
	dur := flag.Duration("d", 5*time.Second, "duration of each measurement")
	writers := flag.String("writers", "1,16,64", "numbers of concurrent writers, comma-separated")
	seal := flag.Bool("seal", true, "also measure O_DIRECT writes of records sealed with AES-256-GCM (kvsd's encryption at rest)")
	flag.Parse()
	rec := (*size + 4095) &^ 4095
	fmt.Printf("| writers | mode | MB/s | CPU cores | CPU ms per MB |\n|---:|---|---:|---:|---:|\n")
	for _, w := range strings.Split(*writers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || n <= 0 {
			fmt.Fprintln(os.Stderr, "diskwrite: -writers: want positive numbers")
			os.Exit(2)
		}
		modes := []struct {
			direct, seal bool
			name         string
		}{{false, false, "page cache: pwrite + fdatasync"}, {true, false, "O_DIRECT + O_DSYNC pwrite"}}
		if *seal {
			modes = append(modes, struct {
				direct, seal bool
				name         string
			}{true, true, "AES-256-GCM seal + O_DIRECT + O_DSYNC pwrite"})
		}
		for _, m := range modes {
			mbps, cores, err := measure(*dir, n, rec, m.direct, m.seal, *dur)
			if err != nil {
				fmt.Fprintln(os.Stderr, "diskwrite:", err)
				os.Exit(1)
			}
			fmt.Printf("| %d | %s | %.0f | %.2f | %.3f |\n", n, m.name, mbps, cores, cores*1000/mbps)
		}
	}
}

// measure runs n writers appending rec-byte records for dur and returns the aggregate MB/s
// and this process's CPU (user+system) in cores.
func measure(dir string, n, rec int, direct, seal bool, dur time.Duration) (float64, float64, error) {
	work, err := os.MkdirTemp(dir, "diskwrite-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(work)
	flags := os.O_RDWR | os.O_CREATE
	if direct {
		flags |= syscall.O_DIRECT | syscall.O_DSYNC
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int64
		first error
	)
	cpu0, start := cpuTime(), time.Now()
	for i := range n {
		wg.Go(func() {
			written, err := appendFor(filepath.Join(work, fmt.Sprint(i)), flags, rec, direct, seal, start.Add(dur))
			mu.Lock()
			defer mu.Unlock()
			total += written
			if first == nil {
				first = err
			}
		})
	}
	wg.Wait()
	wall := time.Since(start).Seconds()
	return float64(total) / 1e6 / wall, (cpuTime() - cpu0).Seconds() / wall, first
}

// appendFor appends records to a new file until the deadline, each one durable before the next.
// With seal, each record is first sealed with AES-256-GCM into the aligned buffer (random
// nonce, 28 bytes of the record for nonce and tag), as kvsd's media store does.
func appendFor(path string, flags, rec int, direct, seal bool, until time.Time) (int64, error) {
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	raw := make([]byte, rec+4096) // O_DIRECT wants aligned memory too
	skip := (4096 - int(uintptr(unsafe.Pointer(unsafe.SliceData(raw)))%4096)) % 4096
	buf := raw[skip : skip+rec]
	for i := range buf {
		buf[i] = byte(i)
	}
	var aead cipher.AEAD
	plain := make([]byte, rec-28)
	if seal {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		blk, err := aes.NewCipher(key)
		if err != nil {
			return 0, err
		}
		if aead, err = cipher.NewGCM(blk); err != nil {
			return 0, err
		}
	}
	var off, written int64
	for time.Now().Before(until) {
		if aead != nil {
			_, _ = rand.Read(buf[:12])
			aead.Seal(buf[12:12], buf[:12], plain, nil)
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			return written, err
		}
		if !direct {
			if err := syscall.Fdatasync(int(f.Fd())); err != nil {
				return written, err
			}
		}
		off += int64(rec)
		written += int64(rec)
		if off >= 1<<30 { // keep the files at most 1 GiB
			if err := f.Truncate(0); err != nil {
				return written, err
			}
			off = 0
		}
	}
	return written, nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
