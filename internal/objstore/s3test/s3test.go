// Package s3test runs a real S3 server for tests: versitygw (installed by `make setup`) with its
// POSIX backend in a temporary directory, on a free loopback port, with SigV4 enforced.
package s3test

import (
	"bytes"
	"context"
	"fmt"
	"go/build"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Root credentials of every server this package starts.
const (
	AccessKeyID     = "S3TESTROOTACCESSKEY1"
	SecretAccessKey = "s3testRootSecretKey/0123456789abcdefghij"
	Region          = "us-east-1"
)

// Server is a running versitygw.
type Server struct {
	Endpoint string // http://127.0.0.1:port
	Dir      string // the POSIX backend's root: Dir/<bucket>/<key>

	addr string
	bin  string
	cmd  *exec.Cmd
	out  bytes.Buffer
}

// Binary returns the path of versitygw, or fails the test with how to install it.
func Binary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	p := filepath.Join(build.Default.GOPATH, "bin", "versitygw")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("versitygw is not installed (%v): run `make setup`, or go install github.com/versity/versitygw/cmd/versitygw@v1.8.0", err)
	}
	return p
}

// Start runs versitygw until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartIn(t, t.TempDir())
}

// StartIn is Start with the objects in dir, an existing directory.
func StartIn(t testing.TB, dir string) *Server {
	t.Helper()
	s := &Server{Dir: dir, bin: Binary(t)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	ln.Close()
	s.Endpoint = "http://" + s.addr
	s.Resume(t)
	t.Cleanup(s.Stop)
	return s
}

// Stop kills the server (an outage); Resume starts it again on the same port and directory.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Freeze stops the server's process without closing anything (SIGSTOP): connections are
// accepted by the kernel and requests never answered, as from a hung server or a black hole.
// Thaw lets it run again.
func (s *Server) Freeze(t testing.TB) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("freeze versitygw: %v", err)
	}
}

// Thaw resumes a frozen server (SIGCONT).
func (s *Server) Thaw(t testing.TB) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatalf("thaw versitygw: %v", err)
	}
}

// Resume starts the server after Stop and waits until it answers.
func (s *Server) Resume(t testing.TB) {
	t.Helper()
	if s.cmd != nil {
		return
	}
	s.out.Reset()
	cmd := exec.Command(s.bin, "--access", AccessKeyID, "--secret", SecretAccessKey, "--region", Region,
		"--port", s.addr, "--quiet", "posix", s.Dir)
	cmd.Stdout, cmd.Stderr = &s.out, &s.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			s.Stop()
			t.Fatalf("versitygw did not listen on %s: %s", s.addr, s.out.String())
		}
		time.Sleep(20 * time.Millisecond) // versitygw announces nothing when it listens: poll the port
	}
}

// Client returns an SDK client with the root credentials (path-style, as versitygw needs).
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(s.Endpoint), UsePathStyle: true, Region: Region,
		Credentials:                credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		HTTPClient:                 &http.Client{Timeout: 10 * time.Second},
	})
}

// CreateBucket makes a bucket.
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	if _, err := s.Client().CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
}

// Object is one stored object as S3 returns it.
type Object struct {
	Key         string
	Body        []byte
	ContentType string
	Metadata    map[string]string
}

// Keys lists the keys of a bucket in order.
func (s *Server) Keys(t testing.TB, bucket string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.Client(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("list %s: %v", bucket, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	sort.Strings(keys)
	return keys
}

// Get reads one object with its content type and metadata.
func (s *Server) Get(t testing.TB, bucket, key string) Object {
	t.Helper()
	out, err := s.Client().GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("read %s/%s: %v", bucket, key, err)
	}
	return Object{Key: key, Body: body, ContentType: aws.ToString(out.ContentType), Metadata: out.Metadata}
}

// WaitKeys polls until bucket holds at least n objects (or the timeout passes) and returns them.
func (s *Server) WaitKeys(t testing.TB, bucket string, n int, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		keys := s.Keys(t, bucket)
		if len(keys) >= n || time.Now().After(deadline) {
			return keys
		}
		time.Sleep(100 * time.Millisecond) // S3 tells no one of new objects: poll the listing
	}
}

// PID is the running server's process id (0 while it is stopped), for benchmarks that
// report its CPU.
func (s *Server) PID() int {
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// String describes the server for failure messages.
func (s *Server) String() string { return fmt.Sprintf("versitygw at %s (dir %s)", s.Endpoint, s.Dir) }
