package stream

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// ImageGenerationConfiguration is the AWS shape, stored as given so Describe returns what was set.
type ImageGenerationConfiguration struct {
	Status            string                            `json:"Status"`
	ImageSelectorType string                            `json:"ImageSelectorType"`
	DestinationConfig *ImageGenerationDestinationConfig `json:"DestinationConfig"`
	SamplingInterval  *int                              `json:"SamplingInterval"`
	Format            string                            `json:"Format"`
	FormatConfig      map[string]string                 `json:"FormatConfig,omitempty"`
	WidthPixels       *int                              `json:"WidthPixels,omitempty"`
	HeightPixels      *int                              `json:"HeightPixels,omitempty"`
}

// ImageGenerationDestinationConfig says where images go.
type ImageGenerationDestinationConfig struct {
	Uri               string `json:"Uri"`
	DestinationRegion string `json:"DestinationRegion"`
}

// NotificationConfiguration is the AWS shape of a stream's notification destination.
type NotificationConfiguration struct {
	Status            string                         `json:"Status"`
	DestinationConfig *NotificationDestinationConfig `json:"DestinationConfig"`
}

// NotificationDestinationConfig holds the destination URI (an SNS topic ARN on AWS).
type NotificationDestinationConfig struct {
	Uri string `json:"Uri"`
}

// Image generation limits. AWS's current service accepts sampling intervals from 200 ms.
const (
	MinSamplingIntervalMs = 200
	DefaultJPEGQuality    = 80
	MaxWidthPixels        = 3840
	MaxHeightPixels       = 2160
)

var (
	destinationURIPattern    = regexp.MustCompile(`^[a-zA-Z_0-9]+:(//)?([^/]+)/?([^*]*)$`)
	destinationRegionPattern = regexp.MustCompile(`^[a-z]+(-[a-z]+)?-[a-z]+-[0-9]$`)
	formatConfigValuePattern = regexp.MustCompile(`^[a-zA-Z_0-9]+$`)
	s3URIPattern             = regexp.MustCompile(`^s3://[^/]+`)
	bucketPattern            = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	ipLikeBucket             = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$`)
)

func (c *ImageGenerationConfiguration) clone() *ImageGenerationConfiguration {
	n := *c
	if c.DestinationConfig != nil {
		d := *c.DestinationConfig
		n.DestinationConfig = &d
	}
	if c.FormatConfig != nil {
		n.FormatConfig = map[string]string{}
		for k, v := range c.FormatConfig {
			n.FormatConfig[k] = v
		}
	}
	for _, p := range []**int{&n.SamplingInterval, &n.WidthPixels, &n.HeightPixels} {
		if *p != nil {
			v := **p
			*p = &v
		}
	}
	return &n
}

// JPEGQuality is the configured quality, or the KVS default of 80.
func (c *ImageGenerationConfiguration) JPEGQuality() int {
	if q, err := strconv.Atoi(c.FormatConfig["JPEGQuality"]); err == nil {
		return q
	}
	return DefaultJPEGQuality
}

// Validate applies every rule of the ImageGenerationConfiguration shape; region is the server's.
func (c *ImageGenerationConfiguration) Validate(region string) error {
	if err := oneOf("ImageGenerationConfiguration.Status", c.Status, "ENABLED", "DISABLED"); err != nil {
		return err
	}
	if err := oneOf("ImageGenerationConfiguration.ImageSelectorType", c.ImageSelectorType, "SERVER_TIMESTAMP", "PRODUCER_TIMESTAMP"); err != nil {
		return err
	}
	if err := oneOf("ImageGenerationConfiguration.Format", c.Format, "JPEG", "PNG"); err != nil {
		return err
	}
	if err := c.validateDestination(region); err != nil {
		return err
	}
	if c.SamplingInterval == nil {
		return invalid("ImageGenerationConfiguration.SamplingInterval is required")
	}
	if *c.SamplingInterval < MinSamplingIntervalMs {
		return invalid("ImageGenerationConfiguration.SamplingInterval must be at least %d ms, got %d", MinSamplingIntervalMs, *c.SamplingInterval)
	}
	if err := validateFormatConfig(c.FormatConfig); err != nil {
		return err
	}
	if err := inRange("ImageGenerationConfiguration.WidthPixels", c.WidthPixels, 1, MaxWidthPixels); err != nil {
		return err
	}
	return inRange("ImageGenerationConfiguration.HeightPixels", c.HeightPixels, 1, MaxHeightPixels)
}

func (c *ImageGenerationConfiguration) validateDestination(region string) error {
	d := c.DestinationConfig
	if d == nil {
		return invalid("ImageGenerationConfiguration.DestinationConfig is required")
	}
	if len(d.Uri) < 1 || len(d.Uri) > 255 || !destinationURIPattern.MatchString(d.Uri) {
		return invalid("DestinationConfig.Uri %q must look like s3://bucket[/path] (1-255 characters)", d.Uri)
	}
	if !s3URIPattern.MatchString(d.Uri) {
		return invalid("DestinationConfig.Uri %q: kvsd delivers images to S3 only; use s3://bucket[/path]", d.Uri)
	}
	// The bucket becomes a host name (virtual-hosted S3) or a folder (the local folder): S3's
	// naming rule keeps it from naming an address or leaving the folder.
	bucket, _, _ := strings.Cut(strings.TrimPrefix(d.Uri, "s3://"), "/")
	if !bucketPattern.MatchString(bucket) || strings.Contains(bucket, "..") || ipLikeBucket.MatchString(bucket) {
		return invalid("DestinationConfig.Uri %q: %q is not an S3 bucket name (3-63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit, not an IP address)", d.Uri, bucket)
	}
	if len(d.DestinationRegion) < 9 || len(d.DestinationRegion) > 14 || !destinationRegionPattern.MatchString(d.DestinationRegion) {
		return invalid("DestinationConfig.DestinationRegion %q is not a region name such as us-east-1", d.DestinationRegion)
	}
	if d.DestinationRegion != region {
		return invalid("DestinationConfig.DestinationRegion %q must be the stream's region %q", d.DestinationRegion, region)
	}
	return nil
}

func validateFormatConfig(fc map[string]string) error {
	if fc == nil {
		return nil
	}
	if len(fc) != 1 {
		return invalid("FormatConfig must hold exactly one entry, JPEGQuality")
	}
	v, ok := fc["JPEGQuality"]
	if !ok {
		for k := range fc {
			return invalid("FormatConfig key %q is not supported; the only key is JPEGQuality", k)
		}
	}
	q, err := strconv.Atoi(v)
	if len(v) > 256 || !formatConfigValuePattern.MatchString(v) || err != nil || q < 1 || q > 100 {
		return invalid("FormatConfig JPEGQuality must be an integer from 1 to 100, got %q", v)
	}
	return nil
}

// Validate applies the NotificationConfiguration shape rules and checks that kvsd can deliver to
// the destination: the URI's scheme selects the transport (internal/notify), so a URI no
// transport understands is refused here rather than failing silently at every fragment.
func (c *NotificationConfiguration) Validate() error {
	if err := oneOf("NotificationConfiguration.Status", c.Status, "ENABLED", "DISABLED"); err != nil {
		return err
	}
	if c.DestinationConfig == nil {
		return invalid("NotificationConfiguration.DestinationConfig is required")
	}
	u := c.DestinationConfig.Uri
	const supported = "arn:aws:sns:<region>:<account>:<topic> (SNS), https://… or http://… (webhook), " +
		"nats://host:port/<subject> (NATS) and mqtt://host:port/<topic> or mqtts://host:port/<topic> (MQTT)"
	bad := func(why string) error {
		return invalid("NotificationConfiguration.DestinationConfig.Uri %q %s; supported destinations: %s", u, why, supported)
	}
	if len(u) < 1 || len(u) > 255 || !destinationURIPattern.MatchString(u) {
		return bad("is not a valid destination URI (1-255 characters, scheme:…)")
	}
	if strings.HasPrefix(u, "arn:") {
		// Partition, region, 12-digit account, topic name (FIFO topics end in .fifo).
		snsARN := regexp.MustCompile(`^arn:aws(-[a-z]+)*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$`)
		if !snsARN.MatchString(u) {
			return bad("is not an SNS topic ARN")
		}
		return nil
	}
	p, err := url.Parse(u)
	if err != nil {
		return bad("cannot be parsed as a URL")
	}
	scheme := strings.ToLower(p.Scheme)
	switch scheme {
	case "http", "https", "nats", "mqtt", "mqtts":
	default:
		return bad(fmt.Sprintf("uses the unsupported scheme %q", p.Scheme))
	}
	if p.Hostname() == "" {
		return bad("names no host")
	}
	if port := p.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return bad("has an invalid port")
		}
	}
	if scheme == "http" || scheme == "https" {
		return nil
	}
	// Brokers: the path is one subject or topic to publish to, so wildcards (which only
	// subscribers may use) and query strings have no meaning there.
	name := strings.TrimPrefix(p.Path, "/")
	if p.RawQuery != "" || p.Fragment != "" || strings.Contains(u, "#") {
		return bad("must not carry a query or a '#'")
	}
	if scheme == "nats" {
		if name == "" || strings.ContainsAny(name, " \t\r\n*>") || strings.Contains("."+name+".", "..") {
			return bad("must name one NATS subject without wildcards after the host, e.g. nats://127.0.0.1:4222/kvs.events")
		}
		return nil
	}
	if name == "" || strings.ContainsAny(name, "+#\x00") {
		return bad("must name one MQTT topic without wildcards after the host, e.g. mqtt://127.0.0.1:1883/kvs/events")
	}
	return nil
}

func oneOf(field, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	if v == "" {
		return invalid("%s is required (one of %v)", field, allowed)
	}
	return invalid("%s %q is not one of %v", field, v, allowed)
}

func inRange(field string, v *int, lo, hi int) error {
	if v != nil && (*v < lo || *v > hi) {
		return invalid("%s must be between %d and %d, got %d", field, lo, hi, *v)
	}
	return nil
}
