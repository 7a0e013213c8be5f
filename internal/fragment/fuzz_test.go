package fragment

import "testing"

// FuzzParseNumber: fragment numbers come from clients (GetMediaForFragmentList, GetMedia's
// FRAGMENT_NUMBER, playback queries). A number is accepted only in the one spelling
// FormatNumber gives it, so two spellings never name the same fragment.
func FuzzParseNumber(f *testing.F) {
	f.Add(FormatNumber(1690000000000, 9))
	f.Add(FormatNumber(0, 0))
	f.Add("9+169000000000000000000000000000000000000000009")
	f.Add("9-000000000000000000000000000000000000000000001")
	f.Fuzz(func(t *testing.T, n string) {
		ms, seq, err := ParseNumber(n)
		if err != nil {
			return
		}
		if again := FormatNumber(ms, seq); again != n {
			t.Fatalf("ParseNumber(%q) = %d, %d, which formats as %q", n, ms, seq, again)
		}
	})
}
