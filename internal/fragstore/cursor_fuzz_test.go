package fragstore_test

import (
	"errors"
	"testing"

	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/stream"
)

// FuzzParseCursor: ListFragments' NextToken comes from clients. A token is either refused as
// an invalid argument or is exactly what String gives back.
func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"", "AQEAAAGJ5RRZgAAAAAAAAAAH", "AQIAAAAAAAAAAAAAAAAAAAAA", "AQE=", "AQEAAAGJ5RRZgAAAAAAAAAAH\n", "AQEAAAGJ5RRZgAAAAAAAAAAh"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := fragstore.ParseCursor(s)
		if err != nil {
			if !errors.Is(err, stream.ErrInvalidArgument) {
				t.Fatalf("ParseCursor(%q): %v is not an invalid argument", s, err)
			}
			return
		}
		if c.String() != s {
			t.Fatalf("ParseCursor(%q) gives back %q", s, c.String())
		}
	})
}
