package streamwork

import (
	"math/rand/v2"
	"time"
)

// Backoff is the wait after the n-th failure in a row, before jitter: MinBackoff doubled n-1
// times, at most MaxBackoff.
func (e *Engine) Backoff(n int) time.Duration {
	d := e.cfg.MinBackoff
	for i := 1; i < n && d < e.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, e.cfg.MaxBackoff)
}

// backoff is Backoff(n) less the jitter.
func (e *Engine) backoff(n int) time.Duration {
	d := e.Backoff(n)
	if j := min(max(e.cfg.Jitter, 0), 1); j > 0 {
		r := e.cfg.Rand
		if r == nil {
			r = rand.Float64
		}
		d -= time.Duration(j * r() * float64(d))
	}
	return d
}
