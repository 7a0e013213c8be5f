package producer

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Defaults of Config's zero fields.
const (
	DefaultFragmentDuration = 2 * time.Second
	DefaultBufferBytes      = 64 << 20
	DefaultStopTimeout      = 10 * time.Second
	// DefaultConnectionAge is when the producer starts a new PutMedia
	// connection, at the next fragment boundary: before KVS's 45-minute
	// limit (ERROR 4003), as the SDK does.
	DefaultConnectionAge = 40 * time.Minute
	// DefaultAckTimeout restarts a connection that carries data but gets no
	// acknowledgement for this long (a half-open TCP connection).
	DefaultAckTimeout = 30 * time.Second
)

// KVS limits on fragments and their metadata (kvs-protocol.md §3.6, §5.2).
const (
	MaxFragmentDuration = 20 * time.Second
	MaxTagPairs         = 10
	MaxTagNameBytes     = 128
	MaxTagValueBytes    = 256
	MaxImagePrefixBytes = 256
)

// Tag is a custom name/value pair written into fragments.
type Tag struct{ Name, Value string }

// Config configures a Producer. StreamName is required; every other zero
// field takes a default.
type Config struct {
	// Endpoint is the control-plane URL (e.g. http://127.0.0.1:4580);
	// empty means AWS KVS in Region.
	Endpoint    string
	Region      string
	Credentials aws.CredentialsProvider
	StreamName  string

	// FragmentDuration is the target: a fragment ends at the first keyframe
	// at or after this duration, so with long GOPs a fragment lasts a whole
	// GOP (it cannot be cut shorter without re-encoding). Default 2 s. A GOP
	// longer than the 20 s fragment limit is cut at a non-key frame, which
	// then plays only after the fragment before it; a warning says so.
	FragmentDuration time.Duration
	// BufferBytes bounds the fragments kept until they are PERSISTED. When
	// it is full a file source waits; a live source drops the oldest
	// fragment not being sent (counted in Stats.Dropped). Default 64 MiB.
	BufferBytes int64

	// ImageGeneration tags fragments with AWS_KINESISVIDEO_IMAGE_GENERATION:
	// every ImageEvery-th fragment (default every one), starting with the
	// first. ImagePrefix, if set, goes with it.
	ImageGeneration bool
	ImageEvery      int
	ImagePrefix     string
	// Notify tags every fragment with AWS_KINESISVIDEO_NOTIFICATION.
	Notify bool
	// Metadata is written into every fragment: inside the event tags when
	// there are events, otherwise as ordinary fragment metadata.
	Metadata []Tag

	// Fast sends a non-live source as fast as the server takes it instead of
	// in real time.
	Fast bool
	// StartTime is the producer timestamp of a non-live source's time 0;
	// default: when Run starts. Live sources always use the wall clock.
	StartTime time.Time

	// RetentionHours is the stream's data retention, which tells whether
	// PERSISTED acks will come (none with 0). Nil: learn it from
	// DescribeStream.
	RetentionHours *int32

	StopTimeout   time.Duration // bounded wait for the last acks on stop; default 10 s
	ConnectionAge time.Duration // rotate connections after this; default 40 min
	AckTimeout    time.Duration // restart a silent connection; default 30 s
	// RetryMin and RetryMax bound the reconnect backoff; default 250 ms and 5 s.
	RetryMin, RetryMax time.Duration

	// HTTPClient makes every request; nil: the default client for the
	// control plane, and for PutMedia one that opens a fresh connection
	// each time (a streamed body leaves nothing worth reusing).
	HTTPClient *http.Client
	Logger     *slog.Logger // nil: no logs
	// OnEvent, when set, receives what happens (fragments persisted,
	// dropped, skipped, reconnects, warnings). It is called from the
	// producer's goroutines, one call at a time, and must not block long.
	OnEvent func(Event)
}

// EventKind says what an Event reports.
type EventKind int

// Event kinds.
const (
	EventFragmentSent      EventKind = iota + 1 // the last byte of a fragment went out
	EventFragmentPersisted                      // PERSISTED (RECEIVED on streams without retention)
	EventFragmentSkipped                        // a non-retriable ERROR: the fragment is not in the stream
	EventFragmentDropped                        // the buffer was full (live source)
	EventReconnect                              // a connection ended; Err says why
	EventWarning                                // Err says what
)

func (k EventKind) String() string {
	switch k {
	case EventFragmentSent:
		return "sent"
	case EventFragmentPersisted:
		return "persisted"
	case EventFragmentSkipped:
		return "skipped"
	case EventFragmentDropped:
		return "dropped"
	case EventReconnect:
		return "reconnect"
	case EventWarning:
		return "warning"
	}
	return "EventKind(?)"
}

// Event is one thing the producer reports through Config.OnEvent.
type Event struct {
	Kind EventKind
	// Timecode is the fragment's producer timestamp (fragment events).
	Timecode time.Time
	Duration time.Duration // fragment duration (fragment events)
	Bytes    int           // fragment size (fragment events)
	Err      error         // why (skipped, reconnect, warning)
	Stats    Stats         // a snapshot after the event
}

// Stats counts what a Run did.
type Stats struct {
	Frames     int64 // frames read from the source
	Fragments  int64 // fragments made
	Persisted  int64 // fragments the server acknowledged PERSISTED (RECEIVED without retention)
	Skipped    int64 // refused with a non-retriable ERROR
	Dropped    int64 // dropped because the buffer was full
	Pending    int64 // not yet confirmed (at the end of Run: lost, or of unknown fate)
	BytesSent  int64 // body bytes written, resends included
	Reconnects int64
	// Media is the time span of the fragments persisted so far.
	Media time.Duration
	// LastError is the last error that made the producer reconnect or skip.
	LastError error
}

// tagPlan is the validated tag configuration.
type tagPlan struct {
	image, notify bool
	imageEvery    int
	prefix        string
	pairs         []Tag
}

// ErrInvalidConfig wraps every configuration error New returns.
var ErrInvalidConfig = errors.New("invalid producer configuration")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

// ValidateTags checks the tag options against the KVS metadata limits (New
// does too), so that a bad tag is an error now rather than an ERROR 4009 on
// every fragment later.
func (c *Config) ValidateTags() error {
	_, err := c.validateTags()
	return err
}

func (c *Config) validateTags() (tagPlan, error) {
	p := tagPlan{image: c.ImageGeneration || c.ImageEvery > 0, notify: c.Notify, imageEvery: max(c.ImageEvery, 1), prefix: c.ImagePrefix}
	if c.ImageEvery < 0 {
		return p, invalid("image every %d fragments: want 1 or more", c.ImageEvery)
	}
	if c.ImagePrefix != "" {
		if !p.image {
			return p, invalid("an image prefix needs image generation")
		}
		if len(c.ImagePrefix) > MaxImagePrefixBytes {
			return p, invalid("image prefix of %d bytes: at most %d", len(c.ImagePrefix), MaxImagePrefixBytes)
		}
		if strings.HasPrefix(c.ImagePrefix, "AWS") {
			return p, invalid("image prefix %q: it must not start with AWS", c.ImagePrefix)
		}
	}
	if len(c.Metadata) > MaxTagPairs {
		return p, invalid("%d tags: at most %d per fragment", len(c.Metadata), MaxTagPairs)
	}
	if p.image && p.notify && 2*len(c.Metadata) > MaxTagPairs {
		return p, invalid("%d tags with both image generation and notifications: each event carries the tags, so a fragment would hold %d and at most %d are allowed; use at most %d tags",
			len(c.Metadata), 2*len(c.Metadata), MaxTagPairs, MaxTagPairs/2)
	}
	seen := map[string]bool{}
	for _, t := range c.Metadata {
		switch {
		case t.Name == "":
			return p, invalid("a tag with an empty name")
		case len(t.Name) > MaxTagNameBytes:
			return p, invalid("tag name %.20q… has %d bytes: at most %d", t.Name, len(t.Name), MaxTagNameBytes)
		case len(t.Value) > MaxTagValueBytes:
			return p, invalid("tag %s has a value of %d bytes: at most %d", t.Name, len(t.Value), MaxTagValueBytes)
		case strings.HasPrefix(t.Name, "AWS"):
			return p, invalid("tag name %s: names starting with AWS are reserved", t.Name)
		case seen[t.Name]:
			return p, invalid("tag %s given twice", t.Name)
		}
		seen[t.Name] = true
	}
	p.pairs = c.Metadata
	return p, nil
}

func (c Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.FragmentDuration, DefaultFragmentDuration)
	def(&c.StopTimeout, DefaultStopTimeout)
	def(&c.ConnectionAge, DefaultConnectionAge)
	def(&c.AckTimeout, DefaultAckTimeout)
	def(&c.RetryMin, 250*time.Millisecond)
	def(&c.RetryMax, 5*time.Second)
	if c.BufferBytes <= 0 {
		c.BufferBytes = DefaultBufferBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c *Config) validate() (tagPlan, error) {
	switch {
	case c.StreamName == "":
		return tagPlan{}, invalid("no stream name")
	case c.Credentials == nil:
		return tagPlan{}, invalid("no credentials")
	case c.Region == "":
		return tagPlan{}, invalid("no region")
	case c.FragmentDuration > MaxFragmentDuration:
		return tagPlan{}, invalid("fragment duration %s: KVS allows at most %s", c.FragmentDuration, MaxFragmentDuration)
	}
	return c.validateTags()
}
