package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"
)

// sender is one transport's connection to one destination. send returns once the destination
// acknowledged the event (or failed); it is safe for concurrent use.
type sender interface {
	send(ctx context.Context, ev *event) error
	close()
}

// errBroken marks a send error after which the connection is useless and must be reopened.
var errBroken = errors.New("connection closed")

// destination is a pooled sender.
type destination struct {
	sender
	uri       string
	transport string
	lastUsed  time.Time // guarded by destinations.mu
}

// destinations keeps one long-lived connection per destination URI, so that events do not pay
// for a connection (and brokers do not see one per event), and closes those left idle.
type destinations struct {
	cfg *Config
	log *slog.Logger

	mu    sync.Mutex
	conns map[string]*destination
}

func newDestinations(cfg *Config, log *slog.Logger) *destinations {
	return &destinations{cfg: cfg, log: log, conns: map[string]*destination{}}
}

// get returns the connection to uri, opening it when there is none.
func (p *destinations) get(uri string) (*destination, error) {
	p.mu.Lock()
	if d := p.conns[uri]; d != nil {
		d.lastUsed = p.cfg.Now()
		p.mu.Unlock()
		return d, nil
	}
	p.mu.Unlock()
	// Opened outside the lock: a broker that does not answer must not stall other streams.
	s, transport, err := p.open(uri)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	if d := p.conns[uri]; d != nil { // another worker was faster
		p.mu.Unlock()
		s.close()
		return d, nil
	}
	d := &destination{sender: s, uri: uri, transport: transport, lastUsed: p.cfg.Now()}
	p.conns[uri] = d
	p.mu.Unlock()
	return d, nil
}

func (p *destinations) open(uri string) (sender, string, error) {
	if strings.HasPrefix(uri, "arn:") {
		s, err := newSNS(p.cfg, uri)
		return s, "sns", err
	}
	u, err := url.Parse(uri)
	if err != nil {
		return nil, "", fmt.Errorf("destination URI: %w", err)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		s, err := newWebhook(p.cfg, uri)
		return s, "webhook", err
	case "nats":
		s, err := newNATS(u, p.cfg.AttemptTimeout, p.cfg.Egress, p.cfg.Now)
		return s, "nats", err
	case "mqtt", "mqtts":
		s, err := newMQTT(u, p.cfg.Egress)
		return s, "mqtt", err
	}
	return nil, "", fmt.Errorf("unsupported destination scheme %q", u.Scheme)
}

// checkBroken drops d from the pool when err says its connection is gone for good.
func (p *destinations) checkBroken(d *destination, err error) {
	if !errors.Is(err, errBroken) {
		return
	}
	p.mu.Lock()
	if p.conns[d.uri] == d {
		delete(p.conns, d.uri)
	} else {
		d = nil
	}
	p.mu.Unlock()
	if d != nil {
		d.close()
	}
}

// closeIdle closes the connections unused for maxIdle (destinations no stream uses any more).
func (p *destinations) closeIdle(maxIdle time.Duration) {
	var idle []*destination
	p.mu.Lock()
	for uri, d := range p.conns {
		if p.cfg.Now().Sub(d.lastUsed) >= maxIdle {
			idle = append(idle, d)
			delete(p.conns, uri)
		}
	}
	p.mu.Unlock()
	for _, d := range idle {
		p.log.Debug("closing idle notification connection", "destination", redact(d.uri))
		d.close()
	}
}

func (p *destinations) closeAll() { p.closeIdle(-1) }

// transportOf names the transport of a destination URI (as in metrics and Status).
func transportOf(uri string) string {
	if strings.HasPrefix(uri, "arn:") {
		return "sns"
	}
	scheme, _, _ := strings.Cut(uri, ":")
	switch strings.ToLower(scheme) {
	case "http", "https":
		return "webhook"
	case "nats":
		return "nats"
	case "mqtt", "mqtts":
		return "mqtt"
	}
	return "unknown"
}

// redact masks the password of a URI (brokers take user:password@host) for logs and status.
func redact(uri string) string {
	if strings.HasPrefix(uri, "arn:") || !strings.Contains(uri, "@") {
		return uri
	}
	u, err := url.Parse(uri)
	if err != nil {
		return "(unparsable URI)"
	}
	return u.Redacted()
}

// CheckDestination checks, when a stream's NotificationConfiguration is set, what only the
// server can: that the host is not (and does not resolve to) an address kvsd refuses to connect
// to, and that a webhook's secret is configured. The shape of the URI is stream's business.
func (n *Notifier) CheckDestination(ctx context.Context, uri string) error {
	if strings.HasPrefix(uri, "arn:") {
		return nil // SNS: AWS or --sns-endpoint, whatever the topic
	}
	u, err := url.Parse(uri)
	if err != nil {
		return err
	}
	if transportOf(uri) == "webhook" {
		name, err := webhookSecretRef(u)
		if err != nil {
			return err
		}
		if name != "" && len(n.cfg.WebhookSecrets(name)) == 0 {
			return fmt.Errorf("the webhook secret %q is not configured: start kvsd serve with %s set", name, SecretEnv(name))
		}
	}
	return n.cfg.Egress.Check(ctx, u.Hostname())
}
