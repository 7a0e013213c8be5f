package app

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"
)

// serverTLS is the TLS configuration of `kvsd serve --tls-cert … --tls-key …`, or nil without
// them. It fails when the pair cannot be loaded, so a bad pair stops kvsd at start.
func serverTLS(cfg Config, log *slog.Logger) (*tls.Config, error) {
	if cfg.TLSCert == "" {
		return nil, nil
	}
	r, err := newCertReloader(cfg.TLSCert, cfg.TLSKey, log)
	if err != nil {
		return nil, err
	}
	// HTTP/1.1 only, as without TLS: PutMedia and GetMedia are tested on it, and it is what
	// the producer SDKs and kvssink speak.
	return &tls.Config{GetCertificate: r.GetCertificate, NextProtos: []string{"http/1.1"}}, nil
}

// reloadCheck is how often, at most, a handshake looks whether the pair's files changed.
const reloadCheck = time.Second

// certReloader gives TLS handshakes the certificate pair in two files and reads the pair again
// when either file changes (certbot's renewal, a mounted secret's swap), looking at most once
// per reloadCheck. A new pair that does not load leaves the previous one in service, with a
// warning; it is tried again when the files change again.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]os.FileInfo // of certFile and keyFile when last read; nil when missing
	checked time.Time
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log, checked: time.Now()}
	r.stamp = r.statFiles()
	cert, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cert = cert
	return r, nil
}

// GetCertificate is tls.Config.GetCertificate.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checked) >= reloadCheck {
		r.checked = now
		r.reloadIfChanged()
	}
	return r.cert, nil
}

func (r *certReloader) reloadIfChanged() {
	stamp := r.statFiles()
	if sameFile(stamp[0], r.stamp[0]) && sameFile(stamp[1], r.stamp[1]) {
		return
	}
	r.stamp = stamp
	cert, err := r.load()
	if err != nil {
		r.log.Warn("TLS certificate files changed but do not load; still serving the previous certificate", "err", err)
		return
	}
	r.cert = cert
	r.log.Info("TLS certificate reloaded", "cert", r.certFile, "subject", cert.Leaf.Subject.String(), "not_after", cert.Leaf.NotAfter)
}

func (r *certReloader) load() (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s and key %s: %w", r.certFile, r.keyFile, err)
	}
	return &cert, nil
}

func (r *certReloader) statFiles() [2]os.FileInfo {
	var s [2]os.FileInfo
	for i, name := range []string{r.certFile, r.keyFile} {
		s[i], _ = os.Stat(name)
	}
	return s
}

// sameFile reports whether a and b are one file, unchanged: a file replaced by a rename is
// another file even with the same size and time.
func sameFile(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// untrustedServer explains the error of a client that does not trust the server's certificate,
// or returns nil for any other error.
func untrustedServer(err error, where string) error {
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		return nil
	}
	return fmt.Errorf("%s has a certificate from a CA this machine does not trust; name the CA certificate (PEM) in AWS_CA_BUNDLE=/path/ca.pem: %w", where, err)
}

// clientTransport is the transport of kvsd's own clients (kvsd put, kvsd doctor): Go's
// default, also trusting the CA certificates in the PEM file that AWS_CA_BUNDLE names, the
// variable the aws CLI and the AWS SDKs read for a private CA. Unlike them, kvsd adds the
// bundle to the system's CAs instead of trusting the bundle alone.
func clientTransport(getenv func(string) string) (*http.Transport, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	path := getenv("AWS_CA_BUNDLE")
	if path == "" {
		return tr, nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("AWS_CA_BUNDLE: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("AWS_CA_BUNDLE %s holds no PEM certificate", path)
	}
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	return tr, nil
}
