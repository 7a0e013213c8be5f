package stream

import "crypto/rand"

const versionAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// newVersion returns a 20-character alphanumeric token, the shape real KVS versions have.
func newVersion() string {
	b := make([]byte, 20)
	for i := range b {
		b[i] = versionAlphabet[randIntn(len(versionAlphabet))]
	}
	return string(b)
}

// randIntn draws without modulo bias by rejecting the top of the byte range.
func randIntn(n int) int {
	limit := 256 - 256%n
	var one [1]byte
	for {
		_, _ = rand.Read(one[:]) // crypto/rand.Read never fails (Go 1.24+)
		if int(one[0]) < limit {
			return int(one[0]) % n
		}
	}
}
