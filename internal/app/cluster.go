package app

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kvsd/kvsd/internal/catalog"
	"github.com/kvsd/kvsd/internal/catalog/postgres"
	"github.com/kvsd/kvsd/internal/diag"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/playback"
	"github.com/kvsd/kvsd/internal/stream"
	"github.com/kvsd/kvsd/internal/streamwork"
)

// DefaultClusterPoll is how often a node of a cluster looks for other nodes' changes behind
// the catalog's notifications (Config.ClusterPoll's default).
const DefaultClusterPoll = 2 * time.Second

// clusterWatch makes the changes of the other nodes sharing the PostgreSQL catalog visible on
// this one: stream records (so PutMedia sessions read them again) and committed fragments
// (so live GetMedia readers of a stream ingested elsewhere wake). Notifications wake at once;
// a poll behind them covers those lost while the listening connection was down.
type clusterWatch struct {
	db      *postgres.DB
	streams *stream.Service
	hub     *playback.Hub
	poll    time.Duration
	log     *slog.Logger
	notes   *prometheus.CounterVec
}

func newClusterWatch(db *postgres.DB, streams *stream.Service, hub *playback.Hub, poll time.Duration, log *slog.Logger, reg prometheus.Registerer) *clusterWatch {
	if poll <= 0 {
		poll = DefaultClusterPoll
	}
	w := &clusterWatch{db: db, streams: streams, hub: hub, poll: poll, log: log,
		notes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kvsd_cluster_notifications_total",
			Help: "Notifications of changes received from the catalog (this node's and other nodes'), by kind."}, []string{"kind"})}
	reg.MustRegister(w.notes)
	return w
}

// Run listens and polls until ctx ends.
func (w *clusterWatch) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() { // owned: Run waits for it below
		defer close(done)
		_ = w.db.Listen(ctx, postgres.Listener{OnNotify: w.notify, OnConnect: w.resync})
	}()
	defer func() { <-done }()
	t := time.NewTicker(w.poll)
	defer t.Stop()
	digest := ""
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		d, err := w.db.StreamsDigest(ctx)
		if err != nil {
			if ctx.Err() == nil {
				w.log.Warn("cluster: polling stream records", "err", err)
			}
			continue
		}
		if d != digest {
			if digest != "" {
				w.streams.NoteChange()
			}
			digest = d
		}
		w.hub.WakeAll() // live readers look at the index again, whatever was missed
	}
}

func (w *clusterWatch) notify(channel, payload string) {
	switch channel {
	case postgres.StreamsChannel:
		w.streams.NoteChange()
		w.hub.WakeAll()                         // a deleted stream's readers end
		w.notes.WithLabelValues("stream").Inc() // after: counted means acted on
	case postgres.FragmentsChannel:
		k, _, err := postgres.ParseFragmentPayload(payload)
		if err != nil {
			w.log.Warn("cluster: notification not understood", "err", err)
			return
		}
		w.hub.Wake(fragstore.Key(k))
		w.notes.WithLabelValues("fragment").Inc()
	}
}

// resync runs at every (re)connection of the listener: what changed meanwhile is unknown.
func (w *clusterWatch) resync() {
	w.streams.NoteChange()
	w.hub.WakeAll()
}

// clusterStatus shows a --catalog cluster as the catalog sees it, for `kvsd doctor` (a
// Source) and /metrics (a Collector): the nodes (holders of live stream leases and work
// claims), who holds each stream's ingest, image and notification work, and how far the
// image and notification work lags behind the fragment index.
type clusterStatus struct {
	claims interface {
		ListWork(ctx context.Context) ([]catalog.WorkClaim, error)
		ClaimWork(ctx context.Context, kind, key, holder string, ttl time.Duration) (catalog.WorkClaim, error)
		ReleaseWork(ctx context.Context, c catalog.WorkClaim) error
	}
	log   *slog.Logger
	store *fragstore.Store
	node  string
	work  []clusterWork // images, notifications
}

// clusterWork is one kind of shared work and its durable cursors.
type clusterWork struct {
	kind, label string // the claim kind ("imagegen"), and in words ("images")
	cursors     *streamwork.Cursors
}

// lagLimit bounds how many fragments after a cursor are counted.
const lagLimit = 1000

// clusterLagWarn is the age of the oldest fragment waiting past which doctor warns.
const clusterLagWarn = time.Minute

// lag is how far k's work of w is behind: fragments after its cursor (up to lagLimit) and the
// server time of the oldest of them; ok is false when k has no cursor (the work is off).
func (c *clusterStatus) lag(ctx context.Context, w clusterWork, k fragstore.Key) (n int, oldest time.Time, ok bool, err error) {
	seq, ok, err := w.cursors.Load(ctx, k)
	if err != nil || !ok {
		return 0, time.Time{}, ok, err
	}
	frags, err := c.store.After(ctx, k, seq, lagLimit)
	if err != nil {
		return 0, time.Time{}, true, err
	}
	if len(frags) > 0 {
		oldest = frags[0].ServerTime
	}
	return len(frags), oldest, true, nil
}

// nodeKind is the claim kind by which each node announces itself (key and holder: its id), so
// that idle nodes are listed too.
const nodeKind = "node"

// announce keeps this node's "node" claim alive until ctx ends, then releases it.
func (c *clusterStatus) announce(ctx context.Context) error {
	tick := time.NewTicker(workClaimTTL / 3)
	defer tick.Stop()
	var held catalog.WorkClaim
	for {
		cctx, cancel := context.WithTimeout(ctx, workClaimTTL)
		w, err := c.claims.ClaimWork(cctx, nodeKind, c.node, c.node, workClaimTTL)
		cancel()
		if err == nil {
			held = w
		} else if ctx.Err() == nil {
			c.log.Warn("announcing this node in the cluster's catalog", "err", err)
		}
		select {
		case <-ctx.Done():
			if held.Epoch != 0 {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), workClaimTTL)
				_ = c.claims.ReleaseWork(rctx, held) // or it expires
				cancel()
			}
			return nil
		case <-tick.C:
		}
	}
}

// nodes lists the distinct holders, this node first.
func (c *clusterStatus) nodes(list []catalog.WorkClaim) []string {
	var out []string
	for _, w := range list {
		if w.Holder != c.node && !slices.Contains(out, w.Holder) {
			out = append(out, w.Holder)
		}
	}
	slices.Sort(out)
	return append([]string{c.node}, out...)
}

func (c *clusterStatus) Diagnose(ctx context.Context, st *stream.Stream) diag.Report {
	r := diag.Report{Component: "cluster"}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	list, err := c.claims.ListWork(ctx)
	if err != nil {
		r.Findings = append(r.Findings, diag.Finding{Level: diag.Warn, Code: "CLUSTER_UNREADABLE",
			Message: "reading the cluster's leases and work claims: " + err.Error(), Fix: "check that PostgreSQL (--catalog) is reachable"})
		return r
	}
	nodes := c.nodes(list)
	r.Findings = append(r.Findings, diag.Finding{Level: diag.Info, Code: "CLUSTER_NODES",
		Message: fmt.Sprintf("%d node(s) in the cluster: %s (this node first)", len(nodes), strings.Join(nodes, ", "))})

	k := fragstore.KeyOf(st)
	kinds := []struct{ kind, key, label string }{{"ingest", st.Name, "ingest"}}
	for _, w := range c.work {
		kinds = append(kinds, struct{ kind, key, label string }{w.kind, streamwork.StateKey(k), w.label})
	}
	var held []string
	for _, kd := range kinds {
		i := slices.IndexFunc(list, func(w catalog.WorkClaim) bool { return w.Kind == kd.kind && w.Key == kd.key })
		if i < 0 {
			held = append(held, kd.label+": not held")
			continue
		}
		held = append(held, fmt.Sprintf("%s: %s (epoch %d)", kd.label, list[i].Holder, list[i].Epoch))
	}
	r.Findings = append(r.Findings, diag.Finding{Level: diag.Info, Code: "WORK_HOLDERS",
		Message: strings.Join(held, "; ") + ". Work that is not held is taken by the next node woken for it (or its resync)."})

	now := time.Now()
	for _, w := range c.work {
		n, oldest, ok, err := c.lag(ctx, w, k)
		code := strings.ToUpper(w.kind) + "_LAG"
		switch {
		case err != nil:
			r.Findings = append(r.Findings, diag.Finding{Level: diag.Warn, Code: code, Message: w.label + ": reading the lag: " + err.Error()})
		case !ok:
		case n == 0:
			r.Findings = append(r.Findings, diag.Finding{Level: diag.OK, Code: code, Message: w.label + ": caught up with the fragment index"})
		default:
			level, age := diag.Info, now.Sub(oldest).Round(time.Millisecond)
			fix := ""
			if age > clusterLagWarn {
				level, fix = diag.Warn, "see the "+w.label+" report above for failures; more nodes or workers share a backlog"
			}
			count := fmt.Sprint(n)
			if n >= lagLimit {
				count = fmt.Sprintf("at least %d", n)
			}
			r.Findings = append(r.Findings, diag.Finding{Level: level, Code: code, Fix: fix,
				Message: fmt.Sprintf("%s: %s fragment(s) wait, the oldest persisted %s ago", w.label, count, age)})
		}
	}
	return r
}

var (
	clusterNodesDesc = prometheus.NewDesc("kvsd_cluster_nodes",
		"Live nodes of the cluster sharing the catalog (--catalog), from their announcement rows.", nil, nil)
	clusterHeldDesc = prometheus.NewDesc("kvsd_cluster_work_held",
		"Live stream leases (kind ingest) and work claims (imagegen, notify; node: the node's own announcement) in the shared catalog, by holder.", []string{"kind", "holder"}, nil)
	clusterLagFragsDesc = prometheus.NewDesc("kvsd_cluster_work_lag_fragments",
		"Fragments after a stream's image or notification cursor, cluster-wide (counted up to 1000).", []string{"kind", "stream"}, nil)
	clusterLagSecondsDesc = prometheus.NewDesc("kvsd_cluster_work_lag_seconds",
		"Age of the oldest fragment after a stream's image or notification cursor, cluster-wide; 0 when caught up.", []string{"kind", "stream"}, nil)
)

func (c *clusterStatus) Describe(ch chan<- *prometheus.Desc) {
	ch <- clusterNodesDesc
	ch <- clusterHeldDesc
	ch <- clusterLagFragsDesc
	ch <- clusterLagSecondsDesc
}

// Collect reads the catalog at each scrape (bounded by a timeout): one query for the claims,
// and per stream with a cursor one cursor read and one index read.
func (c *clusterStatus) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	list, err := c.claims.ListWork(ctx)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(clusterNodesDesc, prometheus.GaugeValue, float64(len(c.nodes(list))))
	counts := map[[2]string]int{}
	for _, w := range list {
		counts[[2]string{w.Kind, w.Holder}]++
	}
	for kh, n := range counts {
		ch <- prometheus.MustNewConstMetric(clusterHeldDesc, prometheus.GaugeValue, float64(n), kh[0], kh[1])
	}
	now := time.Now()
	for _, w := range c.work {
		keys, err := w.cursors.Keys(ctx)
		if err != nil {
			continue
		}
		for _, k := range keys {
			n, oldest, ok, err := c.lag(ctx, w, k)
			if err != nil || !ok {
				continue
			}
			age := 0.0
			if n > 0 {
				age = max(0, now.Sub(oldest).Seconds())
			}
			ch <- prometheus.MustNewConstMetric(clusterLagFragsDesc, prometheus.GaugeValue, float64(n), w.kind, k.Name)
			ch <- prometheus.MustNewConstMetric(clusterLagSecondsDesc, prometheus.GaugeValue, age, w.kind, k.Name)
		}
	}
}
