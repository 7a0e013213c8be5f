package fragstore

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	appendSeconds prometheus.Histogram
	bytes         prometheus.Counter
	expired       prometheus.Counter
	commitSize    prometheus.Histogram
}

// newMetrics builds the store's metrics and registers them when reg is not nil.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		appendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kvsd_store_append_seconds",
			Help: "Time to make one fragment durable (media synced and index committed), from Write to its commit.",
			// 1 ms … 4 s: a healthy append is a few fsyncs; seconds mean the disk is saturated.
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 13),
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kvsd_store_bytes_total",
			Help: "Fragment media bytes stored.",
		}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kvsd_store_fragments_expired_total",
			Help: "Fragments removed by retention.",
		}),
		commitSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kvsd_store_commit_fragments",
			Help:    "Fragments per index commit (the group commit of all streams).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.appendSeconds, m.bytes, m.expired, m.commitSize} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
