package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/kvsd/kvsd/bench/internal/child"
	"github.com/kvsd/kvsd/bench/internal/kvsdproc"
	"github.com/kvsd/kvsd/bench/internal/loadgen"
	"github.com/kvsd/kvsd/bench/internal/report"
	"github.com/kvsd/kvsd/internal/putmedia"
)

// loadResult is one replay load against one server.
type loadResult struct {
	loadgen.Replayed
	cpu cpuUse
}

func (r *loadResult) merge(o *loadResult) *loadResult {
	return &loadResult{Replayed: r.Replayed.Plus(o.Replayed), cpu: r.cpu.merge(o.cpu)}
}

func (r *loadResult) mbps() float64 { return r.MBps() }

// replayLoad is loadgen.Replay (bench/ingest's throughput load) with the CPU of the groups w
// names.
func replayLoad(ctx context.Context, pc *putmedia.Client, names []string, body []byte, dur time.Duration, wantAcks int, w watch) *loadResult {
	cpu0 := snapCPU(w)
	r := loadgen.Replay(ctx, pc, names, body, dur, wantAcks)
	return &loadResult{Replayed: r, cpu: cpu0.to(snapCPU(w))}
}

// replay runs section 1.
func (b *bench) replay(ctx context.Context) error {
	var running []*node
	defer func() {
		for _, n := range running {
			_ = n.stop()
		}
		b.settle()
	}()
	f := b.media
	fmt.Fprintf(b.out, "## 1. Replay: scaled node, embedded single node, baseline\n\n")
	b.logf("replay: starting the baseline, a scaled node and an embedded node")
	self, err := os.Executable()
	if err != nil {
		return err
	}
	base, err := child.Start("baseline", self, []string{"-baseline-server", "-s3-endpoint", b.in.s3.Endpoint, "-pg-url", b.in.pgURL,
		"-frag-bytes", fmt.Sprint(f.MeanFragment())}, []string{kvsdproc.ChildEnv + "=1"}, filepath.Join(b.work, "baseline.log"))
	if err != nil {
		return err
	}
	defer base.Stop()
	basePC := kvsdproc.PutClient(base.URL, kvsdproc.NewHTTPClient())

	t := &report.Table{Head: []string{"streams", "server", "MB/s", "fragments/s", "PutMedia calls", "server CPU ms/MB",
		"versitygw CPU ms/MB", "PostgreSQL CPU ms/MB", "load CPU ms/MB", "other CPU (cores)", "of baseline", "target ≥ 70 %"}}
	var notes []string
	for _, n := range b.cfg.streams {
		// Fresh nodes for each stream count, whose data is removed after it (settle): a
		// longer -replay-duration stores tens of GB per count, and a disk filled by the
		// counts before would fail the next one.
		scaled, embedded, err := b.replayNodes(n)
		if err != nil {
			return err
		}
		running = append(running, scaled, embedded) // stop is idempotent
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("replay%d-%03d", n, i)
		}
		for _, nd := range []*node{scaled, embedded} {
			if err := nd.kv.createStreams(ctx, names, 24); err != nil {
				return err
			}
		}
		// baseline, scaled, embedded, embedded, scaled, baseline, each for half the time, so
		// that a machine that speeds up or slows down during the row favours none of them.
		half := b.cfg.replayDuration / 2
		load := func(who string, pc *putmedia.Client, group string, pid func() int) (*loadResult, error) {
			b.logf("replay: %s against %s for %s", report.Plural(n, "stream"), who, half)
			w := func() map[string][]int {
				return map[string][]int{group: {pid()}, grpVersitygw: {b.in.s3.PID()}, grpPostgres: postgresPIDs(b.in.dbName)}
			}
			r := replayLoad(ctx, pc, names, f.Raw, half, len(f.Clusters), w)
			return r, ctx.Err()
		}
		order := []struct {
			who   string
			pc    *putmedia.Client
			group string
			pid   func() int
		}{
			{"the baseline", basePC, grpBaseline, base.PID},
			{"the scaled node", scaled.kv.putClient(), grpKvsd, scaled.pid},
			{"the embedded node", embedded.kv.putClient(), grpKvsd, embedded.pid},
		}
		var res [3]*loadResult
		for _, i := range []int{0, 1, 2, 2, 1, 0} {
			o := order[i]
			r, err := load(o.who, o.pc, o.group, o.pid)
			if err != nil {
				return err
			}
			if res[i] == nil {
				res[i] = r
			} else {
				res[i] = res[i].merge(r)
			}
		}
		for _, p := range []interface{ Alive() error }{base, scaled.p, embedded.p} {
			if err := p.Alive(); err != nil {
				return err
			}
		}
		rb, rs, re := res[0], res[1], res[2]
		row := func(who string, r *loadResult, group string, ratio, target string) {
			t.Add(n, who, fmt.Sprintf("%.1f", r.mbps()), fmt.Sprintf("%.1f", float64(r.Acks)/r.Wall.Seconds()), r.Puts,
				r.cpu.msPerMB(group, r.Bytes), r.cpu.msPerMB(grpVersitygw, r.Bytes), r.cpu.msPerMB(grpPostgres, r.Bytes),
				r.cpu.msPerMB(grpSelf, r.Bytes), report.Cores(r.cpu.other), ratio, target)
		}
		ratio := rs.mbps() / rb.mbps() * 100
		row("baseline (S3 PUT + one INSERT per fragment)", rb, grpBaseline, "", "")
		row("kvsd, scaled node (PostgreSQL + S3)", rs, grpKvsd, fmt.Sprintf("%.0f %%", ratio), report.Verdict(ratio >= 70))
		row("kvsd, embedded single node (bbolt + disk)", re, grpKvsd, fmt.Sprintf("%.0f %%", re.mbps()/rb.mbps()*100), "")
		b.results = append(b.results, report.Result{What: fmt.Sprintf("replay, %s: scaled node/baseline ≥ 70 %%", report.Plural(n, "stream")),
			Value: fmt.Sprintf("%.0f %%", ratio), OK: ratio >= 70, Other: max(rb.cpu.other, rs.cpu.other)})
		for _, x := range []struct {
			who string
			r   *loadResult
		}{{"baseline", rb}, {"scaled node", rs}, {"embedded node", re}} {
			if x.r.Errs > 0 || x.r.Short > 0 {
				notes = append(notes, fmt.Sprintf("%d streams, %s: %d of %d calls failed (first: %v), %d complete calls got fewer than %d acks",
					n, x.who, x.r.Errs, x.r.Puts, x.r.FirstErr, x.r.Short, len(f.Clusters)))
			}
		}
		b.logf("replay: %d streams: baseline %.1f MB/s, scaled %.1f MB/s (%.0f %%), embedded %.1f MB/s", n, rb.mbps(), rs.mbps(), ratio, re.mbps())
		_ = scaled.stop()
		_ = embedded.stop()
		b.settle()
	}
	t.Write(b.out)
	fmt.Fprintf(b.out, "Each stream sends the %.1f MB test file (%d fragments of %s) through PutMedia again and again, in 32 KiB "+
		"HTTP chunks, as fast as the server takes it, for %s per server and stream count, in halves ordered baseline, scaled, "+
		"embedded, embedded, scaled, baseline; calls in flight at the end of a half finish. Each call is its own session, so the "+
		"same timecodes come again, as when a producer resends. MB/s = 10^6 bytes of PutMedia body acknowledged per second of "+
		"wall time, all streams together. The **scaled node** is one kvsd with `--catalog` (the fresh PostgreSQL database) and "+
		"`--media s3://` (versitygw), reached directly; PERSISTED means its object is stored and its index row committed. The "+
		"**embedded node** is kvsd with its bbolt catalog and disk media in a data dir beside versitygw's. The **baseline** "+
		"(this program's -baseline-server mode, a separate process) stores every %d bytes received (the mean fragment) as one "+
		"object in the same bucket (PutObject, If-None-Match *) and one row in the same database (one autocommitted INSERT), "+
		"then answers one line: what any server that acknowledges fragments on this design must do, without parsing, "+
		"signatures, encryption or fencing. CPU columns are milliseconds of CPU (user+system) per MB acknowledged: the server "+
		"(kvsd or the baseline process), versitygw, PostgreSQL (the backends of this database plus the server's WAL writer, "+
		"checkpointer and background writer) and this program (the producers); \"other\" is everything else on the machine, "+
		"in cores (the kernel outside processes, other processes: well above 0 means the run was disturbed). versitygw never "+
		"fsyncs: its figures are page-cache figures.\n\n",
		float64(len(f.Raw))/1e6, len(f.Clusters), f.FragmentDuration().Round(time.Millisecond), b.cfg.replayDuration, f.MeanFragment())
	for _, n := range notes {
		fmt.Fprintf(b.out, "- errors: %s\n", n)
	}
	if len(notes) > 0 {
		fmt.Fprintln(b.out)
	}
	return nil
}

// replayNames names one stream count's nodes and the scaled node's key prefix (its site).
func replayNames(streams int) (scaled, site, embedded string) {
	return fmt.Sprintf("replay-scaled-%d", streams), fmt.Sprintf("replay%d", streams), fmt.Sprintf("replay-embedded-%d", streams)
}

// replayNodes starts the scaled and the embedded node for one stream count; the caller stops
// them.
func (b *bench) replayNodes(streams int) (scaled, embedded *node, err error) {
	scaledName, site, embeddedName := replayNames(streams)
	var nodes [2]*node
	for i, mk := range []func(string) *node{
		func(addr string) *node { return b.in.scaledNode(scaledName, site, addr, "") },
		func(addr string) *node { return b.in.embeddedNode(embeddedName, addr) },
	} {
		addr, err := b.in.freeAddr()
		if err != nil {
			return nil, nil, err
		}
		n := mk(addr)
		if err := n.start(b.bin); err != nil {
			if i == 1 {
				_ = nodes[0].stop()
			}
			return nil, nil, err
		}
		nodes[i] = n
	}
	return nodes[0], nodes[1], nil
}

// settle removes what the replay stored (gigabytes in versitygw's directory, which never
// fsyncs, and the nodes' data dirs) and flushes dirty pages, so that the next stream count or
// section does not pay for their writeback (PostgreSQL's commits behind a disk busy with it
// took hundreds of ms) and the disk does not fill up over the counts.
func (b *bench) settle() {
	dirs := []string{filepath.Join(b.in.s3.Dir, bucket, "baseline")}
	for _, n := range b.cfg.streams {
		scaled, site, embedded := replayNames(n)
		dirs = append(dirs, filepath.Join(b.in.s3.Dir, bucket, site), b.in.dataDir(scaled), b.in.dataDir(embedded))
	}
	for _, dir := range dirs {
		_ = os.RemoveAll(dir)
	}
	syscall.Sync()
}
