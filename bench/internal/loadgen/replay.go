// Package loadgen is the PutMedia load the benchmark programs put on a server: producers that
// replay a file as fast as the server takes it, and cameras that stream it in real time.
package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/kvsd/kvsd/internal/putmedia"
)

// Replayed is what one replay load got from a server.
type Replayed struct {
	Wall     time.Duration
	Bytes    int64 // body bytes of complete calls
	Acks     int64 // PERSISTED acks
	Puts     int64
	Short    int64 // complete calls with fewer acks than the file has fragments
	Errs     int64
	FirstErr error
}

// Plus adds up two loads of the same configuration; the first error stays the first.
func (r Replayed) Plus(o Replayed) Replayed {
	m := Replayed{Wall: r.Wall + o.Wall, Bytes: r.Bytes + o.Bytes, Acks: r.Acks + o.Acks, Puts: r.Puts + o.Puts,
		Short: r.Short + o.Short, Errs: r.Errs + o.Errs, FirstErr: r.FirstErr}
	if m.FirstErr == nil {
		m.FirstErr = o.FirstErr
	}
	return m
}

// MBps is 10^6 body bytes of complete calls per second of wall time.
func (r Replayed) MBps() float64 { return float64(r.Bytes) / 1e6 / r.Wall.Seconds() }

// Replay has one producer per stream name send body through PutMedia again and again until
// dur has passed, then waits for the calls in flight. wantAcks is the acks a complete call
// gets.
func Replay(ctx context.Context, pc *putmedia.Client, names []string, body []byte, dur time.Duration, wantAcks int) Replayed {
	ctx, cancel := context.WithTimeout(ctx, dur+3*time.Minute)
	defer cancel()
	var res Replayed
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	until := start.Add(dur)
	for _, name := range names {
		wg.Go(func() {
			for time.Now().Before(until) && ctx.Err() == nil {
				acks, errAcks := 0, 0
				// A plain Reader: net/http then sends 32 KiB chunks, as a streaming producer
				// would, rather than one chunk of the whole file.
				err := pc.Put(ctx, putmedia.Request{StreamName: name, Body: struct{ io.Reader }{bytes.NewReader(body)}},
					func(a putmedia.Ack) {
						switch a.EventType {
						case "PERSISTED":
							acks++
						case "ERROR":
							errAcks++
						}
					})
				mu.Lock()
				res.Puts++
				res.Acks += int64(acks)
				if err == nil && errAcks > 0 {
					err = fmt.Errorf("%d ERROR acks", errAcks)
				}
				if err != nil {
					res.Errs++
					if res.FirstErr == nil {
						res.FirstErr = fmt.Errorf("stream %s: %w", name, err)
					}
				} else {
					res.Bytes += int64(len(body))
					if acks < wantAcks {
						res.Short++
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.Wall = time.Since(start)
	return res
}
