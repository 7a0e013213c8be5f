package notify_test

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/egress"
	"github.com/kvsd/kvsd/internal/egress/egresstest"
	"github.com/kvsd/kvsd/internal/notify"
	"github.com/kvsd/kvsd/internal/stream"
)

// TestWebhookSecretPerDestination: a webhook URI names its secret (#secret=<name>); kvsd signs
// that destination's events with it (not with the global --webhook-secret), over the timestamp
// and the body, and never sends the fragment. A secret that is not configured is refused when
// set, and a delivery never goes out unsigned.
func TestWebhookSecretPerDestination(t *testing.T) {
	e := newEnv(t)
	secrets := map[string][]byte{"cam_hooks": []byte("per-destination secret")}
	w := newWebhookReceiver(t, secrets["cam_hooks"]) // it verifies each request (notify.Verify)
	cfg := e.testConfig()
	cfg.WebhookSecret = []byte("global secret")
	cfg.WebhookSecrets = func(name string) []byte { return secrets[name] }
	n, _ := e.run(cfg)
	e.svc.Destinations = n

	st := e.createStream("cam-1", w.url()+"#secret=cam_hooks", nil)
	f := e.appendFragment(n, st, notification()...)
	got := w.waitCount(t, 1, 10*time.Second)
	requireFragments(t, got, f)

	err := e.svc.SetNotification(ctx, stream.Ref{Name: "cam-1"}, &stream.NotificationConfiguration{Status: "ENABLED",
		DestinationConfig: &stream.NotificationDestinationConfig{Uri: w.url() + "#secret=other"}})
	require.ErrorIs(t, err, stream.ErrInvalidArgument)
	require.ErrorContains(t, err, "KVSD_WEBHOOK_SECRET_OTHER")
	err = e.svc.SetNotification(ctx, stream.Ref{Name: "cam-1"}, &stream.NotificationConfiguration{Status: "ENABLED",
		DestinationConfig: &stream.NotificationDestinationConfig{Uri: w.url() + "#token"}})
	require.ErrorIs(t, err, stream.ErrInvalidArgument)

	// Configured when set, gone at delivery (a restart without the variable): no unsigned POST.
	e.svc.Destinations = nil
	e.setNotification("cam-1", "ENABLED", w.url()+"#secret=gone")
	e.appendFragment(n, st, notification()...)
	require.Eventually(t, func() bool { return strings.Contains(n.Status(ctx, st).LastError, "KVSD_WEBHOOK_SECRET_GONE") },
		10*time.Second, 10*time.Millisecond, n.Status(ctx, st).LastError)
	require.Len(t, w.distinct(t), 1)
}

// TestVerifyRefusesReplays: the receiver's check accepts a fresh signed request and refuses a
// changed body, a changed timestamp and the same request replayed later.
func TestVerifyRefusesReplays(t *testing.T) {
	secret, body := []byte("s"), []byte(`{"EventId":"1"}`)
	now := time.Unix(1_800_000_000, 0)
	h := http.Header{}
	h.Set(notify.HeaderTimestamp, "1800000000")
	h.Set(notify.HeaderSignature, notify.Sign(secret, "1800000000", body))
	require.NoError(t, notify.Verify(secret, h, body, now.Add(30*time.Second), 5*time.Minute))
	require.Error(t, notify.Verify(secret, h, []byte(`{"EventId":"2"}`), now, 5*time.Minute))
	require.ErrorContains(t, notify.Verify(secret, h, body, now.Add(10*time.Minute), 5*time.Minute), "too old")
	h.Set(notify.HeaderTimestamp, "1800000600")
	require.Error(t, notify.Verify(secret, h, body, now.Add(10*time.Minute), 5*time.Minute), "a new timestamp needs a new signature")
}

// TestForbiddenDestinations: link-local and metadata addresses are refused when set, by
// address or by a name resolving to one, for every transport; loopback only with DenyPrivate.
// A name that resolves to such an address only later (set past the check) is refused when
// connecting, and the stream's status says why.
func TestForbiddenDestinations(t *testing.T) {
	dns := egresstest.StartDNS(t, map[string]string{"metadata.test": "169.254.169.254", "hook.test": "127.0.0.1"})
	e := newEnv(t)
	w := newWebhookReceiver(t, nil)
	_, port, _ := net.SplitHostPort(w.addr)
	cfg := e.testConfig()
	cfg.Egress = egress.Policy{Resolver: dns.Resolver()}
	n, _ := e.run(cfg)
	e.svc.Destinations = n
	st := e.createStream("cam-1", "http://hook.test:"+port+"/kvs-events", nil)

	for _, uri := range []string{"http://169.254.169.254/latest/meta-data", "http://metadata.test/x", "https://[fe80::1]/x",
		"http://[fd00:ec2::254]/x", "nats://metadata.test:4222/kvs.events", "mqtt://169.254.169.254:1883/kvs/events",
		"http://[::ffff:169.254.169.254]/x"} {
		err := e.svc.SetNotification(ctx, stream.Ref{Name: "cam-1"}, &stream.NotificationConfiguration{Status: "ENABLED",
			DestinationConfig: &stream.NotificationDestinationConfig{Uri: uri}})
		require.ErrorIs(t, err, stream.ErrInvalidArgument, uri)
		require.ErrorContains(t, err, "never connects to for a destination", uri)
	}

	f := e.appendFragment(n, st, notification()...)
	requireFragments(t, w.waitCount(t, 1, 10*time.Second), f)

	strict := e.testConfig()
	strict.Egress = egress.Policy{DenyPrivate: true, Resolver: dns.Resolver()}
	ns, err := notify.New(strict)
	require.NoError(t, err)
	require.ErrorContains(t, ns.CheckDestination(ctx, "http://hook.test:"+port+"/x"), "loopback")
	require.ErrorContains(t, ns.CheckDestination(ctx, "mqtt://10.0.0.7:1883/t"), "private")
	require.NoError(t, ns.CheckDestination(ctx, "arn:aws:sns:us-east-1:111122223333:topic"))

	for _, scheme := range []string{"http", "nats", "mqtt"} {
		name := "rebind-" + scheme + ".test"
		dns.Set(name, "127.0.0.1")
		s := e.createStream("cam-"+scheme, scheme+"://"+name+":"+port+"/kvs-events", nil) // passes the check
		dns.Set(name, "169.254.169.254")
		e.appendFragment(n, s, notification()...)
		require.Eventually(t, func() bool {
			return strings.Contains(n.Status(ctx, s).LastError, "169.254.169.254 is a link-local address")
		}, 10*time.Second, 10*time.Millisecond, "%s: %s", scheme, n.Status(ctx, s).LastError)
	}
	require.Len(t, w.distinct(t), 1, "nothing reached the receiver through the rebound name")
}
