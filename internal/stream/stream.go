// Package stream holds the rules of the KVS control plane: stream names, ARNs, version tokens,
// retention, tags and the per-stream image-generation, notification and storage configurations.
// It knows nothing of HTTP; kvsapi decodes requests into these calls and maps the errors.
package stream

import "time"

// Status is the lifecycle state of a stream as DescribeStream reports it.
type Status string

const (
	StatusCreating Status = "CREATING"
	StatusActive   Status = "ACTIVE"
	StatusUpdating Status = "UPDATING"
	StatusDeleting Status = "DELETING"
)

// Limits of the control plane (KVS model and quota pages).
const (
	MaxRetentionHours = 87600
	MaxTags           = 50
)

// Stream is one stream's metadata as the catalog keeps it.
type Stream struct {
	Name           string
	ARN            string
	DeviceName     string
	MediaType      string
	KmsKeyID       string
	Version        string
	Status         Status
	CreationTime   time.Time // millisecond precision; the ARN's last component
	RetentionHours int
	Tags           map[string]string
	StorageTier    string // HOT or WARM

	ImageGeneration *ImageGenerationConfiguration
	Notification    *NotificationConfiguration
}

// Clone returns a deep copy, so callers can mutate without touching catalog-owned values.
func (s *Stream) Clone() *Stream {
	c := *s
	if s.Tags != nil {
		c.Tags = make(map[string]string, len(s.Tags))
		for k, v := range s.Tags {
			c.Tags[k] = v
		}
	}
	if s.ImageGeneration != nil {
		c.ImageGeneration = s.ImageGeneration.clone()
	}
	if s.Notification != nil {
		n := *s.Notification
		c.Notification = &n
	}
	return &c
}

// Ref names a stream the way every KVS operation does: by StreamName or by StreamARN, exactly one.
type Ref struct {
	Name string
	ARN  string
}
