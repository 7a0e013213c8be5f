package streamwork

import (
	"math/rand/v2"
	"time"
)

// backoff is the wait after the n-th failure in a row: MinBackoff doubled n-1 times, at most
// MaxBackoff, less the jitter.
func (e *Engine) backoff(n int) time.Duration {
	d := e.cfg.MinBackoff
	for i := 1; i < n && d < e.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, e.cfg.MaxBackoff)
	if j := min(max(e.cfg.Jitter, 0), 1); j > 0 {
		r := e.cfg.Rand
		if r == nil {
			r = rand.Float64
		}
		d -= time.Duration(j * r() * float64(d))
	}
	return d
}
