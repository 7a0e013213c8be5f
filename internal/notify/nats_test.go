package notify_test

import (
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// The shared broker `make setup` starts.
const natsAddr = "127.0.0.1:4222"

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func natsConnect(t *testing.T, addr string) (*nats.Conn, nats.JetStreamContext) {
	t.Helper()
	nc, err := nats.Connect("nats://"+addr, nats.Timeout(5*time.Second))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := nc.JetStream()
	require.NoError(t, err)
	return nc, js
}

// readStream returns every message the JetStream stream holds, as a receiver would see them.
func readStream(t *testing.T, js nats.JetStreamContext, name string) *collector {
	t.Helper()
	info, err := js.StreamInfo(name)
	require.NoError(t, err)
	c := &collector{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := js.GetMsg(name, seq)
		require.NoError(t, err)
		require.Equal(t, "application/json", m.Header.Get("Content-Type"))
		require.NoError(t, c.add(m.Header.Get(nats.MsgIdHdr), m.Data))
	}
	return c
}

func streamMsgs(js nats.JetStreamContext, name string) uint64 {
	info, err := js.StreamInfo(name)
	if err != nil {
		return 0
	}
	return info.State.Msgs
}

// TestNATSJetStream: a subject captured by a JetStream stream gets JetStream publishes whose
// PubAck is the acknowledgement, so a publish the stream refuses is a failure (retried), and
// Nats-Msg-Id carries the event id.
func TestNATSJetStream(t *testing.T) {
	requireListening(t, natsAddr, "nats-server with JetStream")
	_, js := natsConnect(t, natsAddr)
	suffix := randomSuffix()
	subject, name := "kvsd.test."+suffix, "KVSDTEST_"+suffix
	// One message at most, new ones refused: the second event fails until the limit goes.
	_, err := js.AddStream(&nats.StreamConfig{Name: name, Subjects: []string{subject}, Storage: nats.MemoryStorage,
		MaxMsgs: 1, Discard: nats.DiscardNew})
	require.NoError(t, err)
	t.Cleanup(func() { _ = js.DeleteStream(name) })

	e := newEnv(t)
	st := e.createStream("cam-1", "nats://"+natsAddr+"/"+subject, nil)
	n, _ := e.run(e.testConfig())
	f1 := e.appendFragment(n, st, notification("zone", "A")...)
	f2 := e.appendFragment(n, st, notification()...)
	require.Eventually(t, func() bool {
		return strings.Contains(n.Status(ctx, st).LastError, "maximum messages")
	}, 10*time.Second, 10*time.Millisecond, "the stream's refusal is seen: %s", n.Status(ctx, st).LastError)
	require.Equal(t, uint64(1), n.Status(ctx, st).Delivered)

	_, err = js.UpdateStream(&nats.StreamConfig{Name: name, Subjects: []string{subject}, Storage: nats.MemoryStorage, MaxMsgs: -1})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return streamMsgs(js, name) == 2 }, 10*time.Second, 10*time.Millisecond)
	got := readStream(t, js, name).distinct(t)
	requireFragments(t, got, f1, f2)
	require.Equal(t, map[string]any{"zone": "A"}, got[0].Body["NotificationPayload"])
	require.Equal(t, "nats", n.Status(ctx, st).Transport)
}

// TestNATSCore: a subject no stream captures gets core publishes, confirmed by a flush.
func TestNATSCore(t *testing.T) {
	requireListening(t, natsAddr, "nats-server")
	nc, _ := natsConnect(t, natsAddr)
	subject := "kvsd.core." + randomSuffix()
	sub, err := nc.SubscribeSync(subject)
	require.NoError(t, err)
	require.NoError(t, nc.Flush())

	e := newEnv(t)
	st := e.createStream("cam-1", "nats://"+natsAddr+"/"+subject, nil)
	n, _ := e.run(e.testConfig())
	f1 := e.appendFragment(n, st, notification()...)
	f2 := e.appendFragment(n, st, notification()...)
	c := &collector{}
	for range 2 {
		m, err := sub.NextMsg(10 * time.Second)
		require.NoError(t, err)
		require.NoError(t, c.add(m.Header.Get(nats.MsgIdHdr), m.Data))
		require.Equal(t, "PERSISTED", m.Header.Get("X-Kvsd-Event-Type"))
	}
	requireFragments(t, c.distinct(t), f1, f2)
}

// natsServer is a nats-server process of the test's own, which it can stop and start again on
// the same port and store directory.
type natsServer struct {
	t         *testing.T
	port, dir string
	cmd       *exec.Cmd
}

func startNATSServer(t *testing.T, port, dir string) *natsServer {
	t.Helper()
	s := &natsServer{t: t, port: port, dir: dir}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *natsServer) start() {
	s.t.Helper()
	s.cmd = exec.Command("/usr/sbin/nats-server", "-a", "127.0.0.1", "-p", s.port, "-js", "-sd", s.dir)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start nats-server (run `make setup` to install it): %v", err)
	}
	waitListening(s.t, "127.0.0.1:"+s.port)
}

func (s *natsServer) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_ = s.cmd.Wait()
	s.cmd = nil
}

// TestNATSOutage: the broker is stopped for a while; the events of the outage reach the
// JetStream stream after it is back, none lost, duplicates (if any) with the same id.
func TestNATSOutage(t *testing.T) {
	port, dir := freePort(t), t.TempDir()
	srv := startNATSServer(t, port, dir)
	addr := "127.0.0.1:" + port
	nc, js := natsConnect(t, addr)
	_, err := js.AddStream(&nats.StreamConfig{Name: "KVS", Subjects: []string{"kvs.events"}, Storage: nats.FileStorage})
	require.NoError(t, err)
	nc.Close()

	e := newEnv(t)
	st := e.createStream("cam-1", "nats://"+addr+"/kvs.events", nil)
	n, _ := e.run(e.testConfig())
	frags := []*fragmentT{e.appendFragment(n, st, notification()...)}
	require.Eventually(t, func() bool { return n.Status(ctx, st).Delivered == 1 }, 10*time.Second, 10*time.Millisecond)

	srv.stop()
	for range 4 {
		frags = append(frags, e.appendFragment(n, st, notification()...))
	}
	require.Eventually(t, func() bool { return n.Status(ctx, st).Pending == 4 && n.Status(ctx, st).LastError != "" },
		10*time.Second, 10*time.Millisecond)
	waitRetries(t, n, st, 3) // retries during the outage

	srv.start()
	require.Eventually(t, func() bool { return n.Status(ctx, st).Delivered == 5 }, 20*time.Second, 20*time.Millisecond,
		"after the broker is back: %+v", n.Status(ctx, st))
	_, js = natsConnect(t, addr)
	requireFragments(t, readStream(t, js, "KVS").distinct(t), frags...)
	require.Empty(t, n.Status(ctx, st).LastError)
}
