package app_test

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/kvstest"
)

// The front door as deploy/haproxy.cfg configures it, in front of real kvsd processes. A node
// that hangs (SIGSTOP: its sockets stay open, so only the health checks can tell) is taken out
// and the connections it held are cut within seconds, so that a producer reconnects through the
// front door to a live node at once instead of waiting on the hung one for the hour of HAProxy's
// timeouts; new connections are answered by the live node meanwhile.
func TestFrontDoorCutsAHungNode(t *testing.T) {
	bin := buildKVSD(t)
	a := startProcess(t, bin, t.TempDir(), nil, nil)
	u, err := url.Parse(a.url)
	require.NoError(t, err)
	bAddr := kvstest.FreeAddr(t)
	fd := kvstest.StartFrontDoor(t, u.Host, bAddr)

	// b is not running yet: a connection through the front door goes to a (one that b refuses
	// is dispatched again), and stays there.
	conn, err := net.Dial("tcp", fd.Addr)
	require.NoError(t, err)
	defer conn.Close()
	r := bufio.NewReader(conn)
	get := func() error {
		if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: kvsd\r\n\r\n")); err != nil {
			return err
		}
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return errors.New(resp.Status)
		}
		return nil
	}
	require.NoError(t, get())

	b := startProcess(t, bin, t.TempDir(), []string{"--listen", bAddr}, nil)
	// b is in once it passed its checks; until then connections may still reach a.
	require.Eventually(t, func() bool { return get() == nil && b.cmd.Process != nil }, 10*time.Second, 50*time.Millisecond)

	require.NoError(t, a.cmd.Process.Signal(syscall.SIGSTOP))
	defer func() { _ = a.cmd.Process.Signal(syscall.SIGCONT) }()
	hung := time.Now()
	// The held connection ends (EOF or reset), well before a deadline that would mean HAProxy
	// kept it open.
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(20*time.Second)))
	_, err = r.ReadByte()
	require.Error(t, err)
	require.False(t, errors.Is(err, os.ErrDeadlineExceeded), "the front door kept the hung node's connection open\n%s", fd.Log())
	t.Logf("the hung node's connection was cut %v after SIGSTOP", time.Since(hung).Round(10*time.Millisecond))

	// New connections are answered, by b.
	require.Eventually(t, func() bool {
		status, err := fd.Healthz()
		return err == nil && status == 200
	}, 10*time.Second, 50*time.Millisecond, "\n%s", fd.Log())
	for range 10 {
		status, err := fd.Healthz()
		require.NoError(t, err)
		require.Equal(t, 200, status)
	}
}
