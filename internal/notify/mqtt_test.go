package notify_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
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

// subscribeMQTT collects what arrives on topic with QoS 1, reconnecting whenever the broker
// goes away. A persistent subscriber keeps its session on the broker (clean start only the first
// time, an hour of expiry), so messages published while it reconnects are queued for it.
func subscribeMQTT(t *testing.T, addr, topic string, persistent bool) *collector {
	t.Helper()
	c := &collector{}
	sctx, cancel := context.WithCancel(ctx)
	done, ready := make(chan struct{}), make(chan struct{})
	clientID := "kvsd-test-" + randomSuffix()
	sess := state.NewInMemory()
	go func() {
		defer close(done)
		first := true
		for sctx.Err() == nil {
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				// The broker is down and nothing announces its return: redial at a pace.
				time.Sleep(50 * time.Millisecond)
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
				// As above: a broker that refuses now may accept soon; nothing tells when.
				time.Sleep(50 * time.Millisecond)
				continue
			}
			if _, err := cli.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}}); err != nil {
				_ = cli.Disconnect(&paho.Disconnect{})
				continue
			}
			if first {
				close(ready)
				first = false
			}
			select {
			case <-cli.Done():
			case <-sctx.Done():
				_ = cli.Disconnect(&paho.Disconnect{})
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatalf("MQTT subscriber could not subscribe at %s", addr)
	}
	return c
}

// TestMQTTQoS1: events are published with QoS 1, JSON with the event id as a user property.
func TestMQTTQoS1(t *testing.T) {
	requireListening(t, mqttAddr, "mosquitto")
	topic := "kvsd/test/" + randomSuffix()
	c := subscribeMQTT(t, mqttAddr, topic, false)

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
}

func startMosquitto(t *testing.T) *mosquittoServer {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	u, err := user.Current()
	require.NoError(t, err)
	s := &mosquittoServer{t: t, conf: filepath.Join(dir, "mosquitto.conf"), addr: "127.0.0.1:" + port}
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
}

// stop ends the broker with SIGTERM, which makes it save its sessions.
func (s *mosquittoServer) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_ = s.cmd.Wait()
	s.cmd = nil
}

// TestMQTTOutage: the broker is stopped for a while; the events of the outage arrive after it
// is back, in order, none lost, duplicates (if any) with the same id.
func TestMQTTOutage(t *testing.T) {
	broker := startMosquitto(t)
	c := subscribeMQTT(t, broker.addr, "kvs/events", true)

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
