package notify

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/mkv"
)

const arn = "arn:aws:kinesisvideo:us-east-1:111122223333:stream/cam-1/1700000000123"

// TestPersistedMessage pins the exact bytes: the AWS fields in the documented order, epoch-ms
// numbers, the custom (non-AWS) tags as payload, then EventId.
func TestPersistedMessage(t *testing.T) {
	f := &fragment.Fragment{Seq: 7, Number: fragment.FormatNumber(1700000000123, 7),
		ProducerTime: time.UnixMilli(1700000100000), ServerTime: time.UnixMilli(1700000100250), Duration: 2 * time.Second,
		Tags: []mkv.SimpleTag{{Name: fragment.TagNotification}, {Name: "zone", Value: "A"},
			{Name: fragment.TagImageGeneration}, {Name: fragment.TagImagePrefix, Value: "p"}, {Name: "", Value: "x"}}}
	ev := persistedEvent(arn, "cam-1", f)
	require.JSONEq(t, `{"StreamArn":"`+arn+`","FragmentNumber":"`+f.Number+`",`+
		`"FragmentStartProducerTimestamp":1700000100000,"FragmentStartServerTimestamp":1700000100250,`+
		`"NotificationType":"PERSISTED","NotificationPayload":{"zone":"A"},"EventId":"`+ev.ID+`"}`, string(ev.Body))
	require.Equal(t, `{"StreamArn":"`+arn+`","FragmentNumber":"`+f.Number+`","FragmentStartProducerTimestamp":1700000100000,`+
		`"FragmentStartServerTimestamp":1700000100250,"NotificationType":"PERSISTED","NotificationPayload":{"zone":"A"},`+
		`"EventId":"`+ev.ID+`"}`, string(ev.Body), "documented field order")
	require.Equal(t, time.UnixMilli(1700000102250), ev.Origin)
	require.Equal(t, TypePersisted, ev.Type)

	again := persistedEvent(arn, "cam-1", f)
	require.Equal(t, ev.ID, again.ID, "deterministic")
	require.Equal(t, ev.Body, again.Body)
	f.Tags = nil
	require.Contains(t, string(persistedEvent(arn, "cam-1", f).Body), `"NotificationPayload":{}`)
}

func TestImageMessage(t *testing.T) {
	n := fragment.FormatNumber(1700000000123, 7)
	ev := imageEvent(arn, "cam-1", n, "s3://b/k.jpg", time.UnixMilli(1700000100500), time.UnixMilli(1700000101000))
	require.Equal(t, `{"StreamArn":"`+arn+`","FragmentNumber":"`+n+`","NotificationType":"IMAGE_DELIVERED",`+
		`"ImageUri":"s3://b/k.jpg","ImageTimestamp":1700000100500,"EventId":"`+ev.ID+`"}`, string(ev.Body))
	require.Equal(t, TypeImageDelivered, ev.Type)
}

// TestEventID: a version-5 UUID that depends on every input.
func TestEventID(t *testing.T) {
	n := fragment.FormatNumber(1700000000123, 7)
	id := eventID(arn, n, TypePersisted, "")
	require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, id)
	require.Equal(t, id, eventID(arn, n, TypePersisted, ""))
	others := []string{
		eventID(arn+"9", n, TypePersisted, ""),
		eventID(arn, fragment.FormatNumber(1700000000123, 8), TypePersisted, ""),
		eventID(arn, n, TypeImageDelivered, ""),
		eventID(arn, n, TypeImageDelivered, "s3://b/1.jpg"),
		eventID(arn, n, TypeImageDelivered, "s3://b/2.jpg"),
	}
	seen := map[string]bool{id: true}
	for _, o := range others {
		require.False(t, seen[o], "ids differ: %s", o)
		seen[o] = true
	}
}

func TestTransportAndRedact(t *testing.T) {
	for uri, want := range map[string]string{
		"arn:aws:sns:us-east-1:111122223333:t": "sns",
		"https://h/x":                          "webhook",
		"HTTP://h/x":                           "webhook",
		"nats://h:4222/s":                      "nats",
		"mqtt://h:1883/t":                      "mqtt",
		"mqtts://h/t":                          "mqtt",
		"s3://b":                               "unknown",
	} {
		require.Equal(t, want, transportOf(uri), uri)
	}
	require.Equal(t, "nats://user:xxxxx@h:4222/s", redact("nats://user:secret@h:4222/s"))
	require.Equal(t, "https://h/x", redact("https://h/x"))
}

func TestBackoff(t *testing.T) {
	n := &Notifier{cfg: Config{MinBackoff: 500 * time.Millisecond, MaxBackoff: 30 * time.Second}}
	e, err := n.newEngine()
	require.NoError(t, err)
	var got []time.Duration
	for i := 1; i <= 9; i++ {
		got = append(got, e.Backoff(i))
	}
	require.Equal(t, []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second,
		8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second, 30 * time.Second}, got)
}
