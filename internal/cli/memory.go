package cli

import "runtime/debug"

// defaultGCPercent is kvsd's GOGC unless the environment sets GOGC.
//
// kvsd's heap is mostly media buffers: the Cluster each PutMedia session is receiving (about
// bitrate × fragment duration, recycled from fragment to fragment) and the few being persisted.
// They hold no pointers, so the collector does not scan them and a collection costs about the
// same however large they are, while Go's default (GOGC=100) lets the heap grow to twice what
// is live before collecting: with 200 cameras that is some 150 MB of memory holding nothing.
// At 25 the heap stays within 1.25× of what is live; in the 200-camera benchmark the collector
// stays well under 1 % of kvsd's CPU. GOMEMLIMIT, when set, applies on top as usual.
const defaultGCPercent = 25

// tuneGC applies defaultGCPercent unless GOGC is set.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
}
