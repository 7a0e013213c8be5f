package pgtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
)

// Server is a PostgreSQL server of a test's own (initdb in a temporary directory, on a free
// loopback port, trust authentication), for tests that stop and start the server itself: the
// machine's shared server must keep running for the other tests.
type Server struct {
	URL  string // postgres://postgres@127.0.0.1:port/postgres
	dir  string
	port int
	run  func(name string, args ...string) *exec.Cmd
	bin  string
}

// StartServer initializes and starts a private server until the test ends. It skips the test
// when PostgreSQL's server programs are not installed (outside CI).
func StartServer(t testing.TB) *Server {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("PostgreSQL's server programs are not installed (/usr/lib/postgresql/*/bin): run `make setup-test`")
		}
		t.Skip("PostgreSQL's server programs are not installed (/usr/lib/postgresql/*/bin)")
	}
	sort.Strings(bins)
	s := &Server{bin: filepath.Dir(bins[len(bins)-1])}
	// The server refuses to run as root: as root, it runs as the postgres user, in a directory
	// of its own (t.TempDir's parents are not open to it).
	s.run = exec.Command
	dir, err := os.MkdirTemp("", "kvsd-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		pg, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, the server needs the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(pg.Uid)
		gid, _ := strconv.Atoi(pg.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		s.run = func(name string, args ...string) *exec.Cmd {
			return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
		}
	}
	s.dir = filepath.Join(dir, "data")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
	initdb := s.run(filepath.Join(s.bin, "initdb"), "-D", s.dir, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", initdb, err, out)
	}
	s.Start(t)
	t.Cleanup(func() { _ = s.pgctl("stop", "-m", "immediate").Run() })
	return s
}

// Stop shuts the server down as an administrator's restart does (fast: sessions are ended,
// nothing committed is lost) and waits until it is down.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.must(t, s.pgctl("stop", "-m", "fast"))
}

// Start starts the server (again) and waits until it accepts connections.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	s.must(t, s.pgctl("start", "-l", filepath.Join(filepath.Dir(s.dir), "log"),
		"-o", fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -k %s -c fsync=off", s.port, filepath.Dir(s.dir))))
}

func (s *Server) pgctl(action string, args ...string) *exec.Cmd {
	return s.run(filepath.Join(s.bin, "pg_ctl"), append([]string{action, "-D", s.dir, "-w", "-t", "60"}, args...)...)
}

func (s *Server) must(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
}
