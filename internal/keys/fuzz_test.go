package keys

import (
	"strings"
	"testing"
)

// FuzzKeyFile: whatever a key file holds, parsing neither panics nor accepts a key that is not
// 32 bytes, and the current key is one of the keys read.
func FuzzKeyFile(f *testing.F) {
	line, err := NewKeyLine()
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(keyFileHeader + line))
	f.Add([]byte(line + line + "# comment\n\n"))
	f.Add([]byte("not a key\n"))
	f.Add([]byte(strings.TrimSpace(line)))
	f.Fuzz(func(t *testing.T, b []byte) {
		kf, err := parseKeyFile(b)
		if err != nil {
			return
		}
		if kf.keys[kf.current] == nil {
			t.Fatalf("current key %q is not among the keys", kf.current)
		}
		for id, k := range kf.keys {
			if len(k) != DataKeyLen || KeyFingerprint(k) != id {
				t.Fatalf("key %s of %d bytes", id, len(k))
			}
		}
	})
}
