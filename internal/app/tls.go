package app

import (
	"crypto/tls"
	"fmt"
	"log/slog"
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
