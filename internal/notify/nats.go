package notify

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kvsd/kvsd/internal/egress"
)

// jsRecheck is how long the answer to "does a JetStream stream capture the subject?" is kept.
const jsRecheck = 30 * time.Second

// natsSubject publishes to one subject. When a JetStream stream captures the subject, the
// publish waits for the stream's PubAck (the event is stored); otherwise it is a core publish
// acknowledged by a flush (the server has it and passed it to the subscribers there are).
type natsSubject struct {
	nc      *nats.Conn
	js      nats.JetStreamContext
	subject string
	now     func() time.Time

	mu        sync.Mutex
	jetStream bool      // the last lookup found a stream
	checked   time.Time // when; zero: look up before the next publish
}

func newNATS(u *url.URL, timeout time.Duration, policy egress.Policy, now func() time.Time) (*natsSubject, error) {
	subject := strings.TrimPrefix(u.Path, "/")
	if subject == "" {
		return nil, errors.New("NATS destination names no subject (nats://host:port/<subject>)")
	}
	server := url.URL{Scheme: "nats", User: u.User, Host: u.Host}
	nc, err := nats.Connect(server.String(),
		nats.Name("kvsd-notify"),
		nats.Timeout(timeout),
		// Every connection, to servers the first one announces as well, passes the policy.
		nats.SetCustomDialer(policy.Dialer(timeout)),
		// Once connected, the client reconnects by itself for as long as it lives...
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		// ...but must not buffer while disconnected: a buffered publish is not delivered, and
		// the notifier's retries keep order and durability better than a memory buffer.
		nats.ReconnectBufSize(-1),
	)
	if err != nil {
		return nil, err
	}
	js, err := nc.JetStream()
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &natsSubject{nc: nc, js: js, subject: subject, now: now}, nil
}

func (s *natsSubject) send(ctx context.Context, ev *event) error {
	if s.nc.IsClosed() {
		return fmt.Errorf("nats: %w", errBroken)
	}
	if !s.nc.IsConnected() {
		return errors.New("nats: not connected to the server (reconnecting)")
	}
	msg := &nats.Msg{Subject: s.subject, Data: ev.Body, Header: nats.Header{}}
	msg.Header.Set(nats.MsgIdHdr, ev.ID)
	msg.Header.Set(HeaderEventType, ev.Type)
	msg.Header.Set("Content-Type", "application/json")
	useJS, err := s.useJetStream(ctx)
	if err != nil {
		return err
	}
	if !useJS {
		if err := s.nc.PublishMsg(msg); err != nil {
			return err
		}
		return s.nc.FlushWithContext(ctx)
	}
	if _, err := s.js.PublishMsg(msg, nats.Context(ctx)); err != nil {
		if errors.Is(err, nats.ErrNoStreamResponse) {
			s.mu.Lock()
			s.checked = time.Time{} // the stream went away: look again next time
			s.mu.Unlock()
		}
		return err
	}
	return nil
}

// useJetStream says whether a JetStream stream captures the subject, asking the server at most
// every jsRecheck. Trying a JetStream publish first and falling back would be worse: to a core
// subscriber the publish looks like a request that nobody answers, so it would arrive twice.
func (s *natsSubject) useJetStream(ctx context.Context) (bool, error) {
	s.mu.Lock()
	if !s.checked.IsZero() && s.now().Sub(s.checked) < jsRecheck {
		defer s.mu.Unlock()
		return s.jetStream, nil
	}
	s.mu.Unlock()
	_, err := s.js.StreamNameBySubject(s.subject, nats.Context(ctx))
	var found bool
	switch {
	case err == nil:
		found = true
	case errors.Is(err, nats.ErrNoMatchingStream), errors.Is(err, nats.ErrJetStreamNotEnabled),
		errors.Is(err, nats.ErrJetStreamNotEnabledForAccount):
	default:
		return false, fmt.Errorf("nats: looking up the JetStream stream of %s: %w", s.subject, err)
	}
	s.mu.Lock()
	s.jetStream, s.checked = found, s.now()
	s.mu.Unlock()
	return found, nil
}

func (s *natsSubject) close() { s.nc.Close() }
