package fragstore

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kvsd/kvsd/internal/metric"
)

type metrics struct {
	appendSeconds prometheus.Histogram
	mediaSeconds  prometheus.Histogram
	commitSeconds prometheus.Histogram
	bytes         prometheus.Counter
	expired       prometheus.Counter
	evicted       prometheus.Counter
	commitSize    prometheus.Histogram
}

// newMetrics builds the store's metrics and registers them when reg is not nil.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		// 1 ms … 4 s: a healthy append is a few fsyncs; seconds mean the disk is saturated.
		appendSeconds: metric.Histogram("kvsd_store_append_seconds",
			"Time to make one fragment durable (media synced and index committed), from Write to its commit.",
			prometheus.ExponentialBuckets(0.001, 2, 13)),
		// Its two parts, so that a slow append says which side is slow: the media (disk or
		// object store) or the index (bbolt or PostgreSQL).
		mediaSeconds: metric.Histogram("kvsd_store_media_write_seconds",
			"Time to store one fragment's media (written and synced on disk, or its object PUT).",
			prometheus.ExponentialBuckets(0.001, 2, 13)),
		commitSeconds: metric.Histogram("kvsd_store_commit_seconds",
			"Time of one index commit (a group commit of every stream's waiting fragments).",
			prometheus.ExponentialBuckets(0.001, 2, 13)),
		bytes:   metric.Counter("kvsd_store_bytes_total", "Fragment media bytes stored."),
		expired: metric.Counter("kvsd_store_fragments_expired_total", "Fragments removed by retention."),
		evicted: metric.Counter("kvsd_store_fragments_evicted_total", "Fragments removed to keep the media within --max-disk-usage."),
		commitSize: metric.Histogram("kvsd_store_commit_fragments", "Fragments per index commit (the group commit of all streams).",
			prometheus.ExponentialBuckets(1, 2, 10)),
	}
	if err := metric.Register(reg, m.appendSeconds, m.mediaSeconds, m.commitSeconds, m.bytes, m.expired, m.evicted, m.commitSize); err != nil {
		return nil, err
	}
	return m, nil
}
