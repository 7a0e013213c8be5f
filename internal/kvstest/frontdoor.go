package kvstest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kvsd/kvsd/internal/logtest"
)

// HAProxy is where Debian's haproxy package puts the binary (scripts/setup.sh --test installs it).
const HAProxy = "/usr/sbin/haproxy"

// FrontDoor is HAProxy running the repository's deploy/haproxy.cfg in front of kvsd nodes.
type FrontDoor struct {
	URL  string // http://127.0.0.1:port
	Addr string
	cmd  *exec.Cmd
	log  *logtest.Buffer
}

// StartFrontDoor runs deploy/haproxy.cfg with its bind line moved to a free loopback port and
// its server lines replaced by one per backend address (host:port), everything else as
// committed, so that the tests check the configuration users copy. It skips the test when
// HAProxy is not installed (it fails instead when CI=true), and stops HAProxy when the test ends.
func StartFrontDoor(t testing.TB, backends ...string) *FrontDoor {
	t.Helper()
	if _, err := os.Stat(HAProxy); err != nil {
		msg := fmt.Sprintf("kvstest: %s not installed (scripts/setup.sh --test, which make test runs, installs it)", HAProxy)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + "; CI=true, so this fails instead of skipping")
		}
		t.Skip(msg)
	}
	addr := FreeAddr(t)
	cfg, err := frontDoorConfig(addr, backends)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	fd := &FrontDoor{URL: "http://" + addr, Addr: addr, log: &logtest.Buffer{}}
	// -db: stay in the foreground, so that killing the process stops it.
	fd.cmd = exec.Command(HAProxy, "-db", "-f", path)
	fd.cmd.Stdout, fd.cmd.Stderr = fd.log, fd.log
	if err := fd.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = fd.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = fd.cmd.Process.Kill()
		<-exited
	})
	// Ready when the port accepts: HAProxy binds before it serves.
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("haproxy exited: %v\n%s", exitErr, fd.log.String())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return fd
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy does not listen on %s: %v\n%s", addr, err, fd.log.String())
		}
		time.Sleep(20 * time.Millisecond) // polling a port that is about to open
	}
}

// Log is what HAProxy printed (warnings, servers going down and up).
func (fd *FrontDoor) Log() string { return fd.log.String() }

// Healthz asks /healthz through the front door on a new connection: the status, or an error.
func (fd *FrontDoor) Healthz() (int, error) {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(fd.URL + "/healthz")
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// frontDoorConfig is deploy/haproxy.cfg binding addr and sending to backends.
func frontDoorConfig(addr string, backends []string) (string, error) {
	_, file, _, _ := runtime.Caller(0)
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "deploy", "haproxy.cfg"))
	if err != nil {
		return "", err
	}
	var out []string
	binds, servers := 0, 0
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 1 && f[0] == "bind":
			out = append(out, "    bind "+addr)
			binds++
		case len(f) > 1 && f[0] == "server":
			if servers == 0 {
				for i, b := range backends {
					out = append(out, fmt.Sprintf("    server kvsd%d %s check", i+1, b))
				}
			}
			servers++
		default:
			out = append(out, line)
		}
	}
	if binds != 1 || servers == 0 {
		return "", fmt.Errorf("deploy/haproxy.cfg: want one bind line and server lines, found %d and %d", binds, servers)
	}
	return strings.Join(out, "\n"), nil
}

// FreeAddr is a loopback address with a port nothing listens on now (for the front door, or
// a node started later).
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
