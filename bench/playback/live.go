package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kvsd/kvsd/bench/internal/report"
	"github.com/kvsd/kvsd/internal/putmedia"
)

// liveGiveUp is how long a fragment may stay missing from the playlist before it counts as
// never listed.
const liveGiveUp = 5 * time.Second

// liveStream is one real-time producer and its LIVE session.
type liveStream struct {
	name string

	mu        sync.Mutex
	starting  bool   // the session is being created
	playlist  string // its media playlist URL, once created
	err       error
	lat       []time.Duration // PERSISTED ack → first playlist answer listing the fragment
	firstHit  int             // fragments listed by the playlist requested at the ack
	missing   int             // never listed within liveGiveUp
	unwatched int             // persisted before the session existed
	rtt       []time.Duration // every playlist request
}

func (s *liveStream) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

// startSession creates the stream's LIVE HLS session and finds its media playlist.
func (s *liveStream) startSession(ctx context.Context, k *kvsd) {
	var out struct{ HLSStreamingSessionURL string }
	err := k.call(ctx, "getHLSStreamingSessionURL", map[string]any{"StreamName": s.name, "PlaybackMode": "LIVE"}, &out)
	if err != nil {
		s.fail(err)
		return
	}
	master, err := k.get(ctx, out.HLSStreamingSessionURL)
	if err != nil {
		s.fail(err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.playlist = resolveURI(out.HLSStreamingSessionURL, firstURI(string(master)))
}

// watch requests the playlist right away and then back to back until it lists fragment
// number, and records how long after acked that was.
func (s *liveStream) watch(ctx context.Context, k *kvsd, playlist, number string, acked time.Time) {
	want := "FragmentNumber=" + number + "&"
	var rtts []time.Duration
	found, first := false, false
	for try := 0; ; try++ {
		start := time.Now()
		body, err := k.get(ctx, playlist)
		if err != nil {
			s.fail(err)
			return
		}
		rtts = append(rtts, time.Since(start))
		if strings.Contains(string(body), want) {
			found, first = true, try == 0
			break
		}
		if time.Since(acked) > liveGiveUp || ctx.Err() != nil {
			break
		}
	}
	lat := time.Since(acked)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rtt = append(s.rtt, rtts...)
	switch {
	case !found:
		s.missing++
	case first:
		s.firstHit++
		fallthrough
	default:
		s.lat = append(s.lat, lat)
	}
}

// onPersisted handles a PERSISTED ack: the first one creates the session, later ones are
// watched for in the playlist.
func (s *liveStream) onPersisted(ctx context.Context, k *kvsd, wg *sync.WaitGroup, number string) {
	acked := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.playlist != "":
		playlist := s.playlist
		wg.Go(func() { s.watch(ctx, k, playlist, number, acked) })
	case !s.starting:
		s.starting = true
		s.unwatched++
		wg.Go(func() { s.startSession(ctx, k) })
	default:
		s.unwatched++
	}
}

// live runs section 3.
func (b *bench) live(ctx context.Context) error {
	f := b.media
	n := b.cfg.liveStreams
	clusters := min(f.Clusters, int((b.cfg.liveDuration+f.FragDur-1)/f.FragDur))
	fmt.Fprintf(b.out, "## 3. Live: PERSISTED → LIVE media playlist, %d real-time streams\n\n", n)
	k, err := b.startKvsd("live", filepath.Join(b.work, "kvsd-live"))
	if err != nil {
		return err
	}
	defer k.Stop()
	streams := make([]*liveStream, n)
	names := make([]string, n)
	for i := range streams {
		names[i] = fmt.Sprintf("live-%03d", i)
		streams[i] = &liveStream{name: names[i]}
	}
	if err := k.createStreams(ctx, names, 24); err != nil {
		return err
	}
	b.logf("live: %d streams, %d fragments of %s each", n, clusters, f.FragDur)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(clusters)*f.FragDur+2*time.Minute)
	defer cancel()
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Now().Add(time.Second)
	snap := snapCPU(k.PID())
	pc := k.putClient()
	var producers, watchers sync.WaitGroup
	for _, s := range streams {
		start := t0.Add(time.Duration(rng.Int64N(int64(f.FragDur)))) // spread over one fragment
		producers.Go(func() {
			time.Sleep(time.Until(start.Add(-200 * time.Millisecond)))
			body := newPacedBody(ctx, f, start, clusters)
			err := pc.Put(ctx, putmedia.Request{StreamName: s.name, TimecodeType: "RELATIVE", ProducerStart: start, Body: body},
				func(a putmedia.Ack) {
					switch a.EventType {
					case "PERSISTED":
						s.onPersisted(ctx, k, &watchers, a.FragmentNumber)
					case "ERROR":
						s.fail(fmt.Errorf("ERROR ack %d %s", a.ErrorID, a.ErrorCode))
					}
				})
			if err != nil {
				s.fail(err)
			}
		})
	}
	producers.Wait()
	watchers.Wait()
	cpu := snap.to(snapCPU(k.PID()), 0)
	if err := k.Alive(); err != nil {
		return err
	}

	var lat, rtt []time.Duration
	hits, missing, unwatched, failed := 0, 0, 0, 0
	var firstErr error
	for _, s := range streams {
		lat, rtt = append(lat, s.lat...), append(rtt, s.rtt...)
		hits, missing, unwatched = hits+s.firstHit, missing+s.missing, unwatched+s.unwatched
		if s.err != nil {
			if failed++; firstErr == nil {
				firstErr = fmt.Errorf("%s: %w", s.name, s.err)
			}
		}
	}
	dl, dr := report.NewDist(lat), report.NewDist(rtt)
	ok := len(dl) > 0 && dl.Pct(99) <= 50*time.Millisecond && missing == 0 && failed == 0

	t := &report.Table{Head: []string{"per fragment", "samples", "p50", "p90", "p99", "max"}}
	t.Add("**PERSISTED ack → playlist answer listing it**", len(dl), report.MS(dl.Pct(50)), report.MS(dl.Pct(90)), report.MS(dl.Pct(99)), report.MS(dl.Max()))
	t.Add("playlist request round trip (every request)", len(dr), report.MS(dr.Pct(50)), report.MS(dr.Pct(90)), report.MS(dr.Pct(99)), report.MS(dr.Max()))
	t.Write(b.out)
	m := &report.Table{Head: []string{"", "value", "target"}}
	m.Add("p99 PERSISTED → listed", report.MS(dl.Pct(99)), "≤ 50 ms: "+report.Verdict(ok))
	m.Add("listed by the playlist requested at the ack", fmt.Sprintf("%d of %d (%.1f %%)", hits, len(dl)+missing, 100*float64(hits)/float64(max(1, len(dl)+missing))), "")
	m.Add(fmt.Sprintf("never listed within %s / failed streams", liveGiveUp), fmt.Sprintf("%d / %d", missing, failed), "0")
	m.Add("fragments persisted before the stream's session existed (not measured)", unwatched, "")
	m.Add("kvsd CPU, mean over the run", fmt.Sprintf("%.2f cores", cpu.serverCores()), "")
	m.Add("(CPU of this program: producers and playlist requests / of everything else)", report.Cores(cpu.self)+" / "+report.Cores(cpu.other), "")
	m.Write(b.out)
	fmt.Fprintf(b.out, "%d streams, each sent by a real-time producer (one PutMedia session, every block at its presentation "+
		"time, %d fragments of %s at %.1f Mbit/s; starts spread over one fragment) and watched through its own LIVE HLS session, "+
		"created at the stream's first PERSISTED ack. At every later PERSISTED ack the client requests the session's media "+
		"playlist at once, and again back to back until it lists the fragment: the latency is from the ack's arrival to the "+
		"arrival of the first playlist that lists it, so it includes one playlist round trip and no polling interval. "+
		"A fragment already listed at the ack counts one round trip.\n\n",
		n, clusters, f.FragDur.Round(time.Millisecond), float64(len(f.Raw)*8)/f.duration().Seconds()/1e6)
	if firstErr != nil {
		fmt.Fprintf(b.out, "- errors: %d streams failed; first: %v\n\n", failed, firstErr)
	}
	b.results = append(b.results, result{What: fmt.Sprintf("live (%d streams): p99 PERSISTED → in the LIVE playlist ≤ 50 ms", n),
		Value: report.MS(dl.Pct(99)), OK: ok, Other: cpu.other})
	b.logf("live: p50 %s p99 %s, %d of %d listed at the first request", report.MS(dl.Pct(50)), report.MS(dl.Pct(99)), hits, len(dl)+missing)
	return nil
}
