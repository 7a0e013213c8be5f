package notify_test

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/catalog"
	"github.com/kvsd/kvsd/internal/diag"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/notify"
	"github.com/kvsd/kvsd/internal/stream"
)

const uuidV5 = `^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`

func fieldNames(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestWebhookPersistedEvents: one signed POST per tagged fragment, the AWS message with the
// custom tags as payload, untagged fragments silent, metrics and status counting.
func TestWebhookPersistedEvents(t *testing.T) {
	e := newEnv(t)
	secret := []byte("webhook-secret")
	w := newWebhookReceiver(t, secret)
	st := e.createStream("cam-1", w.url(), nil)
	cfg := e.testConfig()
	cfg.WebhookSecret = secret
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	n, _ := e.run(cfg)

	f1 := e.appendFragment(n, st, notification("zone", "A", "camera", "front")...)
	e.appendFragment(n, st) // untagged: no event
	f3 := e.appendFragment(n, st, notification()...)
	got := w.waitCount(t, 2, 10*time.Second)
	requireFragments(t, got, f1, f3)

	m := got[0].Body
	require.Equal(t, []string{"EventId", "FragmentNumber", "FragmentStartProducerTimestamp", "FragmentStartServerTimestamp",
		"NotificationPayload", "NotificationType", "StreamArn"}, fieldNames(m))
	require.Equal(t, st.ARN, m["StreamArn"])
	require.Equal(t, f1.Number, m["FragmentNumber"])
	require.Equal(t, float64(f1.ProducerTime.UnixMilli()), m["FragmentStartProducerTimestamp"])
	require.Equal(t, float64(f1.ServerTime.UnixMilli()), m["FragmentStartServerTimestamp"])
	require.Equal(t, "PERSISTED", m["NotificationType"])
	require.Equal(t, map[string]any{"zone": "A", "camera": "front"}, m["NotificationPayload"])
	require.Regexp(t, uuidV5, got[0].ID)
	require.Equal(t, map[string]any{}, got[1].Body["NotificationPayload"])
	require.NotEqual(t, got[0].ID, got[1].ID)
	require.Len(t, w.all(), 2, "each event exactly once when nothing fails")

	require.Eventually(t, func() bool { return n.Status(ctx, st).Delivered == 2 }, 5*time.Second, 10*time.Millisecond)
	s := n.Status(ctx, st)
	require.Equal(t, notify.Status{Destination: w.url(), Transport: "webhook", Enabled: true, Delivered: 2,
		LastDelivered: s.LastDelivered}, s)
	require.False(t, s.LastDelivered.IsZero())
	require.Equal(t, 2.0, metric(t, reg, "kvsd_notify_events_total", "type", "PERSISTED"))
	require.Equal(t, 2.0, metric(t, reg, "kvsd_notify_delivered_total", "transport", "webhook"))
	require.Equal(t, 2.0, metric(t, reg, "kvsd_notify_delivery_seconds", "transport", "webhook"))
	require.Equal(t, 0.0, metric(t, reg, "kvsd_notify_failures_total", "transport", "webhook"))
}

// TestWebhookOutage: the endpoint disappears (connection refused), then answers 503; the
// events of the outage arrive afterwards, in order, none lost, and the failure shows in
// Status and the metrics meanwhile.
func TestWebhookOutage(t *testing.T) {
	e := newEnv(t)
	w := newWebhookReceiver(t, nil)
	st := e.createStream("cam-1", w.url(), nil)
	cfg := e.testConfig()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	n, _ := e.run(cfg)

	frags := []*fragmentT{e.appendFragment(n, st, notification("n", "1")...)}
	w.waitCount(t, 1, 10*time.Second)

	addr := w.addr
	w.stop()
	for i := 2; i <= 5; i++ {
		frags = append(frags, e.appendFragment(n, st, notification("n", strconv.Itoa(i))...))
	}
	// The first attempt may still find the kept-alive connection the receiver closed (EOF);
	// the next ones dial and are refused.
	require.Eventually(t, func() bool {
		s := n.Status(ctx, st)
		return strings.Contains(s.LastError, "connection refused") && s.Pending == 4 && !s.RetryAt.IsZero()
	}, 10*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return metric(t, reg, "kvsd_notify_pending") == 4 }, 5*time.Second, 10*time.Millisecond)
	waitRetries(t, n, st, 3) // a few retries into the outage

	w.setFailing(true)
	w.start(addr)
	require.Eventually(t, func() bool { return strings.Contains(n.Status(ctx, st).LastError, "503") }, 5*time.Second, 10*time.Millisecond)
	require.GreaterOrEqual(t, metric(t, reg, "kvsd_notify_failures_total", "transport", "webhook"), 3.0)
	w.setFailing(false)

	got := w.waitCount(t, 5, 15*time.Second)
	requireFragments(t, got, frags...)
	require.Eventually(t, func() bool { s := n.Status(ctx, st); return s.LastError == "" && s.Pending == 0 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, uint64(5), n.Status(ctx, st).Delivered)
	require.Equal(t, 0.0, metric(t, reg, "kvsd_notify_pending"))
	require.Contains(t, e.logs.String(), "notification delivery resumed")
}

// TestLostAcknowledgementRedelivers: an endpoint that takes the event but answers too late gets
// it again, with the same event id, and the stream goes on in order.
func TestLostAcknowledgementRedelivers(t *testing.T) {
	e := newEnv(t)
	var slow atomic.Int32
	slow.Store(1)
	c := &collector{}
	srv := newSlowReceiver(t, c, &slow)
	st := e.createStream("cam-1", srv, nil)
	cfg := e.testConfig()
	cfg.AttemptTimeout = 300 * time.Millisecond
	n, _ := e.run(cfg)

	f1 := e.appendFragment(n, st, notification()...)
	f2 := e.appendFragment(n, st, notification()...)
	got := c.waitCount(t, 2, 10*time.Second)
	requireFragments(t, got, f1, f2)
	all := c.all()
	require.Greater(t, len(all), 2, "the first event was received twice")
	require.Equal(t, all[0].ID, all[1].ID)
	require.Equal(t, all[0].Body, all[1].Body)
}

// newSlowReceiver records its first `slow` requests but answers them only once the sender
// gave up (closed the connection).
func newSlowReceiver(t *testing.T, c *collector, slow *atomic.Int32) string {
	h := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body := readAll(t, r)
		if err := c.add(r.Header.Get(notify.HeaderEventID), body); err != nil {
			t.Error(err)
		}
		if slow.Add(-1) >= 0 {
			<-r.Context().Done()
		}
		rw.WriteHeader(http.StatusOK)
	})
	return startHTTP(t, h) + "/events"
}

// TestRestartResumes: a notifier stopped while its destination fails leaves cursor and outbox
// in the catalog; a new one on the same catalog delivers the rest, including what was
// persisted while none ran, and does not repeat what was acknowledged.
func TestRestartResumes(t *testing.T) {
	e := newEnv(t)
	w := newWebhookReceiver(t, nil)
	st := e.createStream("cam-1", w.url(), map[string]string{notify.NotifyImagesTag: "true"})
	cfg := e.testConfig()
	n1, stop1 := e.run(cfg)

	f1 := e.appendFragment(n1, st, notification()...)
	f2 := e.appendFragment(n1, st, notification()...)
	w.waitCount(t, 2, 10*time.Second)

	w.setFailing(true)
	f3 := e.appendFragment(n1, st, notification()...)
	require.NoError(t, n1.ImageDelivered(ctx, st, "s3://bucket/f3.jpg", f3.ProducerTime, f3.Number))
	f4 := e.appendFragment(n1, st, notification()...)
	require.Eventually(t, func() bool { return n1.Status(ctx, st).LastError != "" }, 10*time.Second, 10*time.Millisecond)
	stop1()

	w.setFailing(false)
	f5 := e.appendFragment(nil, st, notification()...) // persisted while no notifier runs
	outbox, err := e.db.StateKeys(ctx, "notify-outbox")
	require.NoError(t, err)
	require.Len(t, outbox, 1, "the image event waits in the catalog")

	e.run(cfg) // no wake: the cursor alone brings it back
	got := w.waitCount(t, 6, 15*time.Second)
	requireFragments(t, got, f1, f2, f3, f4, f5)
	require.Equal(t, "IMAGE_DELIVERED", got[3].str("NotificationType"), "the image of f3 follows f3's PERSISTED event")
	require.Len(t, w.all(), 6, "what was acknowledged before the restart is not sent again")
	require.Eventually(t, func() bool {
		keys, err := e.db.StateKeys(ctx, "notify-outbox")
		return err == nil && len(keys) == 0
	}, 5*time.Second, 10*time.Millisecond, "delivered image events leave the outbox")
}

// TestImageDelivered: recorded durably before ImageDelivered returns, only with the tag and an
// ENABLED configuration, and delivered in fragment order with the PERSISTED events.
func TestImageDelivered(t *testing.T) {
	e := newEnv(t)
	w := newWebhookReceiver(t, nil)
	st := e.createStream("cam-1", w.url(), map[string]string{notify.NotifyImagesTag: "true"})
	plain := e.createStream("cam-2", w.url(), nil)
	off := e.createStream("cam-3", "", map[string]string{notify.NotifyImagesTag: "true"})
	n, err := notify.New(e.testConfig())
	require.NoError(t, err)

	f1 := e.appendFragment(n, st, notification()...)
	f2 := e.appendFragment(n, st)
	t1, t2 := f1.ProducerTime.Add(200*time.Millisecond), f2.ProducerTime
	require.NoError(t, n.ImageDelivered(ctx, st, "s3://bucket/a.jpg", t1, f1.Number))
	require.NoError(t, n.ImageDelivered(ctx, st, "s3://bucket/b.jpg", t2, f2.Number))
	keys, err := e.db.StateKeys(ctx, "notify-outbox")
	require.NoError(t, err)
	require.Len(t, keys, 2, "recorded before ImageDelivered returns, with no Run yet")

	pf := e.appendFragment(nil, plain, notification()...)
	require.NoError(t, n.ImageDelivered(ctx, plain, "s3://bucket/x.jpg", t1, pf.Number), "no tag: nothing to do")
	of := e.appendFragment(nil, off, notification()...)
	require.NoError(t, n.ImageDelivered(ctx, off, "s3://bucket/x.jpg", t1, of.Number), "no configuration: nothing to do")
	require.Error(t, n.ImageDelivered(ctx, st, "s3://bucket/x.jpg", t1, "123"), "not a fragment number")
	require.Error(t, n.ImageDelivered(ctx, st, "s3://bucket/x.jpg", t1, pf.Number), "another stream's fragment")
	keys, err = e.db.StateKeys(ctx, "notify-outbox")
	require.NoError(t, err)
	require.Len(t, keys, 2)

	e.runNotifier(n)
	f3 := e.appendFragment(n, st, notification()...)
	got := w.waitCount(t, 4, 10*time.Second)
	requireFragments(t, got, f1, f3)
	var types, uris []string
	for _, m := range got {
		types = append(types, m.str("NotificationType"))
		uris = append(uris, m.str("ImageUri"))
	}
	require.Equal(t, []string{"PERSISTED", "IMAGE_DELIVERED", "IMAGE_DELIVERED", "PERSISTED"}, types)
	require.Equal(t, []string{"", "s3://bucket/a.jpg", "s3://bucket/b.jpg", ""}, uris)
	img := got[1].Body
	require.Equal(t, []string{"EventId", "FragmentNumber", "ImageTimestamp", "ImageUri", "NotificationType", "StreamArn"}, fieldNames(img))
	require.Equal(t, st.ARN, img["StreamArn"])
	require.Equal(t, f1.Number, img["FragmentNumber"])
	require.Equal(t, float64(t1.UnixMilli()), img["ImageTimestamp"])
	require.Regexp(t, uuidV5, got[1].ID)
}

// runNotifier runs an already created Notifier until the test ends.
func (e *env) runNotifier(n *notify.Notifier) {
	c, cancel := contextWithCancel()
	done := make(chan error, 1)
	go func() { done <- n.Run(c) }()
	e.t.Cleanup(func() { cancel(); require.NoError(e.t, <-done) })
}

// TestEnableAndDisable: events start with the fragments persisted after notifications are
// enabled, stop when disabled (the cursor goes), and start afresh when enabled again.
func TestEnableAndDisable(t *testing.T) {
	e := newEnv(t)
	w := newWebhookReceiver(t, nil)
	st := e.createStream("cam-1", "", nil)
	n, _ := e.run(e.testConfig())
	k := fragstore.KeyOf(st)
	cursorKey := strconv.FormatInt(k.CreatedMs, 10) + "_cam-1"

	e.appendFragment(nil, st, notification()...) // before any configuration
	e.setNotification("cam-1", "ENABLED", w.url())
	f2 := e.appendFragment(n, st, notification()...)
	requireFragments(t, w.waitCount(t, 1, 10*time.Second), f2)
	require.Eventually(t, func() bool {
		b, err := e.db.LoadState(ctx, "notify", cursorKey)
		return err == nil && string(b) == strconv.FormatUint(f2.Seq, 10)
	}, 5*time.Second, 10*time.Millisecond, "the cursor is the last fragment handled")

	e.setNotification("cam-1", "DISABLED", w.url())
	e.appendFragment(n, st, notification()...)
	require.Eventually(t, func() bool {
		_, err := e.db.LoadState(ctx, "notify", cursorKey)
		return errors.Is(err, catalog.ErrNoState)
	}, 5*time.Second, 10*time.Millisecond, "disabling drops the cursor")
	require.False(t, n.Status(ctx, e.stream("cam-1")).Enabled)

	e.setNotification("cam-1", "ENABLED", w.url())
	f4 := e.appendFragment(n, st, notification()...)
	requireFragments(t, w.waitCount(t, 2, 10*time.Second), f2, f4)
}

// TestFailingStreamDoesNotBlockOthers: with a single worker, a stream whose destination is down
// waits out its backoff without holding the worker, and catches up when it returns.
func TestFailingStreamDoesNotBlockOthers(t *testing.T) {
	e := newEnv(t)
	down, up := newWebhookReceiver(t, nil), newWebhookReceiver(t, nil)
	down.setFailing(true)
	a := e.createStream("cam-a", down.url(), nil)
	b := e.createStream("cam-b", up.url(), nil)
	cfg := e.testConfig()
	cfg.Workers = 1
	cfg.MinBackoff, cfg.MaxBackoff = 200*time.Millisecond, time.Second
	n, _ := e.run(cfg)

	var fa, fb []*fragmentT
	for range 3 {
		fa = append(fa, e.appendFragment(n, a, notification()...))
		fb = append(fb, e.appendFragment(n, b, notification()...))
	}
	requireFragments(t, up.waitCount(t, 3, 10*time.Second), fb...)
	require.Empty(t, down.all())
	require.NotEmpty(t, n.Status(ctx, a).LastError)
	require.Empty(t, n.Status(ctx, b).LastError)

	down.setFailing(false)
	requireFragments(t, down.waitCount(t, 3, 10*time.Second), fa...)
}

// TestDeletedStreamForgotten: the cursor and outbox of a deleted stream are removed.
func TestDeletedStreamForgotten(t *testing.T) {
	e := newEnv(t)
	w := newWebhookReceiver(t, nil)
	w.setFailing(true)
	st := e.createStream("cam-1", w.url(), map[string]string{notify.NotifyImagesTag: "true"})
	n, _ := e.run(e.testConfig())
	f := e.appendFragment(n, st, notification()...)
	require.NoError(t, n.ImageDelivered(ctx, st, "s3://b/i.jpg", f.ProducerTime, f.Number))
	require.Eventually(t, func() bool { return n.Status(ctx, st).LastError != "" }, 5*time.Second, 10*time.Millisecond)

	require.NoError(t, e.svc.Delete(ctx, st.ARN, nil))
	n.Wake(fragstore.KeyOf(st), 0)
	require.Eventually(t, func() bool {
		c, err1 := e.db.StateKeys(ctx, "notify")
		o, err2 := e.db.StateKeys(ctx, "notify-outbox")
		return err1 == nil && err2 == nil && len(c) == 0 && len(o) == 0
	}, 5*time.Second, 10*time.Millisecond)
	require.Empty(t, w.all())
}

// TestConfigRequired: New refuses a Config without its backends.
func TestConfigRequired(t *testing.T) {
	_, err := notify.New(notify.Config{})
	require.Error(t, err)
	var _ notify.Streams = (stream.Store)(nil)
}

func codes(r diag.Report) map[string]diag.Level {
	out := map[string]diag.Level{}
	for _, f := range r.Findings {
		out[f.Code] = f.Level
	}
	return out
}

// TestDiagnose: what `kvsd doctor` shows for a stream without configuration, one whose
// fragments lack the tag, one whose destination fails, and one that works.
func TestDiagnose(t *testing.T) {
	e := newEnv(t)
	w := newWebhookReceiver(t, nil)
	none := e.createStream("none", "", nil)
	st := e.createStream("cam-1", w.url(), map[string]string{notify.NotifyImagesTag: "yes"})
	n, _ := e.run(e.testConfig())

	r := n.Diagnose(ctx, none)
	require.Equal(t, "notifications", r.Component)
	require.Equal(t, map[string]diag.Level{"NOTIFY_CONFIG_MISSING": diag.Info}, codes(r))

	e.appendFragment(n, st)
	c := codes(n.Diagnose(ctx, st))
	require.Equal(t, diag.Warn, c["FRAGMENTS_TAGGED"], "untagged fragments produce no events")
	require.Equal(t, diag.Warn, c["NOTIFY_IMAGES_TAG"])
	require.NotContains(t, c, "NOTIFY_OK")

	w.setFailing(true)
	e.appendFragment(n, st, notification()...)
	require.Eventually(t, func() bool { return codes(n.Diagnose(ctx, st))["NOTIFY_FAILING"] == diag.Error }, 5*time.Second, 10*time.Millisecond)

	require.NoError(t, e.svc.Tag(ctx, stream.Ref{Name: "cam-1"}, map[string]string{notify.NotifyImagesTag: "true"}))
	w.setFailing(false)
	w.waitCount(t, 1, 10*time.Second)
	require.Eventually(t, func() bool {
		c := codes(n.Diagnose(ctx, e.stream("cam-1")))
		return c["NOTIFY_OK"] == diag.OK && c["FRAGMENTS_TAGGED"] == diag.Info && c["NOTIFY_IMAGES"] == diag.Info
	}, 5*time.Second, 10*time.Millisecond, "%+v", n.Diagnose(ctx, e.stream("cam-1")))
}

// TestOrderAcrossBatches: with more fragments than one index read returns, an image still
// waits for the PERSISTED events of the fragments before its own.
func TestOrderAcrossBatches(t *testing.T) {
	e := newEnv(t)
	w := newWebhookReceiver(t, nil)
	st := e.createStream("cam-1", w.url(), map[string]string{notify.NotifyImagesTag: "true"})
	n, err := notify.New(e.testConfig())
	require.NoError(t, err)
	n.Wake(fragstore.KeyOf(st), 1) // start at the first fragment
	var tagged []*fragmentT
	var imageOf *fragmentT
	for i := 1; i <= 300; i++ {
		var tags []mkv.SimpleTag
		if i == 1 || i == 280 || i == 300 {
			tags = notification()
		}
		f := e.appendFragment(nil, st, tags...)
		if tags != nil {
			tagged = append(tagged, f)
		}
		if i == 299 {
			imageOf = f
		}
	}
	require.NoError(t, n.ImageDelivered(ctx, st, "s3://b/299.jpg", imageOf.ProducerTime, imageOf.Number))
	e.runNotifier(n)
	got := w.waitCount(t, 4, 15*time.Second)
	requireFragments(t, got, tagged...)
	require.Equal(t, "IMAGE_DELIVERED", got[2].str("NotificationType"), "after fragment 280, before 300")
}
