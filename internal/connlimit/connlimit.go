// Package connlimit bounds the TCP connections a server holds: per client address and in total.
// A connection over either bound is refused as soon as it is accepted, before the server reads
// a byte of it, so a client that opens connections and never finishes a request cannot starve
// the others (or the file descriptors) whatever the HTTP timeouts are.
package connlimit

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kvsd/kvsd/internal/metric"
)

// maxLingering bounds the refused connections being answered at once.
const maxLingering = 64

// Refusal reasons, the values of the metric's limit label.
const (
	PerClient = "per_client"
	Total     = "total"
)

// Config sets the bounds; zero means no bound.
type Config struct {
	PerClient int // connections open at once from one client IP address
	Total     int // connections open at once in all
	// Refusal, when set, is written to a refused connection before it is closed: the plain HTTP
	// answer that names the limit (no use under TLS, where it stays nil and the close is all).
	Refusal func(reason string) []byte
	// Linger bounds how long a refused connection is read from after the refusal, so the
	// client's request does not make the close a reset that loses the answer [500 ms].
	Linger     time.Duration
	Logger     *slog.Logger          // nil: discard
	Registerer prometheus.Registerer // nil: metrics are kept but not registered
}

// Listener is a net.Listener that enforces Config over a TCP listener.
type Listener struct {
	*net.TCPListener
	cfg Config
	log *slog.Logger

	refused *prometheus.CounterVec
	open    prometheus.Gauge

	mu        sync.Mutex
	total     int
	byClient  map[netip.Addr]int
	warned    map[string]time.Time // reason → when a refusal was last logged
	lingers   sync.WaitGroup       // refused connections still being answered
	lingering int                  // how many
	closed    bool
}

// New wraps ln, which must be a TCP listener.
func New(ln net.Listener, cfg Config) (*Listener, error) {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return nil, errors.New("connlimit: not a TCP listener")
	}
	if cfg.Linger <= 0 {
		cfg.Linger = 500 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Listener{TCPListener: tl, cfg: cfg, log: cfg.Logger, byClient: map[netip.Addr]int{}, warned: map[string]time.Time{},
		refused: metric.CounterVec("kvsd_http_connections_refused_total",
			"TCP connections refused at accept because a connection limit was reached, by limit (per_client, total).", "limit"),
		open: metric.Gauge("kvsd_http_connections", "TCP connections the server holds open."),
	}
	for _, r := range []string{PerClient, Total} {
		l.refused.WithLabelValues(r) // present at 0, so a dashboard sees the series before the first refusal
	}
	if err := metric.Register(cfg.Registerer, l.refused, l.open); err != nil {
		return nil, err
	}
	return l, nil
}

// Accept returns the next connection within the bounds; it refuses the others itself.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.AcceptTCP()
		if err != nil {
			return nil, err
		}
		ip := clientIP(c)
		if reason := l.admit(ip); reason != "" {
			l.refuse(c, ip, reason)
			continue
		}
		return &conn{TCPConn: c, release: sync.OnceFunc(func() { l.release(ip) })}, nil
	}
}

// Close stops accepting and waits for the refused connections being drained.
func (l *Listener) Close() error {
	err := l.TCPListener.Close()
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.lingers.Wait()
	return err
}

func clientIP(c *net.TCPConn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// admit counts the connection in, or says which bound it would break.
func (l *Listener) admit(ip netip.Addr) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.cfg.Total > 0 && l.total >= l.cfg.Total:
		return Total
	case l.cfg.PerClient > 0 && l.byClient[ip] >= l.cfg.PerClient:
		return PerClient
	}
	l.total++
	l.byClient[ip]++
	l.open.Inc()
	return ""
}

func (l *Listener) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.byClient[ip]--; l.byClient[ip] <= 0 {
		delete(l.byClient, ip)
	}
	l.open.Dec()
}

// refuse counts and logs (at most once a minute per limit) the refusal, writes the answer and
// closes c after draining what the client sent for up to Linger.
func (l *Listener) refuse(c *net.TCPConn, ip netip.Addr, reason string) {
	l.refused.WithLabelValues(reason).Inc()
	l.mu.Lock()
	now := time.Now()
	logIt := now.Sub(l.warned[reason]) >= time.Minute
	if logIt {
		l.warned[reason] = now
	}
	closed := l.closed
	// Past maxLingering refusals being answered, a flood gets a plain close: answering holds a
	// descriptor each, which the limits are there to bound.
	answer := !closed && l.cfg.Refusal != nil && l.lingering < maxLingering
	if answer {
		l.lingering++
		l.lingers.Add(1)
	}
	l.mu.Unlock()
	if logIt {
		l.log.Warn("refusing connections: connection limit reached (kvsd_http_connections_refused_total counts them; this is logged once a minute)",
			"limit", reason, "client", ip.String(), "max_conns_per_client", l.cfg.PerClient, "max_conns", l.cfg.Total)
	}
	if !answer {
		_ = c.SetLinger(0)
		_ = c.Close()
		return
	}
	// Owned by the listener: Close waits for it, and Linger bounds it.
	go func() {
		defer func() {
			c.Close()
			l.mu.Lock()
			l.lingering--
			l.mu.Unlock()
			l.lingers.Done()
		}()
		_ = c.SetDeadline(time.Now().Add(l.cfg.Linger))
		// The answer goes after the request's headers: written before, it would reach an HTTP
		// client that has not sent yet as an "unsolicited response" it drops.
		got := drain(c, []byte("\r\n\r\n"))
		if !got {
			return
		}
		if _, err := c.Write(l.cfg.Refusal(reason)); err != nil {
			return
		}
		// Half-close, then read what else comes (a body): closing with unread data would send
		// a reset, which can make the client lose the answer.
		_ = c.CloseWrite()
		drain(c, nil)
	}()
}

// drain reads c until it has seen until (nil: until EOF), an error or 64 KiB, and reports
// whether it saw until.
func drain(c net.Conn, until []byte) bool {
	var buf [4096]byte
	var tail []byte
	for n := 0; n < 64<<10; {
		k, err := c.Read(buf[:])
		if until != nil && k > 0 {
			tail = append(tail, buf[:k]...)
			if bytes.Contains(tail, until) {
				return true
			}
			tail = tail[max(0, len(tail)-len(until)):]
		}
		if err != nil {
			return false
		}
		n += k
	}
	return false
}

// conn gives its slot back once, when the server closes it. Embedding *net.TCPConn keeps
// ReadFrom (sendfile) and CloseWrite reachable for net/http.
type conn struct {
	*net.TCPConn
	release func()
}

func (c *conn) Close() error {
	c.release()
	return c.TCPConn.Close()
}
