package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kvsd/kvsd/internal/catalog/postgres"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/playback"
	"github.com/kvsd/kvsd/internal/stream"
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
