package imagegen

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/diag"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/mkv"
)

// TestOverloadFairBoundedVisible: 8 streams with a backlog of 12 fragments each and one
// render at a time, released by the test: a machine with far fewer cores than cameras. Every
// stream advances in turn (no stream finishes while another has nothing), the generator holds
// at most one decoder per stream, each stream's lag is in /metrics and the doctor and is
// logged once past the threshold, and fragments removed before their images were made are
// counted and logged once for their stream.
func TestOverloadFairBoundedVisible(t *testing.T) {
	const streams, frags = 8, 12
	e := newEnv(t)
	e.decs.gate = make(chan struct{})
	var mu sync.Mutex
	t0 := time.UnixMilli(time.Now().Add(-time.Hour).UnixMilli() / 1000 * 1000)
	now := t0.Add(frags * time.Second)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	reg := prometheus.NewRegistry()
	e.start(func(c *Config) {
		c.Workers, c.RenderWorkers, c.LagWarn, c.Now, c.Registerer = 3, 1, 30*time.Second, clock, reg
	})
	names := make([]string, streams)
	for i := range names {
		names[i] = fmt.Sprintf("cam%d", i)
		e.createStream(names[i], 24)
		e.configure(names[i], imageConfig("s3://images/"+names[i], 1000))
	}
	<-e.gen.Ready()
	// Every stream's backlog is stored before any is woken: a turn that ran during the puts
	// would find a part of its stream's backlog, and the round-robin below would not be even.
	for _, n := range names {
		e.settle(n)
		e.putQuietly(n, seconds(t0, frags, imageTag)...)
	}
	for _, n := range names {
		e.gen.Wake(fragstore.KeyOf(e.stream(n)))
	}
	perStream := func() map[string]int {
		out := map[string]int{}
		for _, k := range e.objs.keys() {
			out[strings.Split(k, "/")[1]]++
		}
		return out
	}
	release := func(n int) {
		for range n {
			e.decs.gate <- struct{}{}
		}
	}

	// A turn's worth for each stream (4 fragments a turn): all advanced, none ran away.
	release(4 * streams)
	e.objs.wait(t, 4*streams)
	counts := perStream()
	require.Len(t, counts, streams, "every stream got images: %v", counts)
	for n, c := range counts {
		require.LessOrEqual(t, c, 2*4, "%s ran ahead: %v", n, counts)
		require.Less(t, c, frags, "%s: %v", n, counts)
	}
	made, _, _ := e.decs.counts()
	require.LessOrEqual(t, made, streams, "one decoder per stream")
	// Each stream's lag counts from its oldest fragment without images, once the turn that
	// made its last image has ended (the image is stored a moment before).
	lags := map[string]float64{}
	require.Eventually(t, func() bool {
		ok := true
		for _, n := range names {
			lags[n] = gathered(t, reg, "kvsd_images_lag_seconds", n)
			ok = ok && lags[n] <= float64(frags-counts[n])
		}
		return ok
	}, 10*time.Second, time.Millisecond, "lags after the first turns: %v, images %v", lags, counts)

	// A minute later nothing more was rendered: every stream lags, in /metrics and the doctor.
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	for _, n := range names {
		lag := gathered(t, reg, "kvsd_images_lag_seconds", n)
		require.Greater(t, lag, 60.0, "%s", n)
		require.Less(t, lag, 60.0+frags, "%s", n)
		f := findingOf(e.gen.Diagnose(context.Background(), e.stream(n)), "IMAGES_LAG")
		require.Equal(t, diag.Warn, f.Level, "%s: %+v", n, f)
		require.Contains(t, f.Message, "behind this stream")
	}

	// cam0's waiting fragments are removed (retention, the disk budget) before their images.
	st0 := e.stream(names[0])
	done0 := counts[names[0]]
	_, err := e.store.Expire(context.Background(), fragstore.KeyOf(st0), t0.Add(frags*time.Second))
	require.NoError(t, err)

	// Let everything through.
	close(e.decs.gate)
	for _, n := range names {
		e.settle(n)
	}
	final := perStream()
	// The fragment cam0 was rendering when its backlog went (read already) is finished.
	require.Contains(t, []int{done0, done0 + 1}, final[names[0]], "cam0 had nothing left to render")
	done0 = final[names[0]]
	for _, n := range names[1:] {
		require.Equal(t, frags, final[n], n)
	}
	require.Equal(t, float64(frags-done0), gathered(t, reg, "kvsd_images_expired_fragments_total", names[0]))
	f := findingOf(e.gen.Diagnose(context.Background(), st0), "IMAGES_EXPIRED_UNMADE")
	require.Equal(t, diag.Warn, f.Level)
	require.Contains(t, f.Message, fmt.Sprintf("%d fragments were removed", frags-done0))
	logs := e.logs.String()
	require.Equal(t, 1, strings.Count(logs, "fragments expired before their images were made"), logs)
	require.Contains(t, logs, "stream="+names[0]+" fragments=")
	for i, n := range names {
		// The WARN comes at a turn that leaves the stream behind: every stream but cam0 (its
		// backlog went) whose turn in flight at the minute's jump could not finish it.
		if i > 0 && counts[n]+4 < frags {
			require.Equal(t, 1, strings.Count(logs, "can serve; streams are served in turn\" component=imagegen stream="+n+" "), "one lag WARN for %s: %s", n, logs)
		}
		require.Zero(t, gathered(t, reg, "kvsd_images_lag_seconds", n), "%s caught up", n)
	}
}

// gathered is the value of the series name{stream=stream} in reg.
func gathered(t *testing.T, reg *prometheus.Registry, name, stream string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == stream {
				if c := m.GetCounter(); c != nil {
					return c.GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no %s{stream=%q}", name, stream)
	return 0
}

func findingOf(r diag.Report, code string) diag.Finding {
	for _, f := range r.Findings {
		if f.Code == code {
			return f
		}
	}
	return diag.Finding{}
}

// TestLagWhileWaitingForAWorker: a caught-up stream that gets a new fragment while every
// worker is busy with another stream shows its lag growing before its turn comes.
func TestLagWhileWaitingForAWorker(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	t0 := time.UnixMilli(time.Now().Add(-time.Hour).UnixMilli() / 1000 * 1000)
	now := t0
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	reg := prometheus.NewRegistry()
	e.start(func(c *Config) { c.Workers, c.RenderWorkers, c.Now, c.Registerer = 1, 1, clock, reg })
	e.createStream("busy", 24)
	e.configure("busy", imageConfig("s3://images/busy", 1000))
	e.createStream("idle", 24)
	e.configure("idle", imageConfig("s3://images/idle", 1000))
	<-e.gen.Ready()
	e.put("idle", seconds(t0, 1, imageTag)...)
	e.objs.wait(t, 1)
	e.settle("idle")
	require.Zero(t, gathered(t, reg, "kvsd_images_lag_seconds", "idle"), "caught up")

	e.decs.gate = make(chan struct{}) // the only worker will hang in busy's render
	e.put("busy", seconds(t0.Add(time.Second), 4, imageTag)...)
	require.Eventually(t, func() bool { return e.gen.work.Busy(fragstore.KeyOf(e.stream("busy"))) }, 10*time.Second, time.Millisecond)
	mu.Lock()
	now = t0.Add(2 * time.Second)
	mu.Unlock()
	e.put("idle", frag{start: t0.Add(time.Second), server: now, tags: []mkv.SimpleTag{imageTag}})
	mu.Lock()
	now = now.Add(45 * time.Second)
	mu.Unlock()
	require.Equal(t, 45.0, gathered(t, reg, "kvsd_images_lag_seconds", "idle"), "waiting for the worker")
	close(e.decs.gate)
	e.settle("idle")
	e.settle("busy")
	require.Zero(t, gathered(t, reg, "kvsd_images_lag_seconds", "idle"))
}
