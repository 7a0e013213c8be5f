package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/kvsd/kvsd/bench/internal/kvsdproc"
	"github.com/kvsd/kvsd/bench/internal/mkvload"
	"github.com/kvsd/kvsd/bench/internal/report"
	"github.com/kvsd/kvsd/internal/ingest"
	"github.com/kvsd/kvsd/producer"
)

// producerLog is what one stream's producer reported, with arrival times.
type producerLog struct {
	name       string
	mu         sync.Mutex
	persisted  []time.Time // arrival of each PERSISTED
	timecodes  []time.Time // producer timestamp of each PERSISTED fragment
	reconnects []time.Time
	final      producer.Stats
	err        error
}

// firstPersistedAfterReconnect is the first PERSISTED that arrived after the first
// reconnect after t: the new connection's, not one the killed node sent before it died.
func (p *producerLog) firstPersistedAfterReconnect(t time.Time) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var rc time.Time
	for _, r := range p.reconnects {
		if r.After(t) {
			rc = r
			break
		}
	}
	if rc.IsZero() {
		return time.Time{}, false
	}
	for _, at := range p.persisted {
		if at.After(rc) {
			return at, true
		}
	}
	return time.Time{}, false
}

func (p *producerLog) persistedAfter(t time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.persisted) > 0 && p.persisted[len(p.persisted)-1].After(t)
}

// failover runs section 3.
func (b *bench) failover(ctx context.Context) error {
	f := b.media
	n, kills := b.cfg.failStreams, b.cfg.kills
	leaseTTL := ingest.DefaultLeaseTTL
	fmt.Fprintf(b.out, "## 3. Failover under %s: kill -9 of a node, %s\n\n", report.Plural(n, "stream"), report.Plural(kills, "time"))
	c, err := b.startCluster(ctx, "failover", b.cfg.nodes)
	if err != nil {
		return err
	}
	defer c.stop()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("fo-%03d", i)
	}
	if err := c.front.createStreams(ctx, names, 24); err != nil {
		return err
	}

	// Every event wakes the waits below.
	changed := make(chan struct{}, 1)
	wake := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	waitFor := func(cond func() bool, within time.Duration) bool {
		deadline := time.NewTimer(within)
		defer deadline.Stop()
		for !cond() {
			select {
			case <-changed:
			case <-deadline.C:
				return cond()
			case <-ctx.Done():
				return false
			}
		}
		return true
	}

	pctx, stopProducers := context.WithCancel(ctx)
	defer stopProducers()
	logs := make([]*producerLog, n)
	var wg sync.WaitGroup
	for i, name := range names {
		pl := &producerLog{name: name}
		logs[i] = pl
		cfg := producer.Config{Endpoint: c.front.url, Region: kvsdproc.Region, StreamName: name,
			Credentials: credentials.NewStaticCredentialsProvider(kvsdproc.AccessKeyID, kvsdproc.SecretAccessKey, ""),
			OnEvent: func(ev producer.Event) {
				now := time.Now()
				pl.mu.Lock()
				switch ev.Kind {
				case producer.EventFragmentPersisted:
					pl.persisted = append(pl.persisted, now)
					pl.timecodes = append(pl.timecodes, ev.Timecode)
				case producer.EventReconnect:
					pl.reconnects = append(pl.reconnects, now)
				}
				pl.mu.Unlock()
				wake()
			}}
		p, err := producer.New(cfg)
		if err != nil {
			return err
		}
		// The test video looped for longer than the run; the producer paces it to real time.
		body := mkvload.NewPaced(pctx, f, time.Now().Add(-time.Hour), 1<<30, func(uint64, time.Time) {})
		src := producer.NewMKVSource(body, false)
		wg.Go(func() {
			st, err := p.Run(pctx, src)
			src.Close()
			pl.mu.Lock()
			pl.final, pl.err = st, err
			pl.mu.Unlock()
			wake()
		})
	}
	defer func() { stopProducers(); wg.Wait() }()
	steady := func(since time.Time) func() bool {
		return func() bool {
			for _, pl := range logs {
				if !pl.persistedAfter(since) {
					return false
				}
			}
			return true
		}
	}
	b.logf("failover: %d producers through the front door", n)
	if !waitFor(steady(time.Time{}), 60*time.Second) {
		return errors.New("not every stream got a PERSISTED within 60 s")
	}

	var samples []time.Duration
	timeouts, affectedTotal := 0, 0
	t := &report.Table{Head: []string{"kill", "node", "its streams", "first PERSISTED elsewhere: min", "max"}}
	for k := range kills {
		holders, err := b.in.leaseHolders(ctx)
		if err != nil {
			return err
		}
		// The node holding most streams: the kill that moves most.
		var victim *node
		var affected []*producerLog
		for _, nd := range c.nodes {
			var its []*producerLog
			for _, pl := range logs {
				if holders[pl.name] == nd.pid() {
					its = append(its, pl)
				}
			}
			if len(its) > len(affected) {
				victim, affected = nd, its
			}
		}
		if victim == nil {
			return errors.New("no node holds a stream lease")
		}
		t0 := time.Now()
		victim.kill()
		b.logf("failover: kill %d: kill -9 of %s, which held %d streams", k+1, victim.name, len(affected))
		moved := func() bool {
			for _, pl := range affected {
				if _, ok := pl.firstPersistedAfterReconnect(t0); !ok {
					return false
				}
			}
			return true
		}
		waitFor(moved, leaseTTL+30*time.Second)
		var round []time.Duration
		for _, pl := range affected {
			at, ok := pl.firstPersistedAfterReconnect(t0)
			if !ok {
				timeouts++
				continue
			}
			round = append(round, at.Sub(t0))
		}
		affectedTotal += len(affected)
		samples = append(samples, round...)
		dr := report.NewDist(round)
		t.Add(k+1, victim.name, len(affected), report.MS(dr.Pct(0)), report.MS(dr.Max()))
		// The node comes back, as a supervisor would restart it, and every stream persists
		// again before the next kill.
		back := time.Now()
		if err := victim.start(b.bin); err != nil {
			return fmt.Errorf("restart %s: %w", victim.name, err)
		}
		if !waitFor(steady(back), leaseTTL+30*time.Second) {
			return fmt.Errorf("kill %d: not every stream persisted again within %s of the restart", k+1, leaseTTL+30*time.Second)
		}
	}
	stopProducers()
	wg.Wait()

	// Every fragment acknowledged PERSISTED must be listed, whichever node took it.
	lost, acked, pending := 0, 0, int64(0)
	var firstLost string
	for _, pl := range logs {
		if pl.err != nil && !errors.Is(pl.err, context.Canceled) {
			return fmt.Errorf("producer of %s: %w", pl.name, pl.err)
		}
		pending += pl.final.Pending
		if len(pl.timecodes) == 0 {
			continue
		}
		tcs := make([]int64, len(pl.timecodes))
		for i, tc := range pl.timecodes {
			tcs[i] = tc.UnixMilli()
		}
		sort.Slice(tcs, func(i, j int) bool { return tcs[i] < tcs[j] })
		frags, _, err := c.front.listRange(ctx, pl.name, tcs[0]-1000, tcs[len(tcs)-1]+1000)
		if err != nil {
			return fmt.Errorf("list %s: %w", pl.name, err)
		}
		have := map[int64]string{}
		for _, f := range frags {
			have[f.Ms] = f.Number
		}
		var numbers []string
		for _, ms := range tcs {
			acked++
			num, ok := have[ms]
			if !ok {
				lost++
				if firstLost == "" {
					firstLost = fmt.Sprintf("%s at %s: not listed", pl.name, time.UnixMilli(ms).UTC().Format(time.RFC3339Nano))
				}
				continue
			}
			numbers = append(numbers, num)
		}
		// Listed is not enough: the media must be there too.
		missing, err := c.front.missingMedia(ctx, pl.name, numbers)
		if err != nil {
			return fmt.Errorf("read back %s: %w", pl.name, err)
		}
		lost += len(missing)
		if len(missing) > 0 && firstLost == "" {
			firstLost = fmt.Sprintf("%s fragment %s: listed, but GetMediaForFragmentList does not return it", pl.name, missing[0])
		}
	}

	d := report.NewDist(samples)
	limit := leaseTTL + 2*time.Second
	ok := len(d) > 0 && d.Pct(99) <= limit && timeouts == 0 && lost == 0 && kills >= 10
	s := &report.Table{Head: []string{"failover", "value", "target"}}
	s.Add("kills", kills, "≥ 10")
	s.Add("streams moved (samples)", fmt.Sprintf("%d of %d", len(d), affectedTotal), "")
	s.Add("kill -9 → first PERSISTED on another node: p50", report.MS(d.Pct(50)), "")
	s.Add("p99", report.MS(d.Pct(99)), fmt.Sprintf("≤ lease expiry + 2 s = %s", limit))
	s.Add("max", report.MS(d.Max()), "")
	s.Add(fmt.Sprintf("streams with no PERSISTED elsewhere within %s", leaseTTL+30*time.Second), timeouts, "0")
	s.Add("fragments acknowledged PERSISTED / of them not listed or not readable afterwards", fmt.Sprintf("%d / %d", acked, lost), "0 lost")
	s.Add("fragments unconfirmed when the producers stopped", pending, "")
	s.Add("result", "", report.Verdict(ok))
	s.Write(b.out)
	t.Write(b.out)
	fmt.Fprintf(b.out, "%s (the producer package, what `kvsd put` runs: reconnects with backoff, retries "+
		"ConnectionLimitExceeded at least every second, resends what is not PERSISTED) stream the test video in real time "+
		"through the front door to %s on one PostgreSQL database and one versitygw bucket. Each round kills with SIGKILL the "+
		"node holding most stream leases (read from stream_leases) and times, for each of its streams, the first PERSISTED "+
		"that arrives on a connection opened after the kill; the node is then started again on the same address and every "+
		"stream must persist again before the next round. The lease expires %s after the dead node's last renewal. At the "+
		"end every fragment any producer saw PERSISTED is looked up by its producer timestamp in ListFragments through the "+
		"front door, and read back with GetMediaForFragmentList (50 at a time): the answer must carry each one's fragment number.\n\n", report.Plural(n, "producer"), report.Plural(b.cfg.nodes, "kvsd node"), leaseTTL)
	if firstLost != "" {
		fmt.Fprintf(b.out, "- errors: %d acknowledged fragments lost; first: %s\n\n", lost, firstLost)
	}
	b.results = append(b.results, report.Result{What: fmt.Sprintf("failover (%d streams, %s): p99 kill → PERSISTED elsewhere ≤ %s, none lost",
		n, report.Plural(kills, "kill"), limit), Value: fmt.Sprintf("%s, %d lost", report.MS(d.Pct(99)), lost), OK: ok, Other: -1})
	b.logf("failover: p50 %s p99 %s max %s over %d samples; %d of %d acknowledged fragments lost",
		report.MS(d.Pct(50)), report.MS(d.Pct(99)), report.MS(d.Max()), len(d), lost, acked)
	return nil
}

// missingMedia reads the fragments back with GetMediaForFragmentList, 50 at a time, and
// returns those whose number the answer lacks (each fragment's chunk carries its number in
// its tags).
func (k *kvsd) missingMedia(ctx context.Context, stream string, numbers []string) ([]string, error) {
	var missing []string
	for len(numbers) > 0 {
		batch := numbers[:min(50, len(numbers))]
		numbers = numbers[len(batch):]
		body, _, err := k.call(ctx, "getMediaForFragmentList", map[string]any{"StreamName": stream, "Fragments": batch})
		if err != nil {
			return nil, err
		}
		for _, n := range batch {
			if !bytes.Contains(body, []byte(n)) {
				missing = append(missing, n)
			}
		}
	}
	return missing, nil
}
