package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/kvsd/kvsd/bench/internal/mkvload"
	"github.com/kvsd/kvsd/internal/putmedia"
)

// FragTimes is what one camera saw of one fragment.
type FragTimes struct {
	Done      time.Time // the next Cluster's first bytes were written: the fragment is complete
	Received  time.Time // RECEIVED ack
	Persisted time.Time // PERSISTED ack
}

// Camera is one simulated real-time camera: one PutMedia session.
type Camera struct {
	Name  string
	mu    sync.Mutex
	frags map[uint64]*FragTimes // by cluster timecode
	err   error
	errs  int // ERROR acks
	lag   []time.Duration
}

func (c *Camera) at(tc uint64) *FragTimes {
	ft := c.frags[tc]
	if ft == nil {
		ft = &FragTimes{}
		c.frags[tc] = ft
	}
	return ft
}

// RunCameras streams f to each named stream in real time, one PutMedia session per camera,
// clusters Clusters each (the last one only completes the one before), and returns when every
// session has ended. Camera starts are spread at random (fixed seed) over the first fragment
// duration after t0; each connects just before its first frame.
func RunCameras(ctx context.Context, pc *putmedia.Client, f *mkvload.File, names []string, t0 time.Time, clusters int) []*Camera {
	cams := make([]*Camera, len(names))
	for i, name := range names {
		cams[i] = &Camera{Name: name, frags: map[uint64]*FragTimes{}}
	}
	fragDur := f.FragmentDuration()
	rng := rand.New(rand.NewPCG(1, 2))
	var wg sync.WaitGroup
	for _, c := range cams {
		start := t0.Add(time.Duration(rng.Int64N(int64(fragDur))))
		wg.Go(func() {
			body := mkvload.NewPaced(ctx, f, start, clusters, func(tc uint64, at time.Time) {
				c.mu.Lock()
				c.at(tc).Done = at
				c.mu.Unlock()
			})
			select { // connect just before the first frame
			case <-time.After(time.Until(start.Add(-200 * time.Millisecond))):
			case <-ctx.Done():
				return
			}
			err := pc.Put(ctx, putmedia.Request{StreamName: c.Name, Body: body}, func(a putmedia.Ack) {
				now := time.Now()
				c.mu.Lock()
				defer c.mu.Unlock()
				switch a.EventType {
				case "RECEIVED":
					c.at(a.FragmentTimecode).Received = now
				case "PERSISTED":
					c.at(a.FragmentTimecode).Persisted = now
				case "ERROR":
					c.errs++
					if c.err == nil {
						c.err = fmt.Errorf("ERROR ack %d %s", a.ErrorID, a.ErrorCode)
					}
				}
			})
			c.mu.Lock()
			if err != nil && c.err == nil {
				c.err = err
			}
			c.lag = body.Lateness()
			c.mu.Unlock()
		})
	}
	wg.Wait()
	return cams
}

// CameraSummary is what a set of cameras saw, all together.
type CameraSummary struct {
	Persisted []time.Duration // fragment complete → PERSISTED, per fragment
	Received  []time.Duration // fragment complete → RECEIVED, per persisted fragment that had one
	Lag       []time.Duration // client pacing lag of the pieces handed out late
	Missing   int             // complete fragments without PERSISTED
	Failed    int             // sessions that ended with an error
	ErrAcks   int
	FirstErr  error
}

// Summarize adds up what the cameras saw, once RunCameras has returned. Each camera's last
// fragment (ended by the end of the body, not by a Cluster) is left out.
func Summarize(cams []*Camera) CameraSummary {
	var s CameraSummary
	for _, c := range cams {
		if c.err != nil {
			s.Failed++
			if s.FirstErr == nil {
				s.FirstErr = fmt.Errorf("%s: %w", c.Name, c.err)
			}
		}
		s.ErrAcks += c.errs
		s.Lag = append(s.Lag, c.lag...)
		for _, ft := range c.frags {
			if ft.Done.IsZero() {
				continue // the last fragment: no next cluster completes it
			}
			if ft.Persisted.IsZero() {
				s.Missing++
				continue
			}
			s.Persisted = append(s.Persisted, max(0, ft.Persisted.Sub(ft.Done)))
			if !ft.Received.IsZero() {
				s.Received = append(s.Received, max(0, ft.Received.Sub(ft.Done)))
			}
		}
	}
	return s
}
