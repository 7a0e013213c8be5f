// Package streamrec is the stored form of a stream record: versioned JSON, mapped field by
// field from stream.Stream. Every catalog implementation stores streams in this one shape (the
// bbolt file's streams bucket, PostgreSQL's streams table), so docs/format/catalog.md
// describes it once and a record moves between them unchanged.
package streamrec

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/kvsd/kvsd/internal/stream"
)

// recordVersion is the version of the JSON shape below. Decoders refuse newer records rather
// than silently dropping fields a newer kvsd wrote.
const recordVersion = 1

// streamRecord is the on-disk shape of a stream. It is mapped field by field from stream.Stream
// so that renaming a Go field never changes the file format. Tags and FormatConfig keep
// null apart from {} because the catalog hands back exactly what it was given.
type streamRecord struct {
	V               int                 `json:"v"`
	Name            string              `json:"name"`
	ARN             string              `json:"arn"`
	DeviceName      string              `json:"deviceName"`
	MediaType       string              `json:"mediaType"`
	KmsKeyID        string              `json:"kmsKeyId"`
	Version         string              `json:"version"`
	Status          string              `json:"status"`
	CreationTimeMs  int64               `json:"creationTimeMs"`
	RetentionHours  int                 `json:"retentionHours"`
	Tags            map[string]string   `json:"tags"`
	StorageTier     string              `json:"storageTier"`
	ImageGeneration *imageGenRecord     `json:"imageGeneration,omitempty"`
	Notification    *notificationRecord `json:"notification,omitempty"`
}

type imageGenRecord struct {
	Status             string            `json:"status"`
	ImageSelectorType  string            `json:"imageSelectorType"`
	Destination        *imageDestRecord  `json:"destination,omitempty"`
	SamplingIntervalMs *int              `json:"samplingIntervalMs,omitempty"`
	Format             string            `json:"format"`
	FormatConfig       map[string]string `json:"formatConfig"`
	WidthPixels        *int              `json:"widthPixels,omitempty"`
	HeightPixels       *int              `json:"heightPixels,omitempty"`
}

type imageDestRecord struct {
	URI    string `json:"uri"`
	Region string `json:"region"`
}

type notificationRecord struct {
	Status      string                  `json:"status"`
	Destination *notificationDestRecord `json:"destination,omitempty"`
}

type notificationDestRecord struct {
	URI string `json:"uri"`
}

// Encode returns the record of s.
func Encode(s *stream.Stream) ([]byte, error) {
	r := streamRecord{
		V:              recordVersion,
		Name:           s.Name,
		ARN:            s.ARN,
		DeviceName:     s.DeviceName,
		MediaType:      s.MediaType,
		KmsKeyID:       s.KmsKeyID,
		Version:        s.Version,
		Status:         string(s.Status),
		CreationTimeMs: s.CreationTime.UnixMilli(),
		RetentionHours: s.RetentionHours,
		Tags:           s.Tags,
		StorageTier:    s.StorageTier,
	}
	if g := s.ImageGeneration; g != nil {
		r.ImageGeneration = &imageGenRecord{
			Status:             g.Status,
			ImageSelectorType:  g.ImageSelectorType,
			SamplingIntervalMs: g.SamplingInterval,
			Format:             g.Format,
			FormatConfig:       g.FormatConfig,
			WidthPixels:        g.WidthPixels,
			HeightPixels:       g.HeightPixels,
		}
		if d := g.DestinationConfig; d != nil {
			r.ImageGeneration.Destination = &imageDestRecord{URI: d.Uri, Region: d.DestinationRegion}
		}
	}
	if n := s.Notification; n != nil {
		r.Notification = &notificationRecord{Status: n.Status}
		if d := n.DestinationConfig; d != nil {
			r.Notification.Destination = &notificationDestRecord{URI: d.Uri}
		}
	}
	return json.Marshal(&r)
}

// Decode builds a fresh Stream from a record; nothing it returns aliases v (bbolt keeps it
// valid only for the life of its transaction).
func Decode(v []byte) (*stream.Stream, error) {
	var r streamRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("decode stream record: %w", err)
	}
	if r.V != recordVersion {
		return nil, fmt.Errorf("stream record %q has version %d; this kvsd reads version %d", r.Name, r.V, recordVersion)
	}
	s := &stream.Stream{
		Name:           r.Name,
		ARN:            r.ARN,
		DeviceName:     r.DeviceName,
		MediaType:      r.MediaType,
		KmsKeyID:       r.KmsKeyID,
		Version:        r.Version,
		Status:         stream.Status(r.Status),
		CreationTime:   time.UnixMilli(r.CreationTimeMs).UTC(),
		RetentionHours: r.RetentionHours,
		Tags:           r.Tags,
		StorageTier:    r.StorageTier,
	}
	if g := r.ImageGeneration; g != nil {
		s.ImageGeneration = &stream.ImageGenerationConfiguration{
			Status:            g.Status,
			ImageSelectorType: g.ImageSelectorType,
			SamplingInterval:  g.SamplingIntervalMs,
			Format:            g.Format,
			FormatConfig:      g.FormatConfig,
			WidthPixels:       g.WidthPixels,
			HeightPixels:      g.HeightPixels,
		}
		if d := g.Destination; d != nil {
			s.ImageGeneration.DestinationConfig = &stream.ImageGenerationDestinationConfig{Uri: d.URI, DestinationRegion: d.Region}
		}
	}
	if n := r.Notification; n != nil {
		s.Notification = &stream.NotificationConfiguration{Status: n.Status}
		if d := n.Destination; d != nil {
			s.Notification.DestinationConfig = &stream.NotificationDestinationConfig{Uri: d.URI}
		}
	}
	return s, nil
}
