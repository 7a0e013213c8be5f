package imagegen

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kvsd/kvsd/internal/imaging"
)

type metrics struct {
	generated *prometheus.CounterVec // stream
	delivered *prometheus.CounterVec // stream
	failed    *prometheus.CounterVec // stream, code
	queue     *prometheus.GaugeVec   // stream
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
		generated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kvsd_images_generated_total",
			Help: "Images rendered (decoded, scaled and encoded) for delivery.",
		}, []string{"stream"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kvsd_images_delivered_total",
			Help: "Images stored at their destination.",
		}, []string{"stream"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kvsd_images_failed_total",
			Help: "Failed delivery attempts (code: the S3 error code) and images that could not be rendered (code MEDIA_ERROR).",
		}, []string{"stream", "code"}),
		queue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kvsd_images_queue_fragments",
			Help: "Fragments of an enabled stream waiting for image generation (counted up to 65).",
		}, []string{"stream"}),
		render: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kvsd_images_render_seconds",
			Help:    "Decode, scale and encode of one fragment's images.",
			Buckets: buckets,
		}),
		decode: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kvsd_images_decode_seconds_total",
			Help: "Time spent decoding video for images (delivery and GetImages).",
		}),
		encode: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kvsd_images_encode_seconds_total",
			Help: "Time spent scaling and encoding images (delivery and GetImages).",
		}),
		put: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kvsd_images_put_seconds",
			Help:    "One successful image upload (or local-folder write).",
			Buckets: buckets,
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kvsd_images_delivery_latency_seconds",
			Help:    "From a fragment's end on the server clock (server timestamp + duration: when a live fragment is complete) to its image being visible at the destination.",
			Buckets: buckets,
		}),
		getImages: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kvsd_getimages_seconds",
			Help:    "One GetImages request.",
			Buckets: buckets,
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.generated, m.delivered, m.failed, m.queue, m.render, m.decode, m.encode, m.put, m.latency, m.getImages} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
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
	m.failed.DeletePartialMatch(prometheus.Labels{"stream": name})
}
