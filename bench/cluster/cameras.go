package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/kvsd/kvsd/bench/internal/diskprobe"
	"github.com/kvsd/kvsd/bench/internal/loadgen"
	"github.com/kvsd/kvsd/bench/internal/promhist"
	"github.com/kvsd/kvsd/bench/internal/report"
	"github.com/kvsd/kvsd/internal/kvstest"
)

// storeHists is the nodes' storage histograms (promhist.StoreAppend, StoreMedia, StoreCommit),
// each added up over the nodes.
func (c *cluster) storeHists(ctx context.Context) [3]promhist.Histogram {
	var h [3]promhist.Histogram
	for _, n := range c.nodes {
		if n.kv == nil {
			continue
		}
		for i, name := range []string{promhist.StoreAppend, promhist.StoreMedia, promhist.StoreCommit} {
			h[i] = h[i].Plus(promhist.Scrape(ctx, n.kv.http, n.kv.url, name))
		}
	}
	return h
}

// cluster is nodes behind the front door, on the shared catalog and media.
type cluster struct {
	nodes []*node
	fd    *kvstest.FrontDoor
	front *kvsd // the API through the front door
}

// startCluster starts n scaled nodes behind HAProxy, as the README's deployment runs them.
func (b *bench) startCluster(ctx context.Context, name string, n int) (*cluster, error) {
	c := &cluster{}
	var addrs []string
	for range n {
		addr, err := b.in.freeAddr()
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, addr)
	}
	fd, err := b.in.frontDoor(addrs)
	if err != nil {
		return nil, fmt.Errorf("front door: %w", err)
	}
	c.fd = fd
	for i, addr := range addrs {
		nd := b.in.scaledNode(fmt.Sprintf("%s-%d", name, i+1), name, addr, fd.URL)
		if err := nd.start(b.bin); err != nil {
			c.stop()
			return nil, err
		}
		c.nodes = append(c.nodes, nd)
	}
	if err := waitHealthy(ctx, fd, 10*time.Second); err != nil {
		c.stop()
		return nil, err
	}
	c.front = newKvsd(fd.URL, 0)
	return c, nil
}

// stop stops the nodes; the front door stops with the helpers, at the end of the run.
func (c *cluster) stop() {
	for _, n := range c.nodes {
		_ = n.stop()
	}
}

func (c *cluster) pids() []int {
	var out []int
	for _, n := range c.nodes {
		out = append(out, n.pid())
	}
	return out
}

func (b *bench) clusterWatch(c *cluster) watch {
	return func() map[string][]int {
		return map[string][]int{grpKvsd: c.pids(), grpVersitygw: {b.in.s3.PID()}, grpPostgres: postgresPIDs(b.in.dbName),
			grpHAProxy: haproxyPIDs(b.work)}
	}
}

// cameras runs section 2: real-time cameras through the front door, then ListFragments.
func (b *bench) cameras(ctx context.Context) error {
	f := b.media
	n, dur := b.cfg.cameras, b.cfg.camDuration
	fmt.Fprintf(b.out, "## 2. %d real-time cameras through the front door of %s\n\n", n, report.Plural(b.cfg.nodes, "node"))
	c, err := b.startCluster(ctx, "cameras", b.cfg.nodes)
	if err != nil {
		return err
	}
	defer c.stop()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("cam-%03d", i)
	}
	if err := c.front.createStreams(ctx, names, 24); err != nil {
		return err
	}
	fragDur := f.FragmentDuration()
	clusters := int((dur+fragDur-1)/fragDur) + 1 // the last one only completes the one before
	b.logf("cameras: %d cameras, %d fragments of %s each (about %s)", n, clusters-1, fragDur, dur)

	pc := c.front.putClient()
	t0 := time.Now().Add(time.Second)
	w := b.clusterWatch(c)
	cpu0 := snapCPU(w)
	ctx, cancel := context.WithTimeout(ctx, dur+fragDur+2*time.Minute)
	defer cancel()
	probeStop := make(chan struct{})
	var probe []time.Duration
	var probeWG sync.WaitGroup
	probeWG.Go(func() { probe = diskprobe.Run(filepath.Join(b.work, "disk-probe"), 100*time.Millisecond, probeStop) })
	store0 := c.storeHists(ctx)
	sum := loadgen.Summarize(loadgen.RunCameras(ctx, pc, f, names, t0, clusters))
	cpu := cpu0.to(snapCPU(w))
	store := c.storeHists(ctx)
	for i := range store {
		store[i] = store[i].Since(store0[i])
	}
	close(probeStop)
	probeWG.Wait()
	for _, nd := range c.nodes {
		if err := nd.p.Alive(); err != nil {
			return err
		}
	}

	persist, missing, failed, errAcks, firstErr := sum.Persisted, sum.Missing, sum.Failed, sum.ErrAcks, sum.FirstErr
	bytes := int64(len(persist)) * int64(f.MeanFragment())
	dp := report.NewDist(persist)
	ok := len(dp) > 0 && dp.Pct(99) <= 100*time.Millisecond && missing == 0 && failed == 0
	t := &report.Table{Head: []string{"latency per fragment", "samples", "p50", "p90", "p99", "max", "target"}}
	t.AddDist("fragment complete → PERSISTED, through the front door", dp, "p99 ≤ 100 ms: "+report.Verdict(ok))
	t.AddDist("disk probe: 4 KiB write + fdatasync beside PostgreSQL's data, every 100 ms", report.NewDist(probe), "")
	t.Write(b.out)
	m := &report.Table{Head: []string{"during the run", "cores", "CPU ms per MB"}}
	for _, g := range []struct{ name, group string }{{fmt.Sprintf("kvsd (%s together)", report.Plural(b.cfg.nodes, "node")), grpKvsd},
		{"versitygw", grpVersitygw}, {"PostgreSQL", grpPostgres}, {"HAProxy (the front door)", grpHAProxy}, {"this program (the cameras)", grpSelf}} {
		m.Add(g.name, report.Cores(cpu.groups[g.group]), cpu.msPerMB(g.group, bytes))
	}
	m.Add("other (kernel outside processes, other processes)", report.Cores(cpu.other), "")
	m.Add("fragments without PERSISTED / failed sessions / ERROR acks", fmt.Sprintf("%d / %d / %d", missing, failed, errAcks), "")
	m.Write(b.out)
	fmt.Fprintf(b.out, "kvsd's own view (its histograms, the nodes together): Store.Append per fragment (the object's PUT and "+
		"the index commit, not the wait for the stream's turn) %s; of which the PUT %s; each group commit %s.\n\n",
		store[0].Describe(), store[1].Describe(), store[2].Describe())
	fmt.Fprintf(b.out, "%d cameras, one PutMedia session each to the front door (HAProxy with deploy/haproxy.cfg) in front of %s "+
		"on one PostgreSQL database and one versitygw bucket; %d fragments of %s per camera (%.1f Mbit/s), each block written at its "+
		"presentation time, camera starts spread at random over the first %s. Latency runs from the moment the client wrote the "+
		"first bytes of the *next* Cluster (no server can know a fragment ended before that) to the PERSISTED ack arriving. "+
		"Each camera's last fragment (ended by the end of the body) is left out. CPU per MB counts the fragments persisted at "+
		"the mean fragment size. Disk probe: this program appends 4 KiB to a file in the work dir (the file system of "+
		"PostgreSQL's data here) and fdatasyncs it; a PERSISTED waits for PostgreSQL's WAL flush, so the probe's tail, "+
		"when the disk stalls (writeback of versitygw's objects, which it never fsyncs, when they share the disk: %s), "+
		"shows in PERSISTED's.\n\n",
		n, report.Plural(b.cfg.nodes, "kvsd node"), clusters-1, fragDur, float64(len(f.Raw)*8)/f.Duration().Seconds()/1e6, fragDur,
		b.in.s3Where)
	if firstErr != nil {
		fmt.Fprintf(b.out, "- errors: %d sessions failed; first: %v\n\n", failed, firstErr)
	}
	b.results = append(b.results, report.Result{What: fmt.Sprintf("cameras (%d, front door): p99 complete → PERSISTED ≤ 100 ms", n),
		Value: report.MS(dp.Pct(99)), OK: ok, Other: cpu.other})
	b.logf("cameras: p50 %s p99 %s max %s", report.MS(dp.Pct(50)), report.MS(dp.Pct(99)), report.MS(dp.Max()))
	return b.list(ctx, c)
}
