package stream

import (
	"regexp"
	"unicode/utf8"
)

var (
	namePattern      = regexp.MustCompile(`^[a-zA-Z0-9_.-]+$`)
	mediaTypePattern = regexp.MustCompile(`^[\w\-\.\+]+/[\w\-\.\+]+(,[\w\-\.\+]+/[\w\-\.\+]+)*$`)
	tagPattern       = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)
	versionPattern   = regexp.MustCompile(`^[a-zA-Z0-9]+$`)
)

// ValidateName checks a StreamName (1-256 of [a-zA-Z0-9_.-]).
func ValidateName(field, name string) error {
	if name == "" || len(name) > 256 || !namePattern.MatchString(name) {
		return invalid("%s %q must be 1-256 characters of a-z, A-Z, 0-9, '_', '.', '-'", field, name)
	}
	return nil
}

func validateDeviceName(name string) error {
	if name == "" || len(name) > 128 || !namePattern.MatchString(name) {
		return invalid("DeviceName %q must be 1-128 characters of a-z, A-Z, 0-9, '_', '.', '-'", name)
	}
	return nil
}

func validateMediaType(mt string) error {
	if mt == "" || len(mt) > 128 || !mediaTypePattern.MatchString(mt) {
		return invalid("MediaType %q must be a MIME type list such as video/h264 or video/h264,audio/aac (1-128 characters)", mt)
	}
	return nil
}

func validateKmsKeyID(id string) error {
	if id == "" || len(id) > 2048 {
		return invalid("KmsKeyId must be 1-2048 characters")
	}
	return nil
}

func validateRetention(field string, h int) error {
	if h < 0 || h > MaxRetentionHours {
		return invalid("%s must be between 0 and %d hours, got %d", field, MaxRetentionHours, h)
	}
	return nil
}

func validateVersion(v string) error {
	if v == "" || len(v) > 64 || !versionPattern.MatchString(v) {
		return invalid("CurrentVersion %q must be 1-64 alphanumeric characters", v)
	}
	return nil
}

// validateTags checks each key and value against the ResourceTags shape.
func validateTags(tags map[string]string) error {
	if len(tags) > MaxTags {
		return invalid("Tags may hold at most %d entries, got %d", MaxTags, len(tags))
	}
	for k, v := range tags {
		if err := validateTagKey(k); err != nil {
			return err
		}
		if utf8.RuneCountInString(v) > 256 || !tagPattern.MatchString(v) {
			return invalid("tag value %q for key %q must be 0-256 characters of letters, digits, spaces and _.:/=+-@", v, k)
		}
	}
	return nil
}

func validateTagKey(k string) error {
	if k == "" || utf8.RuneCountInString(k) > 128 || !tagPattern.MatchString(k) {
		return invalid("tag key %q must be 1-128 characters of letters, digits, spaces and _.:/=+-@", k)
	}
	return nil
}
