package notify

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/kvsd/kvsd/internal/fragment"
)

// Notification types. PERSISTED is the only one AWS sends; IMAGE_DELIVERED is kvsd's own.
const (
	TypePersisted      = "PERSISTED"
	TypeImageDelivered = "IMAGE_DELIVERED"
)

// SNSSubject is the Subject of every SNS message, as KVS sends it.
const SNSSubject = "Kinesis Video Streams Notification"

// event is one message on its way to a destination.
type event struct {
	ID     string    // deterministic, so that receivers can drop the duplicates of at-least-once
	Type   string    // TypePersisted or TypeImageDelivered
	Stream string    // stream name, for logs and FIFO SNS groups
	Origin time.Time // when the event came to be: the delivery latency is measured from it
	Body   []byte    // the JSON message
}

// persistedMessage is the KVS notification message (§7), plus EventId. Field order is the
// documented one; the timestamps are epoch milliseconds.
type persistedMessage struct {
	StreamArn                      string            `json:"StreamArn"`
	FragmentNumber                 string            `json:"FragmentNumber"`
	FragmentStartProducerTimestamp int64             `json:"FragmentStartProducerTimestamp"`
	FragmentStartServerTimestamp   int64             `json:"FragmentStartServerTimestamp"`
	NotificationType               string            `json:"NotificationType"`
	NotificationPayload            map[string]string `json:"NotificationPayload"`
	EventId                        string            `json:"EventId"`
}

// imageMessage announces one image the stream's image generation delivered.
type imageMessage struct {
	StreamArn        string `json:"StreamArn"`
	FragmentNumber   string `json:"FragmentNumber"`
	NotificationType string `json:"NotificationType"`
	ImageUri         string `json:"ImageUri"`
	ImageTimestamp   int64  `json:"ImageTimestamp"`
	EventId          string `json:"EventId"`
}

// persistedEvent builds the PERSISTED event of a fragment tagged AWS_KINESISVIDEO_NOTIFICATION.
// The payload is the fragment's custom tags: every SimpleTag whose name does not start with
// AWS (the producer SDKs refuse such names for custom pairs, so they are all KVS's own).
func persistedEvent(streamARN, streamName string, f *fragment.Fragment) event {
	payload := map[string]string{}
	for _, t := range f.Tags {
		if t.Name != "" && !strings.HasPrefix(t.Name, "AWS") {
			payload[t.Name] = t.Value
		}
	}
	id := eventID(streamARN, f.Number, TypePersisted, "")
	body, _ := json.Marshal(persistedMessage{ // cannot fail: strings, numbers and a string map
		StreamArn:                      streamARN,
		FragmentNumber:                 f.Number,
		FragmentStartProducerTimestamp: f.ProducerTime.UnixMilli(),
		FragmentStartServerTimestamp:   f.ServerTime.UnixMilli(),
		NotificationType:               TypePersisted,
		NotificationPayload:            payload,
		EventId:                        id,
	})
	// The fragment is persisted about when its last frame arrived.
	return event{ID: id, Type: TypePersisted, Stream: streamName, Origin: f.ServerTime.Add(f.Duration), Body: body}
}

// imageEvent builds the IMAGE_DELIVERED event of one delivered image.
func imageEvent(streamARN, streamName, fragmentNumber, uri string, imageTime, recorded time.Time) event {
	id := eventID(streamARN, fragmentNumber, TypeImageDelivered, uri)
	body, _ := json.Marshal(imageMessage{
		StreamArn:        streamARN,
		FragmentNumber:   fragmentNumber,
		NotificationType: TypeImageDelivered,
		ImageUri:         uri,
		ImageTimestamp:   imageTime.UnixMilli(),
		EventId:          id,
	})
	return event{ID: id, Type: TypeImageDelivered, Stream: streamName, Origin: recorded, Body: body}
}

// eventNamespace is the UUID namespace of kvsd event ids (a fixed random UUID).
var eventNamespace = [16]byte{0x6b, 0x76, 0x73, 0x64, 0x2d, 0x6e, 0x6f, 0x74, 0x69, 0x66, 0x79, 0x2d, 0x65, 0x76, 0x74, 0x31}

// eventID is a name-based UUID (version 5, RFC 9562) of what the event is about, so every
// delivery attempt of one event, before and after a restart, carries the same id.
func eventID(streamARN, fragmentNumber, typ, extra string) string {
	h := sha1.New()
	h.Write(eventNamespace[:])
	h.Write([]byte(streamARN + "\n" + fragmentNumber + "\n" + typ + "\n" + extra))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}
