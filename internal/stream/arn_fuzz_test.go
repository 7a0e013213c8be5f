package stream

import (
	"errors"
	"testing"
	"time"
)

// FuzzParseARN: StreamARN comes from clients in almost every operation. An ARN is refused as
// ErrInvalidARN, or it is the one FormatARN gives for its parts.
func FuzzParseARN(f *testing.F) {
	for _, s := range []string{"arn:aws:kinesisvideo:us-east-1:111122223333:stream/cam/1690000000000",
		"arn:aws-cn:kinesisvideo:cn-north-1:1:stream/a.b_c-d/0", "arn:aws:kinesisvideo:us-east-1:1:channel/x/1",
		"arn:aws:kinesisvideo:us-east-1:1:stream/cam/99999999999999999999", "arn:aws:kinesisvideo:us-east-1:1:stream/cam/-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arn string) {
		a, err := parseARN(arn)
		if err != nil {
			if !errors.Is(err, ErrInvalidARN) {
				t.Fatalf("parseARN(%q): %v is not ErrInvalidARN", arn, err)
			}
			return
		}
		if a.resource != "stream" || a.createdMs < 0 {
			return
		}
		// Its parts make an ARN (partition and padding may differ) that parses to the same parts.
		again, err := parseARN(FormatARN(a.region, a.account, a.name, time.UnixMilli(a.createdMs)))
		if err != nil || again != a {
			t.Fatalf("parseARN(%q) = %+v; formatted again: %+v, %v", arn, a, again, err)
		}
	})
}
