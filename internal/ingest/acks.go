package ingest

import (
	"encoding/json"

	"github.com/kvsd/kvsd/internal/fragment"
)

// Ack event types (§3.3).
const (
	EventBuffering = "BUFFERING" // a fragment's cluster timecode arrived
	EventReceived  = "RECEIVED"  // the whole fragment arrived and parsed
	EventPersisted = "PERSISTED" // the fragment is durable (retention > 0 only)
	EventIdle      = "IDLE"      // keep-alive while no data arrives
	EventError     = "ERROR"     // the session ends; ErrorID says why
)

// Ack is one PutMedia acknowledgement as the producer parses it.
type Ack struct {
	EventType        string
	FragmentTimecode uint64 // the cluster Timecode exactly as sent, in TimecodeScale ticks
	FragmentNumber   string
	ErrorID          int
	ErrorCode        string
}

// ackJSON fixes the key names and order KVS uses; the pointer keeps a zero timecode (a RELATIVE
// stream's first cluster) on the wire.
type ackJSON struct {
	EventType        string  `json:"EventType"`
	FragmentTimecode *uint64 `json:"FragmentTimecode,omitempty"`
	FragmentNumber   string  `json:"FragmentNumber,omitempty"`
	ErrorID          int     `json:"ErrorId,omitempty"`
	ErrorCode        string  `json:"ErrorCode,omitempty"`
}

// MarshalJSON writes the ack as one compact object. IDLE carries only EventType; ErrorId and
// ErrorCode appear only on ERROR; an ERROR about no particular fragment (a bad header, a read
// failure between fragments) has no FragmentTimecode/FragmentNumber, which the producer SDK
// applies to the oldest fragment it still holds.
func (a Ack) MarshalJSON() ([]byte, error) {
	j := ackJSON{EventType: a.EventType}
	if a.EventType != EventIdle && a.FragmentNumber != "" {
		tc := a.FragmentTimecode
		j.FragmentTimecode, j.FragmentNumber = &tc, a.FragmentNumber
	}
	if a.EventType == EventError {
		j.ErrorID, j.ErrorCode = a.ErrorID, a.ErrorCode
	}
	return json.Marshal(j)
}

// ackFor builds a BUFFERING, RECEIVED or PERSISTED ack of f.
func ackFor(event string, f *fragment.Fragment) Ack {
	return Ack{EventType: event, FragmentTimecode: f.Timecode, FragmentNumber: f.Number}
}
