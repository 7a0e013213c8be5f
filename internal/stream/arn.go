package stream

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// arnPattern is ResourceARN from the control-plane model.
var arnPattern = regexp.MustCompile(`^arn:[a-z\d-]+:kinesisvideo:[a-z0-9-]+:[0-9]+:[a-z]+/[a-zA-Z0-9_.-]+/[0-9]+$`)

// FormatARN builds arn:aws:kinesisvideo:<region>:<account>:stream/<name>/<creation ms>.
func FormatARN(region, account, name string, created time.Time) string {
	return fmt.Sprintf("arn:aws:kinesisvideo:%s:%s:stream/%s/%d", region, account, name, created.UnixMilli())
}

// SetCreationTime sets the stream's CreationTime (to the millisecond) and the creation time the
// ARN ends with. A catalog calls it when CreateStream moves a creation time forward so that
// creation times strictly increase per name (Store.CreateStream). An ARN that is not a stream
// ARN is left alone.
func (s *Stream) SetCreationTime(t time.Time) {
	s.CreationTime = t.Truncate(time.Millisecond)
	if a, err := parseARN(s.ARN); err == nil && a.resource == "stream" {
		s.ARN = FormatARN(a.region, a.account, a.name, s.CreationTime)
	}
}

// parsedARN is the part of a stream ARN that identifies the stream.
type parsedARN struct {
	region, account, resource, name string
	createdMs                       int64
}

func parseARN(arn string) (parsedARN, error) {
	if len(arn) < 1 || len(arn) > 1024 || !arnPattern.MatchString(arn) {
		return parsedARN{}, fmt.Errorf("%w: %q is not a Kinesis Video stream ARN (arn:aws:kinesisvideo:<region>:<account>:stream/<name>/<creation ms>)", ErrInvalidARN, arn)
	}
	parts := strings.SplitN(arn, ":", 6)
	res := strings.Split(parts[5], "/")
	ms, err := strconv.ParseInt(res[2], 10, 64)
	if err != nil {
		return parsedARN{}, fmt.Errorf("%w: creation time in %q: %v", ErrInvalidARN, arn, err)
	}
	return parsedARN{region: parts[3], account: parts[4], resource: res[0], name: res[1], createdMs: ms}, nil
}
