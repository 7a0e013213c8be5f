package notify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/catalog/bolt"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/fragstore/disk"
	"github.com/kvsd/kvsd/internal/logtest"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/notify"
	"github.com/kvsd/kvsd/internal/stream"
)

var ctx = context.Background()

const (
	region  = "us-east-1"
	account = "111122223333"
)

// env is a data dir wired as kvsd wires it: the bolt catalog (streams, fragment index, state)
// and the disk media, behind a fragstore.Store and the control-plane Service.
type env struct {
	t     *testing.T
	db    *bolt.DB
	store *fragstore.Store
	svc   *stream.Service
	logs  *logtest.Buffer
	base  time.Time // fragment times start here: recent, so Diagnose sees them
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "catalog.db"))
	require.NoError(t, err)
	media, err := disk.Open(disk.Config{Dir: filepath.Join(dir, "media")})
	require.NoError(t, err)
	store, err := fragstore.Open(fragstore.Config{Media: media, Index: db})
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, store.Close())
		require.NoError(t, db.Close())
	})
	return &env{t: t, db: db, store: store, logs: &logtest.Buffer{}, base: time.Now().Add(-2 * time.Minute).Truncate(time.Millisecond),
		svc: &stream.Service{Store: db, Region: region, AccountID: account}}
}

// createStream makes a stream with retention and, when uri is set, an ENABLED notification
// configuration pointing at it.
func (e *env) createStream(name, uri string, tags map[string]string) *stream.Stream {
	e.t.Helper()
	retention := 24
	_, err := e.svc.Create(ctx, stream.CreateInput{Name: name, RetentionHours: &retention, Tags: tags})
	require.NoError(e.t, err)
	if uri != "" {
		e.setNotification(name, "ENABLED", uri)
	}
	return e.stream(name)
}

func (e *env) setNotification(name, status, uri string) {
	e.t.Helper()
	require.NoError(e.t, e.svc.SetNotification(ctx, stream.Ref{Name: name}, &stream.NotificationConfiguration{
		Status: status, DestinationConfig: &stream.NotificationDestinationConfig{Uri: uri}}))
}

func (e *env) stream(name string) *stream.Stream {
	e.t.Helper()
	st, err := e.db.GetStream(ctx, name)
	require.NoError(e.t, err)
	return st
}

// appendFragment stores the next fragment of st (as ingest does) and wakes n, if given.
func (e *env) appendFragment(n *notify.Notifier, st *stream.Stream, tags ...mkv.SimpleTag) *fragment.Fragment {
	e.t.Helper()
	k := fragstore.KeyOf(st)
	last, err := e.store.LastSeq(ctx, k)
	require.NoError(e.t, err)
	seq := last + 1
	start := e.base.Add(time.Duration(seq) * time.Second)
	f := &fragment.Fragment{Seq: seq, Number: fragment.FormatNumber(k.CreatedMs, seq), Timecode: seq * 1000,
		ProducerTime: start, ServerTime: start.Add(250 * time.Millisecond), Duration: time.Second,
		HeaderID: "h1", Tags: tags}
	require.NoError(e.t, e.store.Append(ctx, k, []byte("header"), f, []byte("cluster bytes")))
	if n != nil {
		n.Wake(k, seq)
	}
	return f
}

// notification is the producer SDK's notification tag plus custom pairs.
func notification(pairs ...string) []mkv.SimpleTag {
	tags := []mkv.SimpleTag{{Name: fragment.TagNotification}}
	for i := 0; i+1 < len(pairs); i += 2 {
		tags = append(tags, mkv.SimpleTag{Name: pairs[i], Value: pairs[i+1]})
	}
	return tags
}

// testConfig is a Config with short timings, so that outages and retries fit in a test.
func (e *env) testConfig() notify.Config {
	return notify.Config{Streams: e.db, Fragments: e.store, State: e.db,
		Logger:     slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 300 * time.Millisecond, AttemptTimeout: 3 * time.Second}
}

// run starts a Notifier; stop ends it and waits for Run to return (registered as cleanup too).
func (e *env) run(cfg notify.Config) (n *notify.Notifier, stop func()) {
	e.t.Helper()
	n, err := notify.New(cfg)
	require.NoError(e.t, err)
	c, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- n.Run(c) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				require.NoError(e.t, err)
			case <-time.After(15 * time.Second):
				e.t.Errorf("Notifier.Run did not return within 15 s of cancellation")
			}
		})
	}
	e.t.Cleanup(stop)
	return n, stop
}

// waitRetries waits until delivery to st has failed `times` more times: each failed attempt
// records its time in Status.
func waitRetries(t *testing.T, n *notify.Notifier, st *stream.Stream, times int) {
	t.Helper()
	last := n.Status(ctx, st).LastErrorTime
	for range times {
		require.Eventually(t, func() bool {
			at := n.Status(ctx, st).LastErrorTime
			if at.After(last) {
				last = at
				return true
			}
			return false
		}, 10*time.Second, time.Millisecond, "another failed attempt")
	}
}

// received is one message as a receiver got it.
type received struct {
	ID   string         // the event id from the transport's header or property
	Body map[string]any // the JSON message
}

func (r received) str(field string) string { s, _ := r.Body[field].(string); return s }

// collector keeps what a receiver got, in arrival order.
type collector struct {
	mu   sync.Mutex
	msgs []received
}

func (c *collector) add(id string, body []byte) error {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return fmt.Errorf("message is not JSON: %v: %q", err, body)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, received{ID: id, Body: m})
	return nil
}

func (c *collector) all() []received {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]received(nil), c.msgs...)
}

// distinct returns the messages with duplicates (same event id) removed, in order of first
// arrival, after checking that every duplicate is identical and carries the same id in the
// header and the body.
func (c *collector) distinct(t *testing.T) []received {
	t.Helper()
	seen := map[string]received{}
	var out []received
	for _, m := range c.all() {
		require.Equal(t, m.ID, m.str("EventId"), "transport header and body carry the same event id")
		if prev, ok := seen[m.ID]; ok {
			require.Equal(t, prev.Body, m.Body, "a duplicate is the same message")
			continue
		}
		seen[m.ID] = m
		out = append(out, m)
	}
	return out
}

// waitCount waits until the collector holds n distinct events.
func (c *collector) waitCount(t *testing.T, n int, within time.Duration) []received {
	t.Helper()
	require.Eventually(t, func() bool { return len(c.distinct(t)) >= n }, within, 10*time.Millisecond,
		"want %d distinct events", n)
	got := c.distinct(t)
	require.Len(t, got, n, "no more events than expected")
	return got
}

// requireFragments checks that the PERSISTED events are exactly those of frags, in order.
func requireFragments(t *testing.T, got []received, frags ...*fragment.Fragment) {
	t.Helper()
	var numbers, want []string
	for _, m := range got {
		if m.str("NotificationType") == notify.TypePersisted {
			numbers = append(numbers, m.str("FragmentNumber"))
		}
	}
	for _, f := range frags {
		want = append(want, f.Number)
	}
	require.Equal(t, want, numbers)
}

// webhookReceiver is an HTTP endpoint that checks the signature of each POST and can be made
// to fail (answer 503) or go away entirely (closed listener).
type webhookReceiver struct {
	collector
	t      *testing.T
	secret []byte
	addr   string

	mu       sync.Mutex
	srv      *httptest.Server
	failing  bool
	attempts int
}

func newWebhookReceiver(t *testing.T, secret []byte) *webhookReceiver {
	w := &webhookReceiver{t: t, secret: secret}
	w.start("127.0.0.1:0")
	t.Cleanup(w.stop)
	return w
}

func (w *webhookReceiver) url() string { return "http://" + w.addr + "/kvs-events" }

func (w *webhookReceiver) start(addr string) {
	var ln net.Listener
	var err error
	// The port may take a moment to become free again after stop.
	require.Eventually(w.t, func() bool { ln, err = net.Listen("tcp", addr); return err == nil }, 5*time.Second, 20*time.Millisecond)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(w.serve))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	w.mu.Lock()
	w.srv, w.addr = srv, ln.Addr().String()
	w.mu.Unlock()
}

func (w *webhookReceiver) stop() {
	w.mu.Lock()
	srv := w.srv
	w.srv = nil
	w.mu.Unlock()
	if srv != nil {
		srv.CloseClientConnections()
		srv.Close()
	}
}

func (w *webhookReceiver) setFailing(f bool) {
	w.mu.Lock()
	w.failing = f
	w.mu.Unlock()
}

func (w *webhookReceiver) serve(rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(rw, err.Error(), 400)
		return
	}
	w.mu.Lock()
	w.attempts++
	failing := w.failing
	w.mu.Unlock()
	if failing {
		http.Error(rw, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	switch {
	case r.Method != http.MethodPost || r.URL.Path != "/kvs-events":
		w.t.Errorf("webhook got %s %s", r.Method, r.URL.Path)
	case r.Header.Get("Content-Type") != "application/json":
		w.t.Errorf("webhook Content-Type %q", r.Header.Get("Content-Type"))
	case len(w.secret) > 0 && notify.Verify(w.secret, r.Header, body, time.Now(), time.Minute) != nil:
		w.t.Errorf("webhook signature %q: %v", r.Header.Get(notify.HeaderSignature), notify.Verify(w.secret, r.Header, body, time.Now(), time.Minute))
		http.Error(rw, "bad signature", http.StatusUnauthorized)
		return
	case len(w.secret) == 0 && r.Header.Get(notify.HeaderSignature) != "":
		w.t.Errorf("webhook signed without a secret")
	}
	if err := w.add(r.Header.Get(notify.HeaderEventID), body); err != nil {
		w.t.Error(err)
	}
	if typ := r.Header.Get(notify.HeaderEventType); typ == "" {
		w.t.Errorf("webhook without %s", notify.HeaderEventType)
	}
	rw.WriteHeader(http.StatusNoContent)
}

// freePort returns a loopback port nothing listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// requireListening fails the test with set-up advice when nothing answers at addr.
func requireListening(t *testing.T, addr, what string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("%s is not reachable on %s (%v): run `make setup`, which starts it", what, addr, err)
	}
	c.Close()
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 15*time.Second, 50*time.Millisecond, "nothing listens on %s", addr)
}

// metric returns the value of a counter or gauge series of reg (labels as name=value pairs).
func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

type fragmentT = fragment.Fragment

func contextWithCancel() (context.Context, context.CancelFunc) { return context.WithCancel(ctx) }

func readAll(t *testing.T, r *http.Request) []byte {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Error(err)
	}
	return b
}

// startHTTP serves h on loopback until the test ends and returns its base URL.
func startHTTP(t *testing.T, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
