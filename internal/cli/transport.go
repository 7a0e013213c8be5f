package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
)

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
