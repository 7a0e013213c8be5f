package imagegen

import (
	"crypto/sha1"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/imaging"
	"github.com/kvsd/kvsd/internal/stream"
)

// StreamTag is the stream tag that widens eligibility beyond AWS's producer tag, so that stock
// producers (kvssink has no way to send the tag) get images too:
//
//	aws kinesisvideo tag-stream --stream-name S --tags kvsd:ImageGeneration=ALL_FRAGMENTS
const StreamTag = "kvsd:ImageGeneration"

// Values of StreamTag.
const (
	AllFragments    = "ALL_FRAGMENTS"
	TaggedFragments = "TAGGED_FRAGMENTS" // the default: AWS's behaviour
)

// enabled reports whether st wants images for the fragments it persists now.
func enabled(st *stream.Stream) bool {
	c := st.ImageGeneration
	return c != nil && c.Status == "ENABLED" && c.DestinationConfig != nil && st.RetentionHours > 0
}

// eligible reports whether fragment f of st gets images (the configuration being enabled).
func eligible(st *stream.Stream, f *fragment.Fragment) bool {
	return f.HasTag(fragment.TagImageGeneration) || st.Tags[StreamTag] == AllFragments
}

// specOf translates a configuration's format and size.
func specOf(format string, formatConfig map[string]string, width, height *int) imaging.Spec {
	s := imaging.Spec{Format: imaging.JPEG, Quality: stream.DefaultJPEGQuality}
	if format == "PNG" {
		s.Format = imaging.PNG
	}
	if q, err := strconv.Atoi(formatConfig["JPEGQuality"]); err == nil {
		s.Quality = q
	}
	if width != nil {
		s.Width = *width
	}
	if height != nil {
		s.Height = *height
	}
	return s
}

func configSpec(c *stream.ImageGenerationConfiguration) imaging.Spec {
	return specOf(c.Format, c.FormatConfig, c.WidthPixels, c.HeightPixels)
}

// timeline returns where f starts on the configured clock. Frame times inside the fragment
// are offsets from its start on either clock, so the server timeline is the producer's shifted
// by the fragment's arrival.
func timeline(c *stream.ImageGenerationConfiguration, f *fragment.Fragment) time.Time {
	if c.ImageSelectorType == "SERVER_TIMESTAMP" {
		return f.ServerTime
	}
	return f.ProducerTime
}

// sampleOffsets are the sample times within a fragment that starts at start (on the
// configured clock) and lasts duration: the multiples of interval on that clock, as offsets
// from the start, in [0, duration). Sampling follows the stream's timeline, not each
// fragment's start, so images stay interval apart across fragment boundaries (kvssink's
// 833-ms fragments at 200 ms give 5 images a second, not 6). A fragment shorter than the
// interval may hold no multiple and get no image; a single frame (no duration) gets one only
// when it lies on a multiple. GetImages keeps its own rule (from its StartTimestamp).
func sampleOffsets(start time.Time, duration, interval time.Duration) []time.Duration {
	if interval <= 0 {
		return []time.Duration{0}
	}
	first := time.Duration(0)
	if r := time.Duration(start.UnixNano() % int64(interval)); r > 0 {
		first = interval - r
	} else if r < 0 { // before 1970
		first = -r
	}
	var out []time.Duration
	for t := first; t < duration || (t == 0 && duration == 0); t += interval {
		out = append(out, t)
	}
	return out
}

// destination splits an s3://bucket[/path] URI; the path (without surrounding slashes) becomes
// the first part of every key.
func destination(uri string) (bucket, path string, err error) {
	rest, ok := strings.CutPrefix(uri, "s3://")
	if !ok {
		return "", "", fmt.Errorf("destination %q is not an s3:// URI", uri)
	}
	bucket, path, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("destination %q names no bucket", uri)
	}
	return bucket, strings.Trim(path, "/"), nil
}

// objectKey is the KVS image key:
// [<path>/][<ImagePrefix>_]<AccountID>_<StreamName>_<image time in epoch ms>_<UUID>.<ext>.
func objectKey(path, imagePrefix, account, streamName string, at time.Time, id string, f imaging.Format) string {
	var b strings.Builder
	if path != "" {
		b.WriteString(path)
		b.WriteByte('/')
	}
	if imagePrefix != "" {
		b.WriteString(imagePrefix)
		b.WriteByte('_')
	}
	fmt.Fprintf(&b, "%s_%s_%d_%s.%s", account, streamName, at.UnixMilli(), id, ext(f))
	return b.String()
}

// imageID is the UUID in an image key: random-looking like AWS's, but derived (UUID version 5
// style, SHA-1 over a fixed namespace and the name) from the stream incarnation, the fragment
// and the image time, so a retry or a redo after a restart overwrites the same object.
func imageID(streamARN, fragmentNumber string, at time.Time) string {
	h := sha1.New()
	h.Write(uuidNamespace[:])
	fmt.Fprintf(h, "%s\x00%s\x00%d", streamARN, fragmentNumber, at.UnixMilli())
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// uuidNamespace is kvsd's own name space for image ids (any fixed value works; this one is
// random).
var uuidNamespace = [16]byte{0x6b, 0x76, 0x73, 0x64, 0x9a, 0x1e, 0x4c, 0x2f, 0xb1, 0x07, 0x52, 0x3d, 0xe8, 0x44, 0x90, 0xc6}

// imagePrefix is the producer's AWS_KINESISVIDEO_IMAGE_PREFIX, if any.
func imagePrefix(f *fragment.Fragment) string {
	for _, t := range f.Tags {
		if t.Name == fragment.TagImagePrefix {
			return t.Value
		}
	}
	return ""
}

// Metadata keys every image carries (S3 user metadata, x-amz-meta-…).
const (
	MetaProducerTimestamp = "aws_kinesisvideo_producer_timestamp"
	MetaServerTimestamp   = "aws_kinesisvideo_server_timestamp"
	MetaFragmentNumber    = "aws_kinesisvideo_fragment_number"
)

// metadata is the S3 user metadata of f's images: the fragment's timestamps (epoch ms) and
// number, plus its custom (non-AWS_) tags. Keys are normalised as S3 stores them (lower case,
// header-safe), so the local folder shows what S3 would; the AWS keys win over a custom tag
// of the same name.
func metadata(f *fragment.Fragment) map[string]string {
	m := map[string]string{}
	for _, t := range f.Tags {
		if strings.HasPrefix(t.Name, "AWS_") {
			continue
		}
		if k := metaKey(t.Name); k != "" {
			m[k] = t.Value
		}
	}
	m[MetaProducerTimestamp] = strconv.FormatInt(f.ProducerTime.UnixMilli(), 10)
	m[MetaServerTimestamp] = strconv.FormatInt(f.ServerTime.UnixMilli(), 10)
	m[MetaFragmentNumber] = f.Number
	return m
}

// metaKey lower-cases a tag name and replaces what an HTTP header name cannot carry with '_'.
func metaKey(name string) string {
	b := []byte(strings.ToLower(name))
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
		if !ok {
			b[i] = '_'
		}
	}
	return string(b)
}
