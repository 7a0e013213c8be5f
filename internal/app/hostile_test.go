package app_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/app"
	"github.com/kvsd/kvsd/internal/kvstest"
)

// TestHalfSentRequestsDoNotStallTheServer: 300 clients that stop in the middle of a request
// (half the headers, or the headers and half a JSON body) leave /healthz and the API answering
// at once, and each of them is closed by the server within the read timeout (here 2 s; a minute
// is the bound the test allows).
func TestHalfSentRequestsDoNotStallTheServer(t *testing.T) {
	srv := kvstest.Start(t, kvstest.Options{Configure: func(c *app.Config) {
		c.ReadTimeout = 2 * time.Second
		c.MaxConnsPerClient, c.MaxConns = 400, 1000
	}})
	addr := srv.Addr.String()
	partial := []string{
		"POST /describeStream HTTP/1.1\r\nHost: kvsd\r\nContent-Type: application/x-amz-json-1.1\r\n",
		"POST /describeStream HTTP/1.1\r\nHost: kvsd\r\nContent-Length: 200\r\n\r\n{\"StreamName\":",
		"GET /healthz HTTP/1.1\r\nHo",
	}
	conns := make([]net.Conn, 300)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		_, err = io.WriteString(c, partial[i%len(partial)])
		require.NoError(t, err)
		conns[i] = c
	}
	start := time.Now()

	hc := &http.Client{Timeout: time.Second}
	resp, err := hc.Get(srv.URL + "/healthz")
	require.NoError(t, err, "/healthz beside 300 half-sent requests")
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = srv.KinesisVideo().ListStreams(ctx, &kinesisvideo.ListStreamsInput{})
	require.NoError(t, err, "a signed API call beside 300 half-sent requests")

	deadline := start.Add(time.Minute)
	for i, c := range conns {
		require.NoError(t, c.SetReadDeadline(deadline))
		_, err := io.Copy(io.Discard, c) // returns when the server closes the connection
		var ne net.Error
		require.False(t, errors.As(err, &ne) && ne.Timeout(), "connection %d (%q) still open after a minute", i, partial[i%len(partial)])
	}
	t.Logf("all 300 closed %s after they were opened", time.Since(start).Round(time.Millisecond))
}

// TestConnectionLimits: a client over --max-conns-per-client, or any client over --max-conns,
// is refused at once with KVS's ConnectionLimitExceededException (what the AWS SDK reports),
// the refusals are counted in /metrics, and the slots come back when connections close.
func TestConnectionLimits(t *testing.T) {
	for _, tc := range []struct {
		limit, flag string
		set         func(*app.Config)
	}{
		{"per_client", "--max-conns-per-client", func(c *app.Config) { c.MaxConnsPerClient = 3 }},
		{"total", "--max-conns", func(c *app.Config) { c.MaxConns = 3 }},
	} {
		t.Run(tc.limit, func(t *testing.T) {
			srv := kvstest.Start(t, kvstest.Options{Configure: tc.set})
			addr := srv.Addr.String()
			var held []net.Conn
			for range 3 { // each one answered, so the server has counted it
				c, err := net.Dial("tcp", addr)
				require.NoError(t, err)
				defer c.Close()
				requireHealthz(t, c)
				held = append(held, c)
			}

			c, err := net.Dial("tcp", addr)
			require.NoError(t, err)
			defer c.Close()
			_, err = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: kvsd\r\n\r\n")
			require.NoError(t, err)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			require.Equal(t, http.StatusBadRequest, resp.StatusCode)
			require.Equal(t, "ConnectionLimitExceededException", resp.Header.Get("x-amzn-ErrorType"))
			require.Contains(t, string(body), tc.flag)

			_, err = srv.KinesisVideo().ListStreams(context.Background(), &kinesisvideo.ListStreamsInput{})
			var ae smithy.APIError
			require.ErrorAs(t, err, &ae, "the SDK sees the refusal as an API error")
			require.Equal(t, "ConnectionLimitExceededException", ae.ErrorCode())

			for _, c := range held {
				c.Close()
			}
			// The server notices the closes on its own time: wait for a slot to come back.
			var metrics string
			require.Eventually(t, func() bool {
				resp, err := http.Get(srv.URL + "/metrics")
				if err != nil {
					return false
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				metrics = string(b)
				return resp.StatusCode == http.StatusOK
			}, 10*time.Second, 20*time.Millisecond)
			m := regexp.MustCompile(fmt.Sprintf(`kvsd_http_connections_refused_total\{limit=%q\} (\d+)`, tc.limit)).FindStringSubmatch(metrics)
			require.NotNil(t, m, metrics)
			n, _ := strconv.Atoi(m[1])
			require.GreaterOrEqual(t, n, 2, "the raw client's and the SDK's connections (the SDK may try twice)")
		})
	}
}

// TestLargeRequestHeadersAreRefused: headers past app.MaxHeaderBytes get 431, and the server
// goes on.
func TestLargeRequestHeadersAreRefused(t *testing.T) {
	srv := kvstest.Start(t)
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/healthz", nil)
	require.NoError(t, err)
	req.Header.Set("X-Padding", strings.Repeat("a", app.MaxHeaderBytes+8192))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
	requireHealthz(t, nil, srv.URL)
}

// requireHealthz sends GET /healthz on c (kept alive), or to url when c is nil, and wants 200.
func requireHealthz(t *testing.T, c net.Conn, url ...string) {
	t.Helper()
	if c == nil {
		resp, err := http.Get(url[0] + "/healthz")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		return
	}
	_, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: kvsd\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}
