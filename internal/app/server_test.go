package app

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testServer starts a server on loopback with a fixed key pair and no output.
func testServer(t *testing.T, dataDir, listen string) (*Server, error) {
	t.Helper()
	env := map[string]string{"KVSD_ACCESS_KEY_ID": "AKIAKVSDTESTKEY00001", "KVSD_SECRET_ACCESS_KEY": "secret"}
	cfg := Config{Listen: listen, DataDir: dataDir, Region: "us-east-1", AccountID: DefaultAccountID, LogFormat: "text"}
	return Start(cfg, Env{Getenv: func(k string) string { return env[k] }})
}

func TestClosersCloseNewestFirstOnce(t *testing.T) {
	var c closers
	var order []int
	errTwo := errors.New("two")
	c.push(func() error { order = append(order, 1); return nil })
	c.push(func() error { order = append(order, 2); return errTwo })
	c.push(func() error { order = append(order, 3); return nil })
	require.ErrorIs(t, c.close(), errTwo)
	require.Equal(t, []int{3, 2, 1}, order)
	require.NoError(t, c.close(), "a second close has nothing left to close")
	require.Equal(t, []int{3, 2, 1}, order)
}

// TestFailedStartClosesWhatItOpened fails Start at the listener, after the catalog and the
// store are open: a second Start on the same data dir gets the catalog's file lock.
func TestFailedStartClosesWhatItOpened(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	dir := t.TempDir()
	_, err = testServer(t, dir, busy.Addr().String())
	require.ErrorContains(t, err, "listen on "+busy.Addr().String())

	s, err := testServer(t, dir, "127.0.0.1:0")
	require.NoError(t, err, "the failed start left the catalog locked")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, s.Shutdown(ctx))
}

// TestLoopErrorEndsTheServer: a background loop's error ends Wait, which shuts the server
// down and returns that error.
func TestLoopErrorEndsTheServer(t *testing.T) {
	s, err := testServer(t, t.TempDir(), "127.0.0.1:0")
	require.NoError(t, err)
	errBoom := errors.New("boom")
	s.goLoop(context.Background(), loop{"test", func(context.Context) error { return errBoom }})

	waited := make(chan error, 1)
	go func() { waited <- s.Wait(context.Background()) }()
	select {
	case err := <-waited:
		require.ErrorIs(t, err, errBoom)
		require.ErrorContains(t, err, "test: boom")
	case <-time.After(20 * time.Second):
		t.Fatal("a failed loop did not end the server")
	}
	require.False(t, s.ready.Load())
}
