package app_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	kvtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideomedia"
	mtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideomedia/types"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/app"
	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/logtest"
	"github.com/kvsd/kvsd/internal/mkv"
)

// kvsd over https with a certificate from a private CA, driven by real clients: the aws CLI
// with AWS_CA_BUNDLE, the Go SDK with an HTTP client trusting the CA, and kvsd put and kvsd
// doctor with AWS_CA_BUNDLE. Without the CA each of them fails, and kvsd's own say why.
func TestTLSServesRealClients(t *testing.T) {
	srv := kvstest.Start(t, kvstest.Options{TLS: true})
	ctx := context.Background()
	require.True(t, strings.HasPrefix(srv.URL, "https://127.0.0.1:"), "the default public URL is https: %s", srv.URL)

	// The aws CLI (kvstest passes AWS_CA_BUNDLE).
	dir := t.TempDir()
	_, err := srv.AWSCLI(t, dir, "", "kinesisvideo", "create-stream", "--stream-name", "cam",
		"--data-retention-in-hours", "24", "--media-type", "video/h264")
	require.NoError(t, err)
	out, err := srv.AWSCLI(t, dir, "", "kinesisvideo", "describe-stream", "--stream-name", "cam")
	require.NoError(t, err)
	require.Contains(t, out, `"Status": "ACTIVE"`)
	out, err = srv.AWSCLI(t, dir, "", "kinesisvideo", "get-data-endpoint", "--stream-name", "cam", "--api-name", "PUT_MEDIA")
	require.NoError(t, err)
	var ep struct{ DataEndpoint string }
	require.NoError(t, json.Unmarshal([]byte(out), &ep))
	require.Equal(t, srv.URL, ep.DataEndpoint)

	// PutMedia, full duplex: acknowledgements come back while the body is being sent.
	media := kvstest.TestPattern(t, 3, time.Now().Add(-time.Minute).Truncate(time.Second))
	_, frags := kvstest.Clusters(t, media)
	numbers := kvstest.Persisted(t, srv.PutMedia(t, "cam", bytes.NewReader(media)))
	require.Len(t, numbers, 3)

	// The Go SDK, as the README shows it: an HTTP client whose transport trusts the CA.
	cfg := srv.AWSConfig()
	cfg.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CA.Pool}}}
	kv := kinesisvideo.NewFromConfig(cfg, func(o *kinesisvideo.Options) { o.BaseEndpoint = aws.String(srv.URL) })
	gep, err := kv.GetDataEndpoint(ctx, &kinesisvideo.GetDataEndpointInput{StreamName: aws.String("cam"), APIName: kvtypes.APINameGetMedia})
	require.NoError(t, err)
	require.Equal(t, srv.URL, aws.ToString(gep.DataEndpoint))
	gm, err := srv.Media(t, "cam").GetMedia(ctx, &kinesisvideomedia.GetMediaInput{StreamName: aws.String("cam"),
		StartSelector: &mtypes.StartSelector{StartSelectorType: mtypes.StartSelectorTypeEarliest}})
	require.NoError(t, err)
	chunks := readChunks(t, gm.Payload, 3)
	require.NoError(t, gm.Payload.Close())
	require.Len(t, chunks, 3)
	for i, c := range chunks {
		require.Equal(t, frags[i], c.media, "fragment %d", i)
		require.Equal(t, numbers[i], c.awsTags["AWS_KINESISVIDEO_FRAGMENT_NUMBER"])
	}

	// kvsd put streams a clip over TLS; every fragment is PERSISTED and reads back intact.
	t.Setenv("AWS_CA_BUNDLE", srv.CA.File)
	path, data := kvstest.H264File(t, "2")
	out, code := kvstest.Put(t, srv.URL, "", nil, false, "--stream", "put", "--create", path, "--fast", "--fragment-duration", "400ms")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "put: 5 of 5 fragments persisted")
	_, src, err := mkv.ReadFrames(data, mkv.Limits{})
	require.NoError(t, err)
	frames, _ := srv.StoredMedia(t, "put")
	require.Len(t, frames, len(src))
	for i := range src {
		require.Equal(t, src[i].Data, frames[i].Data, "frame %d", i)
	}
	out, _ = kvstest.Doctor(t, srv.URL, "put")
	require.Contains(t, out, "Stream put (arn:aws:kinesisvideo:", "kvsd doctor trusts AWS_CA_BUNDLE")

	// /healthz and /metrics are https too; plain http is refused.
	for _, p := range []string{"/healthz", "/metrics"} {
		resp, err := cfg.HTTPClient.(*http.Client).Get(srv.URL + p)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, p)
	}
	resp, err := http.Get("http://" + srv.Addr.String() + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)

	// Without the CA.
	_, err = kinesisvideo.NewFromConfig(srv.AWSConfig(), func(o *kinesisvideo.Options) {
		o.BaseEndpoint, o.HTTPClient = aws.String(srv.URL), &http.Client{}
	}).ListStreams(ctx, &kinesisvideo.ListStreamsInput{})
	var unknown x509.UnknownAuthorityError
	require.True(t, errors.As(err, &unknown), "%v", err)
	t.Setenv("AWS_CA_BUNDLE", "")
	out, code = kvstest.Put(t, srv.URL, "", nil, false, "--stream", "put", path, "--fast")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "a CA this machine does not trust; name the CA certificate (PEM) in AWS_CA_BUNDLE")
	out, code = kvstest.Doctor(t, srv.URL, "put")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "a CA this machine does not trust")
	t.Setenv("AWS_CA_BUNDLE", filepath.Join(dir, "missing.pem"))
	out, code = kvstest.Put(t, srv.URL, "", nil, false, "--stream", "put", path, "--fast")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "kvsd put: AWS_CA_BUNDLE: open ")
}

// A renewed pair is served from the next handshake after the check (at most a second) without
// a restart.
func TestTLSServesARenewedCertificate(t *testing.T) {
	srv := kvstest.Start(t, kvstest.Options{TLS: true})
	served := func() (*x509.Certificate, error) {
		conn, err := tls.Dial("tcp", srv.Addr.String(), &tls.Config{RootCAs: srv.CA.Pool})
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0], nil
	}
	cert, err := served()
	require.NoError(t, err)
	require.Equal(t, "kvsd", cert.Subject.CommonName)

	renewed := srv.CA.Issue(t, srv.Config.TLSCert, srv.Config.TLSKey, "kvsd renewed")
	for deadline := time.Now().Add(10 * time.Second); ; {
		cert, err := served()
		require.NoError(t, err, "every handshake succeeds during the renewal")
		if cert.SerialNumber.Cmp(renewed.SerialNumber) == 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "still serving %q after 10 s", cert.Subject.CommonName)
	}
	_, err = srv.KinesisVideo().ListStreams(context.Background(), &kinesisvideo.ListStreamsInput{})
	require.NoError(t, err)
}

// The reloader looks at the files at most once a second, takes a changed pair that loads, and
// keeps the one it has (with one warning) while the files hold a pair that does not.
func TestTLSReloaderKeepsAWorkingPair(t *testing.T) {
	ca := kvstest.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first := ca.Issue(t, certFile, keyFile, "first")
	synctest.Test(t, func(t *testing.T) {
		var logs logtest.Buffer
		r, err := app.NewCertReloader(certFile, keyFile, slog.New(slog.NewTextHandler(&logs, nil)))
		require.NoError(t, err)
		served := func() *big.Int {
			c, err := r.GetCertificate(&tls.ClientHelloInfo{})
			require.NoError(t, err)
			return c.Leaf.SerialNumber
		}
		require.Equal(t, first.SerialNumber, served())

		second := ca.Issue(t, certFile, keyFile, "second")
		require.Equal(t, first.SerialNumber, served(), "not looked at again within a second")
		time.Sleep(time.Second) // fake time (synctest): the next look at the files is due
		require.Equal(t, second.SerialNumber, served())
		require.Contains(t, logs.String(), "TLS certificate reloaded")

		kvstest.ReplaceFile(t, certFile, []byte("not a certificate"))
		time.Sleep(time.Second) // fake time (synctest): the next look at the files is due
		require.Equal(t, second.SerialNumber, served(), "a broken pair keeps the working one")
		time.Sleep(time.Second) // fake time (synctest): the next look at the files is due
		require.Equal(t, second.SerialNumber, served())
		require.Equal(t, 1, strings.Count(logs.String(), "level=WARN"), "unchanged files are not read again: %s", logs.String())
		require.Contains(t, logs.String(), "still serving the previous certificate")

		third := ca.Issue(t, certFile, keyFile, "third")
		time.Sleep(time.Second) // fake time (synctest): the next look at the files is due
		require.Equal(t, third.SerialNumber, served())
	})
}

// A pair that does not load stops kvsd at start, naming the files.
func TestTLSBadPairFailsStart(t *testing.T) {
	ca := kvstest.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.Issue(t, certFile, keyFile, "kvsd")
	otherKey := filepath.Join(dir, "other-key.pem")
	ca.Issue(t, filepath.Join(dir, "other.pem"), otherKey, "other")
	env := map[string]string{"KVSD_ACCESS_KEY_ID": kvstest.AccessKeyID, "KVSD_SECRET_ACCESS_KEY": kvstest.SecretAccessKey}
	for _, tc := range []struct{ cert, key, want string }{
		{filepath.Join(dir, "missing.pem"), keyFile, "missing.pem: no such file"},
		{ca.File, keyFile, "private key does not match public key"},
		{certFile, otherKey, "private key does not match public key"},
	} {
		cfg := app.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Region: kvstest.Region, AccountID: app.DefaultAccountID,
			LogFormat: "text", TLSCert: tc.cert, TLSKey: tc.key}
		_, err := app.Start(cfg, app.Env{Getenv: func(k string) string { return env[k] }})
		require.ErrorContains(t, err, "TLS certificate "+tc.cert+" and key "+tc.key)
		require.ErrorContains(t, err, tc.want)
	}
}
