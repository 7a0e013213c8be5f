package imagegen

import (
	"errors"
	"testing"

	"github.com/kvsd/kvsd/internal/stream"
)

// FuzzGalleryToken: kvsdListImages' NextToken comes from clients. A token is refused as an
// invalid argument, and only the empty token means the first page.
func FuzzGalleryToken(f *testing.F) {
	for _, s := range []string{"", "MTcwMDAwMDAwMDAwMC9jYW0vMS5qcGc", "LTEv", "eA", "!!", "MTcwMDAwMDAwMDAwMC8uLi8uLi9ldGMvcGFzc3dk"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		img, err := decodeGalleryToken(tok)
		if err != nil {
			if !errors.Is(err, stream.ErrInvalidArgument) {
				t.Fatalf("decodeGalleryToken(%q): %v is not an invalid argument", tok, err)
			}
			return
		}
		if img == nil {
			if tok != "" {
				t.Fatalf("decodeGalleryToken(%q): no image and no error", tok)
			}
			return
		}
	})
}
