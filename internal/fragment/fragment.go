// Package fragment is the KVS fragment: one Matroska Cluster with the producer tags that follow
// it, its timestamps and its fragment number. It knows Matroska through mkv, not storage (a
// store's Location is opaque here) or HTTP.
package fragment

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kvsd/kvsd/internal/mkv"
)

// Fragment is the index entry of one stored fragment.
type Fragment struct {
	Seq          uint64        // per-stream sequence, 1, 2, …; the fragment number encodes it
	Number       string        // FormatNumber(stream creation ms, Seq)
	Timecode     uint64        // the cluster Timecode exactly as sent (acks echo it)
	ProducerTime time.Time     // ms precision; ABSOLUTE: cluster timecode; RELATIVE: start + timecode
	ServerTime   time.Time     // ms precision; when the fragment's first byte arrived
	Duration     time.Duration // ms precision; last frame end − first frame, per §3.5
	Size         int64         // bytes of the stored media (cluster + trailing tags)
	HeaderID     string        // content id of the MKV header the fragment plays with
	Tags         []mkv.SimpleTag

	// Location is where the store keeps the fragment's media: set on the entries the fragment
	// index returns, so that reading the media takes no second lookup; zero elsewhere.
	Location Location
}

// Location says where a store's media backend put a fragment's bytes. It is meaningful only to
// the backend that returned it and to the index that stores it next to the fragment's entry
// (catalog.Location is this type).
type Location struct {
	Segment uint64 // the segment (file, object) holding the record; segments only grow in number
	Offset  int64  // where the payload starts inside the segment
	Length  int64  // payload length: the fragment's media size
}

// Limits on the fragment number's parts; the number is always NumberDigits long so that
// lexical order is numeric order, as KVS clients assume.
const (
	NumberDigits = 47
	seqDigits    = 33
)

// FormatNumber builds the 47-digit fragment number: "9", the stream's 13-digit creation time in
// ms (unique per stream incarnation), and the 33-digit sequence.
func FormatNumber(streamCreatedMs int64, seq uint64) string {
	return fmt.Sprintf("9%013d%0*d", streamCreatedMs, seqDigits, seq)
}

// ParseNumber returns the parts of a fragment number made by FormatNumber.
func ParseNumber(n string) (streamCreatedMs int64, seq uint64, err error) {
	// Digits only: strconv would also take a sign, and "9-00…01" would name fragment 1.
	if len(n) != NumberDigits || n[0] != '9' || strings.Trim(n, "0123456789") != "" {
		return 0, 0, fmt.Errorf("fragment number %q: not a kvsd fragment number (47 digits starting with 9)", n)
	}
	ms, err1 := strconv.ParseInt(n[1:14], 10, 64)
	s, err2 := strconv.ParseUint(n[14:], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("fragment number %q: not all digits or out of range", n)
	}
	return ms, s, nil
}

// Reserved tag names the KVS producer SDK writes (§5).
const (
	TagImageGeneration = "AWS_KINESISVIDEO_IMAGE_GENERATION"
	TagImagePrefix     = "AWS_KINESISVIDEO_IMAGE_PREFIX"
	TagNotification    = "AWS_KINESISVIDEO_NOTIFICATION"
	TagEndOfFragment   = "AWS_KINESISVIDEO_END_OF_FRAGMENT"
)

// HasTag reports whether a SimpleTag with that name is attributed to the fragment.
func (f *Fragment) HasTag(name string) bool {
	for _, t := range f.Tags {
		if t.Name == name {
			return true
		}
	}
	return false
}
