package notify

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/kvsd/kvsd/internal/egress"
)

// MQTT user properties on every message (MQTT v5).
const (
	mqttPropEventID   = "kvsd-event-id"
	mqttPropEventType = "kvsd-event-type"
)

// mqttTopic publishes to one topic with QoS 1 over MQTT v5: the broker's PUBACK with a success
// reason code acknowledges the event.
//
// It uses paho's client, not autopaho: autopaho's reconnect loop would duplicate the
// notifier's own retry with backoff, and its module pulls in websocket and proxy dependencies
// kvsd does not otherwise need. The connection is opened on first use, kept while it works and
// reopened by the next send after it broke.
type mqttTopic struct {
	addr     string // host:port
	tlsHost  string // server name to verify; "" for plain mqtt://
	topic    string
	clientID string
	user     string
	password []byte
	dialer   *net.Dialer // checks each address against the egress policy

	mu  sync.Mutex
	cli *paho.Client // nil: not connected
}

func newMQTT(u *url.URL, policy egress.Policy) (*mqttTopic, error) {
	t := &mqttTopic{topic: strings.TrimPrefix(u.Path, "/"), dialer: policy.Dialer(0)}
	if t.topic == "" {
		return nil, errors.New("MQTT destination names no topic (mqtt://host:port/<topic>)")
	}
	port := u.Port()
	if strings.EqualFold(u.Scheme, "mqtts") {
		t.tlsHost = u.Hostname()
		if port == "" {
			port = "8883"
		}
	} else if port == "" {
		port = "1883"
	}
	t.addr = net.JoinHostPort(u.Hostname(), port)
	if u.User != nil {
		t.user = u.User.Username()
		if pw, ok := u.User.Password(); ok {
			t.password = []byte(pw)
		}
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	t.clientID = "kvsd-notify-" + hex.EncodeToString(id[:])
	return t, nil
}

// client returns the live connection, connecting when there is none.
func (t *mqttTopic) client(ctx context.Context) (*paho.Client, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cli != nil {
		select {
		case <-t.cli.Done(): // broken: reconnect below
			t.cli = nil
		default:
			return t.cli, nil
		}
	}
	conn, err := t.dialer.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, err
	}
	if t.tlsHost != "" {
		tc := tls.Client(conn, &tls.Config{ServerName: t.tlsHost, MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		conn = tc
	}
	c := paho.NewClient(paho.ClientConfig{
		ClientID: t.clientID,
		Conn:     packets.NewThreadSafeConn(conn), // sends of several streams write concurrently
		// paho calls both in goroutines of its own when the connection ends; Done() tells.
		OnClientError:      func(error) {},
		OnServerDisconnect: func(*paho.Disconnect) {},
	})
	cp := &paho.Connect{ClientID: t.clientID, KeepAlive: 30, CleanStart: true}
	if t.user != "" {
		cp.UsernameFlag, cp.Username = true, t.user
	}
	if t.password != nil {
		cp.PasswordFlag, cp.Password = true, t.password
	}
	if _, err := c.Connect(ctx, cp); err != nil { // closes conn on failure
		return nil, fmt.Errorf("connect to %s: %w", t.addr, err)
	}
	t.cli = c
	return c, nil
}

func (t *mqttTopic) send(ctx context.Context, ev *event) error {
	c, err := t.client(ctx)
	if err != nil {
		return fmt.Errorf("mqtt: %w", err)
	}
	_, err = c.Publish(ctx, &paho.Publish{
		QoS:     1,
		Topic:   t.topic,
		Payload: ev.Body,
		Properties: &paho.PublishProperties{
			ContentType: "application/json",
			User:        paho.UserProperties{{Key: mqttPropEventID, Value: ev.ID}, {Key: mqttPropEventType, Value: ev.Type}},
		},
	})
	if err != nil {
		if ctx.Err() != nil {
			// No PUBACK in time: the connection may be half dead; start afresh next time.
			t.drop(c)
		}
		return fmt.Errorf("mqtt: publish to %s: %w", t.topic, err)
	}
	return nil
}

// drop disconnects c if it is still the current connection.
func (t *mqttTopic) drop(c *paho.Client) {
	t.mu.Lock()
	if t.cli == c {
		t.cli = nil
	} else {
		c = nil
	}
	t.mu.Unlock()
	if c != nil {
		_ = c.Disconnect(&paho.Disconnect{ReasonCode: 0})
	}
}

func (t *mqttTopic) close() {
	t.mu.Lock()
	c := t.cli
	t.mu.Unlock()
	if c != nil {
		t.drop(c)
	}
}
