package imagegen

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kvsd/kvsd/internal/imaging"
	"github.com/kvsd/kvsd/internal/metric"
)

type metrics struct {
	generated *prometheus.CounterVec // stream
	delivered *prometheus.CounterVec // stream
	failed    *prometheus.CounterVec // stream, code
	queue     *prometheus.GaugeVec   // stream
	expired   *prometheus.CounterVec // stream
	render    prometheus.Histogram
	decode    prometheus.Counter
	encode    prometheus.Counter
	put       prometheus.Histogram
	latency   prometheus.Histogram
	getImages prometheus.Histogram
}

// newMetrics builds the generator's metrics and registers them when reg is not nil.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	// 1 ms … 16 s: a keyframe image costs ~10 ms of CPU; seconds mean a backlog.
	buckets := prometheus.ExponentialBuckets(0.001, 2, 15)
	m := &metrics{
		generated: metric.CounterVec("kvsd_images_generated_total", "Images rendered (decoded, scaled and encoded) for delivery.", "stream"),
		delivered: metric.CounterVec("kvsd_images_delivered_total", "Images stored at their destination.", "stream"),
		failed: metric.CounterVec("kvsd_images_failed_total",
			"Failed delivery attempts (code: the S3 error code) and images that could not be rendered (code MEDIA_ERROR).", "stream", "code"),
		queue: metric.GaugeVec("kvsd_images_queue_fragments", "Fragments of an enabled stream waiting for image generation (counted up to 65).", "stream"),
		expired: metric.CounterVec("kvsd_images_expired_fragments_total",
			"Eligible fragments removed (retention or the disk budget) before their images were made.", "stream"),
		render: metric.Histogram("kvsd_images_render_seconds", "Decode, scale and encode of one fragment's images.", buckets),
		decode: metric.Counter("kvsd_images_decode_seconds_total", "CPU time spent decoding video for images (delivery and GetImages)."),
		encode: metric.Counter("kvsd_images_encode_seconds_total", "CPU time spent scaling and encoding images (delivery and GetImages)."),
		put:    metric.Histogram("kvsd_images_put_seconds", "One successful image upload (or local-folder write).", buckets),
		latency: metric.Histogram("kvsd_images_delivery_latency_seconds",
			"From a fragment's end on the server clock (server timestamp + duration: when a live fragment is complete) to its image being visible at the destination.",
			buckets),
		getImages: metric.Histogram("kvsd_getimages_seconds", "One GetImages request.", buckets),
	}
	if err := metric.Register(reg, m.generated, m.delivered, m.failed, m.queue, m.expired, m.render, m.decode, m.encode, m.put, m.latency, m.getImages); err != nil {
		return nil, err
	}
	return m, nil
}

// observeRender adds what one Render call cost, from the decoder's running totals.
func (m *metrics) observeRender(before, after imaging.Stats) {
	m.decode.Add((after.Decode - before.Decode).Seconds())
	m.encode.Add((after.Scale + after.Encode - before.Scale - before.Encode).Seconds())
}

// forget drops a deleted stream's series.
func (m *metrics) forget(name string) {
	m.generated.DeleteLabelValues(name)
	m.delivered.DeleteLabelValues(name)
	m.queue.DeleteLabelValues(name)
	m.expired.DeleteLabelValues(name)
	m.failed.DeletePartialMatch(prometheus.Labels{"stream": name})
}
