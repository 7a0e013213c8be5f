package stream

import (
	"regexp"
	"strconv"
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

// Validate applies the NotificationConfiguration shape rules.
func (c *NotificationConfiguration) Validate() error {
	if err := oneOf("NotificationConfiguration.Status", c.Status, "ENABLED", "DISABLED"); err != nil {
		return err
	}
	if c.DestinationConfig == nil {
		return invalid("NotificationConfiguration.DestinationConfig is required")
	}
	u := c.DestinationConfig.Uri
	if len(u) < 1 || len(u) > 255 || !destinationURIPattern.MatchString(u) {
		return invalid("NotificationConfiguration.DestinationConfig.Uri %q is not a valid destination URI (1-255 characters, scheme:…)", u)
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
