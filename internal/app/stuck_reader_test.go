package app_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/app"
	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/mkv/mkvtest"
)

// TestStuckReaderIsDisconnected: a GetMedia client that stops reading (its window stays full)
// has its response ended after the write timeout, instead of holding the handler and the
// stream's reader slot forever.
func TestStuckReaderIsDisconnected(t *testing.T) {
	srv := kvstest.Start(t, kvstest.Options{Configure: func(c *app.Config) { c.WriteTimeout = time.Second }})
	srv.CreateStream(t, "cam", 1)
	// 16 fragments of 1 MiB: more than the socket buffers between the two ends hold.
	start := time.Now().Add(-time.Minute).UnixMilli()
	body := mkvtest.Wide.Header(1_000_000, mkv.TrackEntry{Track: mkv.Track{Number: 1, UID: 1, Type: 1, CodecID: "V_MPEG4/ISO/AVC"}})
	for i := range 16 {
		body = append(body, mkvtest.Wide.Cluster(uint64(start)+uint64(i)*1000, mkvtest.Block{Track: 1, Key: true, Data: bytes.Repeat([]byte{byte(i)}, 1<<20)})...)
	}
	require.Len(t, kvstest.Persisted(t, srv.PutMedia(t, "cam", bytes.NewReader(body))), 16)

	// A client with a small receive buffer that reads the response headers and then nothing.
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, err := d.Dial("tcp", srv.Addr.String())
	require.NoError(t, err)
	defer conn.Close()
	payload := []byte(`{"StreamName":"cam","StartSelector":{"StartSelectorType":"EARLIEST"}}`)
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/getMedia", bytes.NewReader(payload))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	sum := fmt.Sprintf("%x", sha256.Sum256(payload))
	require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: kvstest.AccessKeyID, SecretAccessKey: kvstest.SecretAccessKey},
		req, sum, "kinesisvideo", kvstest.Region, time.Now()))
	require.NoError(t, req.Write(conn))
	br := bufio.NewReaderSize(conn, 4096)
	resp, err := http.ReadResponse(br, req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// The server ends the response on its own: the handler returns and is counted.
	var metrics string
	require.Eventually(t, func() bool {
		r, err := http.Get(srv.URL + "/metrics")
		if err != nil {
			return false
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		metrics = string(b)
		return strings.Contains(metrics, `kvsd_api_requests_total{code="200",operation="getMedia"} 1`)
	}, 30*time.Second, 50*time.Millisecond, "the stuck GetMedia was not ended")
	n, _ := io.Copy(io.Discard, resp.Body) // what was in flight, then the end
	require.Less(t, n, int64(len(body)), "the response was cut short")
}
