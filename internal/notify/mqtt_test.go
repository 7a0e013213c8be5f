package notify_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session/state"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/logtest"
)

// The shared broker `make setup` starts.
const mqttAddr = "127.0.0.1:1883"

// subscribeMQTT collects what arrives on topic with QoS 1. With broker nil it subscribes at
// the shared broker, which must stay up. With a broker of the test's own it reconnects
// whenever that broker is stopped, once it runs again, and keeps its session there (clean
// start only the first time, an hour of expiry), so messages published meanwhile are queued
// for it.
func subscribeMQTT(t *testing.T, topic string, broker *mosquittoServer) *collector {
	t.Helper()
	c := &collector{}
	addr, persistent := mqttAddr, broker != nil
	if persistent {
		addr = broker.addr
	}
	// lost handles a failed dial, connect or subscribe: it says whether to try again.
	lost := func(err error) bool {
		if broker == nil {
			t.Errorf("MQTT subscriber at the shared broker: %v", err)
			return false
		}
		return true
	}
	sctx, cancel := context.WithCancel(ctx)
	done, ready := make(chan struct{}), make(chan struct{})
	clientID := "kvsd-test-" + randomSuffix()
	sess := state.NewInMemory()
	go func() {
		defer close(done)
		first := true
		for sctx.Err() == nil {
			if persistent {
				select { // redial once the broker runs (again)
				case <-broker.running():
				case <-sctx.Done():
					return
				}
			}
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				if sctx.Err() == nil && !lost(err) {
					return
				}
				continue
			}
			cli := paho.NewClient(paho.ClientConfig{ClientID: clientID, Conn: packets.NewThreadSafeConn(conn), Session: sess,
				OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
					p := pr.Packet
					if p.Properties == nil || p.Properties.ContentType != "application/json" {
						t.Errorf("MQTT message without content type application/json")
					}
					var id string
					if p.Properties != nil {
						id = p.Properties.User.Get("kvsd-event-id")
					}
					if err := c.add(id, p.Payload); err != nil {
						t.Error(err)
					}
					return true, nil
				}},
				OnClientError: func(error) {}, OnServerDisconnect: func(*paho.Disconnect) {}})
			cp := &paho.Connect{ClientID: clientID, KeepAlive: 5, CleanStart: first}
			if persistent {
				expiry := uint32(3600)
				cp.Properties = &paho.ConnectProperties{SessionExpiryInterval: &expiry}
			}
			if _, err := cli.Connect(sctx, cp); err != nil {
				if sctx.Err() == nil && !lost(err) {
					return
				}
				continue
			}
			if _, err := cli.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}}); err != nil {
				_ = cli.Disconnect(&paho.Disconnect{})
				if sctx.Err() == nil && !lost(err) {
					return
				}
				continue
			}
			if first {
				close(ready)
				first = false
			}
			select {
			case <-cli.Done():
				if !persistent && sctx.Err() == nil {
					t.Errorf("MQTT subscriber lost the shared broker")
					return
				}
			case <-sctx.Done():
				_ = cli.Disconnect(&paho.Disconnect{})
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-ready:
	case <-done:
		t.FailNow()
	case <-time.After(10 * time.Second):
		t.Fatalf("MQTT subscriber could not subscribe at %s", addr)
	}
	return c
}

// TestMQTTQoS1: events are published with QoS 1, JSON with the event id as a user property.
func TestMQTTQoS1(t *testing.T) {
	requireListening(t, mqttAddr, "mosquitto")
	topic := "kvsd/test/" + randomSuffix()
	c := subscribeMQTT(t, topic, nil)

	e := newEnv(t)
	st := e.createStream("cam-1", "mqtt://"+mqttAddr+"/"+topic, nil)
	n, _ := e.run(e.testConfig())
	f1 := e.appendFragment(n, st, notification("zone", "B")...)
	f2 := e.appendFragment(n, st, notification()...)
	got := c.waitCount(t, 2, 10*time.Second)
	requireFragments(t, got, f1, f2)
	require.Equal(t, map[string]any{"zone": "B"}, got[0].Body["NotificationPayload"])
	require.Eventually(t, func() bool { return n.Status(ctx, st).Delivered == 2 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, "mqtt", n.Status(ctx, st).Transport)
}

// mosquittoServer is a mosquitto process of the test's own that keeps sessions and queued
// messages across restarts (persistence), so a subscriber loses nothing to the restart itself.
type mosquittoServer struct {
	t    *testing.T
	conf string
	log  logtest.Buffer // mosquitto's stderr, written while it runs
	cmd  *exec.Cmd
	addr string

	mu sync.Mutex
	up chan struct{} // closed while the broker runs and listens; a fresh one once it is stopped
}

func startMosquitto(t *testing.T) *mosquittoServer {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	u, err := user.Current()
	require.NoError(t, err)
	s := &mosquittoServer{t: t, conf: filepath.Join(dir, "mosquitto.conf"), addr: "127.0.0.1:" + port, up: make(chan struct{})}
	conf := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\n"+
		"autosave_interval 1\nlog_dest stderr\nuser %s\n", port, dir, u.Username)
	require.NoError(t, os.WriteFile(s.conf, []byte(conf), 0o600))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", s.log.String())
		}
	})
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *mosquittoServer) start() {
	s.t.Helper()
	s.cmd = exec.Command("/usr/sbin/mosquitto", "-c", s.conf)
	s.cmd.Stderr = &s.log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start mosquitto (run `make setup` to install it): %v", err)
	}
	waitListening(s.t, s.addr)
	s.mu.Lock()
	close(s.up)
	s.mu.Unlock()
}

// running returns a channel that is closed while the broker runs. A client that lost the
// broker after a stop gets the channel of the next start.
func (s *mosquittoServer) running() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.up
}

// stop ends the broker with SIGTERM, which makes it save its sessions.
func (s *mosquittoServer) stop() {
	if s.cmd == nil {
		return
	}
	s.mu.Lock()
	s.up = make(chan struct{}) // before the broker goes, so whoever loses it waits for the next start
	s.mu.Unlock()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_ = s.cmd.Wait()
	s.cmd = nil
}

// TestMQTTOutage: the broker is stopped for a while; the events of the outage arrive after it
// is back, in order, none lost, duplicates (if any) with the same id.
func TestMQTTOutage(t *testing.T) {
	broker := startMosquitto(t)
	c := subscribeMQTT(t, "kvs/events", broker)

	e := newEnv(t)
	st := e.createStream("cam-1", "mqtt://"+broker.addr+"/kvs/events", nil)
	n, _ := e.run(e.testConfig())
	frags := []*fragmentT{e.appendFragment(n, st, notification()...)}
	c.waitCount(t, 1, 10*time.Second)

	broker.stop()
	for range 4 {
		frags = append(frags, e.appendFragment(n, st, notification()...))
	}
	require.Eventually(t, func() bool { return n.Status(ctx, st).Pending == 4 && n.Status(ctx, st).LastError != "" },
		10*time.Second, 10*time.Millisecond)
	waitRetries(t, n, st, 3) // retries during the outage

	broker.start()
	got := c.waitCount(t, 5, 20*time.Second)
	requireFragments(t, got, frags...)
	require.Eventually(t, func() bool { return n.Status(ctx, st).LastError == "" }, 5*time.Second, 10*time.Millisecond)
}
