// Package child runs the server processes of the benchmark programs (kvsd, a baseline) as
// children: it waits for the line announcing their URL, stops them, and reads their CPU time and
// memory.
package child

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is a running server process.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	URL  string // as announced on its stdout
	done chan error
	log  string // its stderr, for the error message when it dies
}

var urlLine = regexp.MustCompile(`serving (?:the KVS API|the baseline) on (http://127\.0\.0\.1:[0-9]+)`)

// Start runs exe with args and env added to this process's environment, waits for the line
// announcing its URL on stdout, and returns. stderr goes to logPath.
func Start(name, exe string, args, env []string, logPath string) (*Proc, error) {
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), env...)
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, done: make(chan error, 1), log: logPath}
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := urlLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case urlc <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, out)
		p.done <- cmd.Wait()
		logf.Close()
	}()
	select {
	case p.URL = <-urlc:
		return p, nil
	case err := <-p.done:
		p.done <- err
		return nil, fmt.Errorf("%s exited before serving (%v): %s", name, err, tail(logPath))
	case <-time.After(60 * time.Second):
		_ = p.Stop()
		return nil, fmt.Errorf("%s did not announce its URL within 60 s: %s", name, tail(logPath))
	}
}

// Stop ends the process with SIGTERM (SIGKILL after 30 s) and waits for it.
func (p *Proc) Stop() error {
	if p == nil {
		return nil
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(30 * time.Second):
		_ = p.Cmd.Process.Kill()
		err := <-p.done
		p.done <- err
		return fmt.Errorf("%s ignored SIGTERM for 30 s; killed", p.Name)
	}
}

// Alive reports an error if the process has exited.
func (p *Proc) Alive() error {
	select {
	case err := <-p.done:
		p.done <- err
		return fmt.Errorf("%s exited (%v): %s", p.Name, err, tail(p.log))
	default:
		return nil
	}
}

// PID is the process id.
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// CPUTime is the user+system CPU time a process has used (/proc/<pid>/stat; USER_HZ is 100 on
// every Linux this runs on).
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("CPU time of process %d (Linux /proc needed): %w", pid, err)
	}
	// The command name may hold spaces: fields start after its ")".
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// Mem is a process's resident memory, in bytes.
type Mem struct{ RSS, HWM int64 }

// ReadMem reads a process's resident memory and its peak (/proc/<pid>/status).
func ReadMem(pid int) (Mem, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Mem{}, err
	}
	var m Mem
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			m.RSS = kb << 10
		case "VmHWM:":
			m.HWM = kb << 10
		}
	}
	return m, nil
}

// ResetPeak sets a process's VmHWM back to its current RSS (Linux 4.0 and later); false if
// the kernel does not allow it.
func ResetPeak(pid int) bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
}
