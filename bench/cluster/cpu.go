package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kvsd/kvsd/bench/internal/child"
	"github.com/kvsd/kvsd/bench/internal/machine"
	"github.com/kvsd/kvsd/internal/kvstest"
)

// The process groups whose CPU the report shows.
const (
	grpKvsd      = "kvsd"
	grpBaseline  = "baseline"
	grpVersitygw = "versitygw"
	grpPostgres  = "postgres"
	grpHAProxy   = "haproxy"
	grpSelf      = "load" // this program: the producers
)

// cpuSnap is a moment's CPU counters: the machine's busy time and each process's, by pid,
// in groups (processes come and go: PostgreSQL backends, restarted nodes).
type cpuSnap struct {
	at      time.Time
	machine time.Duration
	procs   map[string]map[int]time.Duration // group → pid → CPU time
}

// watch names the processes of each group at a moment.
type watch func() map[string][]int

func snapCPU(w watch) cpuSnap {
	busy, _ := machine.Busy()
	s := cpuSnap{at: time.Now(), machine: busy, procs: map[string]map[int]time.Duration{}}
	groups := w()
	groups[grpSelf] = []int{os.Getpid()}
	for g, pids := range groups {
		m := map[int]time.Duration{}
		for _, pid := range pids {
			if pid == 0 {
				continue
			}
			if t, err := child.CPUTime(pid); err == nil {
				m[pid] = t
			}
		}
		s.procs[g] = m
	}
	return s
}

// cpuUse is the CPU each group used between two snaps, in cores (CPU seconds per wall
// second), and the rest of the machine's (the kernel outside processes and other processes).
type cpuUse struct {
	wall   time.Duration
	groups map[string]float64
	other  float64
}

func (a cpuSnap) to(b cpuSnap) cpuUse {
	wall := b.at.Sub(a.at)
	u := cpuUse{wall: wall, groups: map[string]float64{}}
	var sum float64
	for g, pids := range b.procs {
		var d time.Duration
		for pid, t := range pids {
			// A process that started meanwhile counts whole; one that exited is lost.
			if old, ok := a.procs[g][pid]; ok && old <= t {
				t -= old
			}
			d += t
		}
		u.groups[g] = d.Seconds() / wall.Seconds()
		sum += u.groups[g]
	}
	u.other = max(0, (b.machine-a.machine).Seconds()/wall.Seconds()-sum)
	return u
}

// msPerMB is a group's CPU milliseconds per MB (10^6 bytes) of media acknowledged.
func (u cpuUse) msPerMB(group string, bytes int64) string {
	if bytes == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f", u.groups[group]*u.wall.Seconds()*1000/(float64(bytes)/1e6))
}

// merge is the wall-weighted mean of two uses.
func (u cpuUse) merge(o cpuUse) cpuUse {
	w1, w2 := u.wall.Seconds(), o.wall.Seconds()
	m := cpuUse{wall: u.wall + o.wall, groups: map[string]float64{}}
	for _, g := range []string{grpKvsd, grpBaseline, grpVersitygw, grpPostgres, grpHAProxy, grpSelf} {
		m.groups[g] = (u.groups[g]*w1 + o.groups[g]*w2) / (w1 + w2)
	}
	m.other = (u.other*w1 + o.other*w2) / (w1 + w2)
	return m
}

// postgresPIDs are the PostgreSQL server processes working for database db: its backends
// (their process title names the database) and the server's WAL writer, checkpointer and
// background writer, which every database shares.
func postgresPIDs(db string) []int {
	return pidsWhere(func(title string) bool {
		return strings.HasPrefix(title, "postgres: ") && (strings.Contains(title, " "+db+" ") ||
			strings.HasSuffix(title, ": walwriter") || strings.HasSuffix(title, ": checkpointer") ||
			strings.HasSuffix(title, ": background writer"))
	})
}

// haproxyPIDs are the HAProxy processes whose configuration lies under dir (this run's front
// doors; kvstest.FrontDoor does not tell its pid).
func haproxyPIDs(dir string) []int {
	return pidsWhere(func(cmdline string) bool {
		return strings.HasPrefix(cmdline, kvstest.HAProxy+" ") && strings.Contains(cmdline, dir)
	})
}

// pidsWhere lists the processes whose command line (arguments joined by spaces; a process
// title as the process set it) matches.
func pidsWhere(match func(string) bool) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		cmdline := strings.TrimRight(strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " "), " ")
		if match(cmdline) {
			out = append(out, pid)
		}
	}
	return out
}
