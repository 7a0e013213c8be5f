// Package kvstest starts a real kvsd in-process on loopback with a temporary data dir and hands
// out AWS SDK for Go v2 clients pointed at it, for tests in any package; it also runs kvsd put
// and kvsd doctor against a server as a user would, and makes the test clips they send.
package kvstest

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	kvtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideomedia"

	"github.com/kvsd/kvsd/internal/app"
)

// Test credentials; each server is configured with exactly this pair.
const (
	AccessKeyID     = "AKIAKVSDTESTKEY00001"
	SecretAccessKey = "kvsdTestSecretKey/0123456789abcdefghijklm"
	Region          = "us-east-1"
)

// Server is a running kvsd for one test.
type Server struct {
	*app.Server
	Config app.Config
	// CA signed the server's certificate when it serves TLS (Options.TLS); nil otherwise. The
	// clients and the aws CLI this package hands out trust it.
	CA        *CA
	transport http.RoundTripper // http.DefaultTransport, or one trusting CA
	env       app.Env
	attached  bool // Attach: a server this test does not own
}

// Options tweak the server a test starts.
type Options struct {
	DataDir string            // reuse a data dir (restart tests); default t.TempDir()
	Env     map[string]string // extra environment as kvsd would read it
	// TLS serves https with a certificate for 127.0.0.1 from a new CA (Server.CA), written to
	// Config.TLSCert and Config.TLSKey.
	TLS bool
	// LogTo, when set, receives kvsd's log at INFO and above (text) instead of the test log.
	LogTo io.Writer
	// Configure, when set, adjusts the server configuration before start.
	Configure func(*app.Config)
}

// Start runs kvsd until the test ends.
func Start(t testing.TB, opts ...Options) *Server {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	env := map[string]string{"KVSD_ACCESS_KEY_ID": AccessKeyID, "KVSD_SECRET_ACCESS_KEY": SecretAccessKey}
	for k, v := range o.Env {
		env[k] = v
	}
	cfg := app.Config{Listen: "127.0.0.1:0", DataDir: o.DataDir, Region: Region, AccountID: app.DefaultAccountID,
		LogLevel: "info", LogFormat: "text", RetentionInterval: 200 * time.Millisecond, GetMediaIdleClose: 2 * time.Second}
	s := &Server{transport: http.DefaultTransport}
	if o.TLS {
		s.CA = NewCA(t)
		dir := t.TempDir()
		cfg.TLSCert, cfg.TLSKey = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		s.CA.Issue(t, cfg.TLSCert, cfg.TLSKey, "kvsd")
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: s.CA.Pool}
		s.transport = tr
	}
	if o.Configure != nil {
		o.Configure(&cfg)
	}
	s.Config, s.env = cfg, app.Env{Getenv: func(k string) string { return env[k] }, Logger: testLogger(t)}
	if o.LogTo != nil {
		s.env.Logger = slog.New(slog.NewTextHandler(o.LogTo, nil))
	}
	srv, err := app.Start(cfg, s.env)
	if err != nil {
		t.Fatalf("start kvsd: %v", err)
	}
	s.Server = srv
	t.Cleanup(func() { s.Stop(t) })
	return s
}

// Stop shuts the server down; calling it twice is harmless.
func (s *Server) Stop(t testing.TB) {
	if s.Server == nil || s.attached {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("shutdown kvsd: %v", err)
	}
	s.Server = nil
}

// AWSConfig returns an SDK config with the server's credentials and region (and, over TLS, an
// HTTP client trusting the server's CA).
func (s *Server) AWSConfig() aws.Config {
	cfg := aws.Config{
		Region:      Region,
		Credentials: credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
		// Retries would hide the first error a test wants to see.
		RetryMaxAttempts: 1,
	}
	if s.CA != nil {
		cfg.HTTPClient = streamingSafe(s.transport)
	}
	return cfg
}

// KinesisVideo returns a control-plane client for this server.
func (s *Server) KinesisVideo(optFns ...func(*kinesisvideo.Options)) *kinesisvideo.Client {
	opts := append([]func(*kinesisvideo.Options){func(o *kinesisvideo.Options) { o.BaseEndpoint = aws.String(s.URL) }}, optFns...)
	return kinesisvideo.NewFromConfig(s.AWSConfig(), opts...)
}

// DataEndpoint asks GetDataEndpoint where api is served for stream, as every KVS reader does
// before it builds its data-plane client.
func (s *Server) DataEndpoint(t testing.TB, stream string, api kvtypes.APIName) string {
	t.Helper()
	out, err := s.KinesisVideo().GetDataEndpoint(context.Background(), &kinesisvideo.GetDataEndpointInput{
		StreamName: aws.String(stream), APIName: api})
	if err != nil {
		t.Fatalf("GetDataEndpoint %s: %v", api, err)
	}
	return aws.ToString(out.DataEndpoint)
}

// ArchivedMedia returns a kinesisvideoarchivedmedia client at the endpoint GetDataEndpoint
// names for api on stream.
func (s *Server) ArchivedMedia(t testing.TB, stream string, api kvtypes.APIName) *kinesisvideoarchivedmedia.Client {
	endpoint := s.DataEndpoint(t, stream, api)
	return kinesisvideoarchivedmedia.NewFromConfig(s.AWSConfig(), func(o *kinesisvideoarchivedmedia.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.HTTPClient = streamingSafe(s.transport)
	})
}

// Media returns a kinesisvideomedia (GetMedia) client at the endpoint GetDataEndpoint names
// for GET_MEDIA on stream.
func (s *Server) Media(t testing.TB, stream string) *kinesisvideomedia.Client {
	endpoint := s.DataEndpoint(t, stream, kvtypes.APINameGetMedia)
	return kinesisvideomedia.NewFromConfig(s.AWSConfig(), func(o *kinesisvideomedia.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.HTTPClient = streamingSafe(s.transport)
	})
}

// StreamingSafeClient is the HTTP client the README tells Go SDK readers to use against a
// nearby kvsd. smithy-go closes a request's body as soon as the response headers arrive,
// and its body wrapper's WriteTo then returns io.EOF as an error. When the response beats
// net/http's write loop (loopback, LAN), the loop's final io.Copy of the body sees that
// error and closes the connection under the streaming response being read: GetMedia fails
// with "use of closed network connection". Hiding WriteTo makes io.Copy use Read, whose
// io.EOF is a normal end.
func StreamingSafeClient() *http.Client { return streamingSafe(http.DefaultTransport) }

// streamingSafe is StreamingSafeClient over another transport.
func streamingSafe(tr http.RoundTripper) *http.Client {
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Body != nil {
			r = r.Clone(r.Context())
			r.Body = struct{ io.ReadCloser }{r.Body}
		}
		return tr.RoundTrip(r)
	})}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// Attach returns helpers for a kvsd already running at url with the test credentials (a child
// process in crash tests). Stop does nothing for it.
func Attach(url string) *Server {
	return &Server{Server: &app.Server{URL: url}, transport: http.DefaultTransport, attached: true}
}
