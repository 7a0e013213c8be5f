package diskuse

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Size is a disk budget: bytes, or a share of the file system's size. The zero Size is no
// budget.
type Size struct {
	Bytes   int64
	Percent float64 // of the file system holding the data dir, when Bytes is 0
}

// units are the suffixes ParseSize accepts: SI (as disks are sold) and IEC.
var units = []struct {
	suffix string
	mult   float64
}{
	{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"TIB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"B", 1},
}

// ParseSize reads "500GB", "20MiB", "1.5TB", "123456789" (bytes) or "90%". "" and "0" are no
// budget.
func ParseSize(s string) (Size, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	if t == "" || t == "0" {
		return Size{}, nil
	}
	if p, ok := strings.CutSuffix(t, "%"); ok {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || !(v > 0 && v <= 100) {
			return Size{}, fmt.Errorf("%q: a percentage of the file system must be above 0 and at most 100", s)
		}
		return Size{Percent: v}, nil
	}
	mult := 1.0
	for _, u := range units {
		if n, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || !(v > 0) || math.IsInf(v, 0) || v*mult >= math.MaxInt64 {
		return Size{}, fmt.Errorf("%q: want a size such as 500GB, 20MiB or 90%%", s)
	}
	return Size{Bytes: int64(v * mult)}, nil
}

// IsZero reports whether there is no budget.
func (s Size) IsZero() bool { return s.Bytes == 0 && s.Percent == 0 }

// Limit is the budget in bytes on the file system holding dir (0: no budget).
func (s Size) Limit(dir string) (int64, error) {
	if s.Percent == 0 {
		return s.Bytes, nil
	}
	size, _, err := statfs(dir)
	return s.limit(size), err
}

// SegmentSize is the largest media segment that suits the budget: eviction frees a whole
// segment at a time, so a small budget (tens of MiB) needs segments of a 16th of it to stay
// close to its limit. 0: no cap (no budget).
func SegmentSize(limit int64) int64 {
	if limit == 0 {
		return 0
	}
	return max(limit/16, 64<<10)
}

// limit is the budget in bytes on a file system of fsSize bytes (0: no budget).
func (s Size) limit(fsSize int64) int64 {
	if s.Bytes > 0 {
		return s.Bytes
	}
	return int64(s.Percent / 100 * float64(fsSize))
}

func (s Size) String() string {
	switch {
	case s.Bytes > 0:
		return bytesText(s.Bytes)
	case s.Percent > 0:
		return strconv.FormatFloat(s.Percent, 'f', -1, 64) + "%"
	}
	return "none"
}

// bytesText writes n in IEC units, as df -h does.
func bytesText(n int64) string {
	const k = 1024
	if n < k {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/k, 0
	for ; v >= k && i < 4; i++ {
		v /= k
	}
	return fmt.Sprintf("%.1f %s", v, []string{"KiB", "MiB", "GiB", "TiB", "PiB"}[i])
}
