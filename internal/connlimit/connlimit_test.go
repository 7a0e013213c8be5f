package connlimit_test

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/connlimit"
)

// TestRefusalsAndFlood: over the bound, a client that sends a request gets the refusal; a
// flood of clients that send nothing holds at most 64 descriptors in waiting answers, the
// others are closed at once; every refusal is counted; a closed connection gives its slot back.
func TestRefusalsAndFlood(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	ln, err := connlimit.New(tcp, connlimit.Config{PerClient: 1, Linger: 3 * time.Second, Registerer: reg,
		Refusal: func(reason string) []byte { return []byte("refused: " + reason) }})
	require.NoError(t, err)
	accepted := make(chan net.Conn, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	defer func() { ln.Close(); <-done }() // Close ends the waiting answers too

	held, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer held.Close()
	server := <-accepted

	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	_, err = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	got, err := io.ReadAll(c)
	require.NoError(t, err)
	require.Equal(t, "refused: per_client", string(got))
	c.Close()

	var flood []net.Conn
	closed := 0
	for range 100 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil { // reset before the dial returned: closed at once
			closed++
			continue
		}
		defer c.Close()
		flood = append(flood, c)
	}
	require.Eventually(t, func() bool { return refused(t, reg) == 101 }, 10*time.Second, 10*time.Millisecond)
	// In parallel: a read past its deadline fails at once, whatever the connection's state.
	deadline := time.Now().Add(time.Second) // well before the answers' Linger ends
	timedOut := make(chan bool, len(flood))
	for _, c := range flood {
		go func() {
			_ = c.SetReadDeadline(deadline)
			_, err := c.Read(make([]byte, 1))
			var ne net.Error
			timedOut <- errors.As(err, &ne) && ne.Timeout()
		}()
	}
	for range flood {
		if !<-timedOut {
			closed++
		}
	}
	require.Equal(t, 100-64, closed, "past 64 waiting answers, refused connections are closed at once")

	server.Close() // the slot comes back
	var again net.Conn
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return false
		}
		select {
		case again = <-accepted:
			return true
		case <-time.After(100 * time.Millisecond):
			c.Close()
			return false
		}
	}, 10*time.Second, 10*time.Millisecond)
	again.Close()
}

// refused reads kvsd_http_connections_refused_total{limit="per_client"} as /metrics shows it.
func refused(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "kvsd_http_connections_refused_total" {
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == connlimit.PerClient {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatal("no kvsd_http_connections_refused_total{limit=per_client}")
	return 0
}
