package notify

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kvsd/kvsd/internal/diag"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/metric"
	"github.com/kvsd/kvsd/internal/stream"
)

// Status is what `kvsd doctor` shows about a stream's notifications.
type Status struct {
	Destination   string    // configured URI, passwords masked; "" when none is configured
	Transport     string    // sns, webhook, nats or mqtt
	Enabled       bool      // the configuration's Status is ENABLED
	Delivered     uint64    // events acknowledged by the destination since kvsd started
	Pending       int       // events recorded, not yet acknowledged (over at most 10000 fragments)
	LastError     string    // the last delivery failure, "" when none since the last success
	LastErrorTime time.Time // when it happened
	LastDelivered time.Time // last acknowledgement
	RetryAt       time.Time // next attempt while backing off; zero otherwise
}

// Status reports the notification state of s.
func (n *Notifier) Status(ctx context.Context, s *stream.Stream) Status {
	var out Status
	if c := s.Notification; c != nil && c.DestinationConfig != nil {
		out.Destination = redact(c.DestinationConfig.Uri)
		out.Transport = transportOf(c.DestinationConfig.Uri)
		out.Enabled = c.Status == "ENABLED"
	}
	k := fragstore.KeyOf(s)
	n.mu.Lock()
	images := 0
	if st := n.streams[k]; st != nil {
		out.Delivered, out.LastDelivered = st.delivered, st.lastOK
		images = len(st.images)
	}
	n.mu.Unlock()
	if ws := n.work.Status(k); ws.Failures > 0 && ws.Err != nil {
		out.RetryAt, out.LastError, out.LastErrorTime = ws.RetryAt, ws.Err.Error(), ws.FailedAt
	}
	out.Pending = images
	if cursor, ok, err := n.storedCursor(ctx, k); err == nil && ok && out.Enabled {
		out.Pending += n.countTagged(ctx, k, cursor)
	}
	return out
}

// countPending counts what st still has to deliver, for the gauge while it fails.
func (n *Notifier) countPending(ctx context.Context, st *streamState) int {
	n.mu.Lock()
	images := len(st.images)
	n.mu.Unlock()
	if !st.hasCursor {
		return images
	}
	return images + n.countTagged(ctx, st.key, st.cursor)
}

// countTagged counts fragments tagged for notification after seq, up to pendingCountLimit.
func (n *Notifier) countTagged(ctx context.Context, k fragstore.Key, seq uint64) int {
	count, scanned := 0, 0
	for scanned < pendingCountLimit {
		frags, err := n.cfg.Fragments.After(ctx, k, seq, walkBatch)
		if err != nil || len(frags) == 0 {
			break
		}
		for _, f := range frags {
			if f.HasTag(fragment.TagNotification) {
				count++
			}
		}
		scanned += len(frags)
		seq = frags[len(frags)-1].Seq
	}
	return count
}

func (n *Notifier) pendingTotal() float64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	total := 0
	for _, st := range n.streams {
		total += st.pending
	}
	return float64(total)
}

// metrics are the notifier's Prometheus series.
type metrics struct {
	events    *prometheus.CounterVec   // type
	delivered *prometheus.CounterVec   // transport
	failures  *prometheus.CounterVec   // transport
	latency   *prometheus.HistogramVec // transport
}

func newMetrics(reg prometheus.Registerer, pending func() float64) (*metrics, error) {
	m := &metrics{
		events: metric.CounterVec("kvsd_notify_events_total", "Notification events recorded, by type (PERSISTED, IMAGE_DELIVERED).", "type"),
		delivered: metric.CounterVec("kvsd_notify_delivered_total", "Notification events acknowledged by their destination, by transport.",
			"transport"),
		failures: metric.CounterVec("kvsd_notify_failures_total", "Failed notification delivery attempts (each is retried), by transport.",
			"transport"),
		latency: metric.HistogramVec("kvsd_notify_delivery_seconds",
			"Time from an event's origin (fragment persisted, image delivered) to its acknowledgement.",
			[]float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800}, "transport"),
	}
	if reg == nil {
		return m, nil
	}
	gauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kvsd_notify_pending",
		Help: "Notification events waiting for a destination that is failing."}, pending)
	if err := metric.Register(reg, m.events, m.delivered, m.failures, m.latency, gauge); err != nil {
		return nil, fmt.Errorf("notify metrics: %w", err)
	}
	return m, nil
}

// recentWindow is how far back (server time) Diagnose looks at fragments for the tag.
const recentWindow = 5 * time.Minute

// Diagnose explains in plain words whether and why st's events are delivered (diag.Source,
// for `kvsd doctor`). Streams without notifications get only INFO findings: most streams
// do not want any.
func (n *Notifier) Diagnose(ctx context.Context, st *stream.Stream) diag.Report {
	r := diag.Report{Component: "notifications"}
	add := func(level diag.Level, code, msg, fix string) {
		r.Findings = append(r.Findings, diag.Finding{Level: level, Code: code, Message: msg, Fix: fix})
	}
	s := n.Status(ctx, st)
	c := st.Notification
	example := fmt.Sprintf(`aws kinesisvideo update-notification-configuration --stream-name %s --notification-configuration '{"Status":"ENABLED","DestinationConfig":{"Uri":"https://example.com/kvs-events"}}' --endpoint-url …`, st.Name)
	switch {
	case c == nil || c.DestinationConfig == nil:
		add(diag.Info, "NOTIFY_CONFIG_MISSING", "the stream has no notification configuration, so no events are sent", example)
		return r
	case !s.Enabled:
		add(diag.Info, "NOTIFY_CONFIG_DISABLED", "the notification configuration is "+c.Status+", so no events are sent",
			"send the configuration again with \"Status\":\"ENABLED\" (aws kinesisvideo update-notification-configuration …)")
		return r
	}
	add(diag.Info, "NOTIFY_CONFIG", fmt.Sprintf("configuration ENABLED: events go to %s (%s)", s.Destination, s.Transport), "")
	problems := false
	if st.RetentionHours == 0 {
		problems = true
		add(diag.Error, "RETENTION_ZERO", "the stream keeps no data (DataRetentionInHours is 0); events are sent for persisted fragments only",
			fmt.Sprintf("aws kinesisvideo update-data-retention --stream-name %s --current-version %s --operation INCREASE_DATA_RETENTION --data-retention-change-in-hours 24 --endpoint-url …", st.Name, st.Version))
	}
	switch v := st.Tags[NotifyImagesTag]; v {
	case "true":
		add(diag.Info, "NOTIFY_IMAGES", fmt.Sprintf("stream tag %s=true: every delivered image is announced (IMAGE_DELIVERED)", NotifyImagesTag), "")
	case "":
	default:
		add(diag.Warn, "NOTIFY_IMAGES_TAG", fmt.Sprintf("stream tag %s=%q is not \"true\", so images are not announced", NotifyImagesTag, v),
			fmt.Sprintf("aws kinesisvideo tag-stream --stream-name %s --tags %s=true --endpoint-url …", st.Name, NotifyImagesTag))
	}
	if msg, level, fix := n.diagnoseTags(ctx, fragstore.KeyOf(st)); msg != "" {
		problems = problems || level != diag.Info
		add(level, "FRAGMENTS_TAGGED", msg, fix)
	}
	if s.LastError != "" {
		problems = true
		add(diag.Error, "NOTIFY_FAILING", fmt.Sprintf("delivery fails since %s: %s; %d events wait and are retried (next at %s), none is dropped",
			s.LastErrorTime.UTC().Format(time.RFC3339), s.LastError, s.Pending, s.RetryAt.UTC().Format(time.RFC3339)), failureFix(s.Transport))
	}
	msg := fmt.Sprintf("%d events delivered since kvsd started", s.Delivered)
	if !s.LastDelivered.IsZero() {
		msg += " (last at " + s.LastDelivered.UTC().Format(time.RFC3339) + ")"
	}
	add(diag.Info, "NOTIFY_DELIVERED", fmt.Sprintf("%s; %d waiting", msg, s.Pending), "")
	if !problems {
		add(diag.OK, "NOTIFY_OK", "events are being delivered for this stream", "")
	}
	return r
}

// diagnoseTags says whether the recent fragments carry the notification tag: without it, KVS
// (and kvsd) send nothing, the most common surprise.
func (n *Notifier) diagnoseTags(ctx context.Context, k fragstore.Key) (string, diag.Level, string) {
	now := n.cfg.Now()
	frags, _, err := n.cfg.Fragments.List(ctx, k, fragstore.ServerTime, now.Add(-recentWindow), now, fragstore.Cursor{}, 1000)
	if err != nil || len(frags) == 0 {
		return "", "", ""
	}
	tagged := 0
	for _, f := range frags {
		if f.HasTag(fragment.TagNotification) {
			tagged++
		}
	}
	if tagged == 0 {
		return fmt.Sprintf("none of the %d fragments of the last %s carries the %s tag, and only tagged fragments produce events (AWS's rule)", len(frags), recentWindow, fragment.TagNotification),
			diag.Warn, "tag fragments in the producer (putKinesisVideoEventMetadata with STREAM_EVENT_TYPE_NOTIFICATION)"
	}
	return fmt.Sprintf("%d of the %d fragments of the last %s carry the %s tag", tagged, len(frags), recentWindow, fragment.TagNotification), diag.Info, ""
}

func failureFix(transport string) string {
	switch transport {
	case "sns":
		return "check the SNS credentials in kvsd serve's environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), that they may sns:Publish to the topic, and --sns-endpoint when using an SNS-compatible server"
	case "webhook":
		return "check that the URL is reachable from kvsd (not at an address kvsd refuses) and answers 2xx to a POST; with a secret the receiver must accept X-Kvsd-Timestamp and X-Kvsd-Signature (README, Signed webhooks)"
	case "nats":
		return "check that the NATS server is reachable; for JetStream, that the stream capturing the subject accepts messages (limits, discard policy)"
	case "mqtt":
		return "check that the MQTT broker is reachable (mqtts: its certificate), accepts kvsd's connection and allows publishing to the topic"
	}
	return ""
}
