// Package machine describes the machine a benchmark program runs on, for the head of its report,
// and reads the machine's busy CPU time (Linux /proc), which tells how much of a measurement's
// CPU went to other processes.
package machine

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CPUModel is the processor's model name, or GOARCH where /proc/cpuinfo does not say.
func CPUModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// Memory is the machine's memory in GB (10^9 bytes).
func Memory() string {
	b, _ := os.ReadFile("/proc/meminfo")
	var kb int64
	fmt.Sscanf(string(b), "MemTotal: %d kB", &kb)
	return fmt.Sprintf("%.0f GB", float64(kb)*1024/1e9)
}

// Kernel is the Linux kernel's release.
func Kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

// FFmpegVersion is the version `ffmpeg -version` reports, or "unknown".
func FFmpegVersion() string {
	out, err := exec.Command("ffmpeg", "-hide_banner", "-version").Output()
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(out))
	if len(f) >= 3 {
		return f[2]
	}
	return "unknown"
}

// FSType names the file system dir is on.
func FSType(dir string) string {
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

// Busy is the CPU time all cores spent neither idle, waiting for I/O nor stolen by the
// hypervisor, and the part of it spent in interrupts (/proc/stat); zeros where it cannot be read.
func Busy() (busy, irq time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0
	}
	var ticks, irqTicks int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		switch i {
		case 3, 4, 7, 8, 9: // idle, iowait, steal; guest times are already in user
			continue
		case 5, 6:
			irqTicks += n
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, time.Duration(irqTicks) * 10 * time.Millisecond
}
