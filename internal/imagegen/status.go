package imagegen

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kvsd/kvsd/internal/diag"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/imaging"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/stream"
)

// status is what the generator remembers about a stream for `kvsd doctor` (since start).
type status struct {
	delivered   uint64
	lastURI     string
	lastAt      time.Time
	failing     *deliveryError // the delivery that is failing now
	renderErr   error
	renderCodec string
	renderAt    time.Time
	queued      int // fragments behind the cursor (up to queueProbe)
	pending     int // rendered images not yet stored
	noSample    noSample

	tracked       bool      // enabled and worked on: its lag is exported
	behindSince   time.Time // server time of the oldest fragment not yet handled; zero: caught up
	lagWarned     bool      // the lag WARN was logged and the lag has not fallen back since
	expired       uint64    // fragments removed before their images were made
	expiredLogged bool
}

// noSample counts eligible fragments that held no sample time: shorter than the interval, they
// fell between two multiples of it.
type noSample struct {
	count    uint64
	number   string // the last one
	duration time.Duration
	start    time.Time
	interval time.Duration
	clock    string
}

// deliveryError is a failed upload as doctor reports it.
type deliveryError struct {
	Code      string
	Message   string
	Permanent bool
	At        time.Time
	Attempts  int
	RetryAt   time.Time
	URI       string
}

func (t *task) noteDelivered(uri string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.status.delivered++
	t.status.lastURI, t.status.lastAt = uri, at
	t.status.pending = 0
	if p := t.pending; p != nil {
		t.status.pending = len(p.images) - p.next - 1
	}
}

func (t *task) setFailing(e *deliveryError) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.status.failing = e
	if p := t.pending; p != nil && e != nil {
		t.status.pending = len(p.images) - p.next
	}
}

func (t *task) noteNoSample(f *fragment.Fragment, start time.Time, interval time.Duration, clock string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := &t.status.noSample
	n.count++
	n.number, n.duration, n.start, n.interval, n.clock = f.Number, f.Duration, start, interval, clock
}

func (t *task) setRenderError(err error, codec string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.status.renderErr, t.status.renderCodec, t.status.renderAt = err, codec, at
}

func (t *task) snapshot() status {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.status
	return s
}

// decodable are the codecs the media package decodes.
var decodable = map[string]bool{"V_MPEG4/ISO/AVC": true, "V_MPEGH/ISO/HEVC": true}

// recentWindow is how far back doctor looks at fragments.
const recentWindow = 5 * time.Minute

// Diagnose explains in plain words whether and why st gets images (diag.Source).
func (g *Generator) Diagnose(ctx context.Context, st *stream.Stream) diag.Report {
	r := &report{Report: diag.Report{Component: "images"}}
	k := fragstore.KeyOf(st)
	cfg := st.ImageGeneration
	region := regionOf(st.ARN)
	if st.RetentionHours == 0 {
		r.add(diag.Error, "RETENTION_ZERO", "the stream keeps no data (DataRetentionInHours is 0); images are made only from persisted fragments",
			fmt.Sprintf("aws kinesisvideo update-data-retention --stream-name %s --current-version %s --operation INCREASE_DATA_RETENTION --data-retention-change-in-hours 24 --endpoint-url …", st.Name, st.Version))
	}
	switch {
	case cfg == nil:
		r.add(diag.Error, "IMAGE_CONFIG_MISSING", "the stream has no image-generation configuration, so no images are delivered (GetImages still works)",
			fmt.Sprintf(`aws kinesisvideo update-image-generation-configuration --stream-name %s --image-generation-configuration '{"Status":"ENABLED","ImageSelectorType":"PRODUCER_TIMESTAMP","DestinationConfig":{"Uri":"s3://images","DestinationRegion":"%s"},"SamplingInterval":3000,"Format":"JPEG"}' --endpoint-url …`, st.Name, region))
	case cfg.Status != "ENABLED":
		r.add(diag.Error, "IMAGE_CONFIG_DISABLED", "the image-generation configuration is "+cfg.Status+", so no images are delivered",
			"send the configuration again with \"Status\":\"ENABLED\" (aws kinesisvideo update-image-generation-configuration …)")
	default:
		r.add(diag.Info, "IMAGE_CONFIG", fmt.Sprintf("configuration ENABLED: an image every %d ms of each eligible fragment (%s timeline), %s, sent to %s; %s",
			deref(cfg.SamplingInterval), cfg.ImageSelectorType, formatDesc(cfg), cfg.DestinationConfig.Uri, g.cfg.Destination), "")
	}
	on := enabled(st)
	mode := st.Tags[StreamTag]
	if mode != "" && mode != AllFragments && mode != TaggedFragments {
		r.add(diag.Warn, "STREAM_TAG_UNKNOWN", fmt.Sprintf("stream tag %s=%q is not %s or %s; %s applies", StreamTag, mode, AllFragments, TaggedFragments, TaggedFragments),
			fmt.Sprintf("aws kinesisvideo tag-stream --stream-name %s --tags %s=%s --endpoint-url …", st.Name, StreamTag, AllFragments))
	}
	if st.RetentionHours > 0 {
		g.diagnoseFragments(ctx, r, st, k, on, mode == AllFragments)
	}
	g.mu.Lock()
	t := g.tasks[k]
	g.mu.Unlock()
	if t != nil {
		s := t.snapshot()
		if s.failing != nil {
			e := *s.failing
			e.RetryAt = g.work.Status(k).RetryAt
			s.failing = &e
		}
		g.diagnoseTask(r, s, on)
	}
	if !r.problems {
		r.add(diag.OK, "IMAGES_OK", "images are being generated for this stream", "")
	}
	return r.Report
}

// ImageCounts counts st's images delivered since kvsd started and those rendered but not yet
// stored (diag.ImageCounter): the numbers of the IMAGES_DELIVERED finding.
func (g *Generator) ImageCounts(st *stream.Stream) diag.Images {
	g.mu.Lock()
	t := g.tasks[fragstore.KeyOf(st)]
	g.mu.Unlock()
	if t == nil {
		return diag.Images{}
	}
	s := t.snapshot()
	return diag.Images{Delivered: s.delivered, Pending: s.pending}
}

type report struct {
	diag.Report
	problems bool
}

func (r *report) add(level diag.Level, code, msg, fix string) {
	r.Findings = append(r.Findings, diag.Finding{Level: level, Code: code, Message: msg, Fix: fix})
	if level == diag.Warn || level == diag.Error {
		r.problems = true
	}
}

// diagnoseFragments looks at what the stream stored lately: whether fragments arrive, carry
// the tag, and use a codec kvsd can decode.
func (g *Generator) diagnoseFragments(ctx context.Context, r *report, st *stream.Stream, k fragstore.Key, on, all bool) {
	now := g.cfg.Now()
	recent, _, err := g.cfg.Store.List(ctx, k, fragstore.ServerTime, now.Add(-recentWindow), now, fragstore.Cursor{}, 1000)
	if err != nil {
		r.add(diag.Warn, "STORE_UNREADABLE", "could not read the stream's fragments: "+err.Error(), "")
		return
	}
	var last *fragment.Fragment
	if len(recent) > 0 {
		last = recent[len(recent)-1]
	} else if seq, err := g.cfg.Store.LastSeq(ctx, k); err == nil && seq > 0 {
		last, _ = g.cfg.Store.Fragment(ctx, k, seq)
	}
	switch {
	case last == nil:
		r.add(diag.Warn, "NO_FRAGMENTS", "no fragment is stored for this stream yet: nothing to make images from",
			"start the producer (PutMedia, e.g. kvssink with CONTROL_PLANE_URI pointing at kvsd)")
		return
	case len(recent) == 0:
		r.add(diag.Warn, "NO_RECENT_FRAGMENTS", fmt.Sprintf("no fragment arrived in the last %s (the newest is from %s)", recentWindow, last.ServerTime.UTC().Format(time.RFC3339)),
			"check that the producer is running and streaming to this stream")
	default:
		tagged := 0
		for _, f := range recent {
			if f.HasTag(fragment.TagImageGeneration) {
				tagged++
			}
		}
		switch {
		case all:
			r.add(diag.Info, "ALL_FRAGMENTS", fmt.Sprintf("stream tag %s=%s: every fragment is eligible (%d in the last %s)", StreamTag, AllFragments, len(recent), recentWindow), "")
		case tagged == 0:
			level := diag.Warn
			if on {
				level = diag.Error
			}
			r.add(level, "FRAGMENTS_UNTAGGED", fmt.Sprintf("none of the %d fragments of the last %s carries the %s tag, and only tagged fragments get images (AWS's rule)", len(recent), recentWindow, fragment.TagImageGeneration),
				fmt.Sprintf("tag fragments in the producer (putKinesisVideoEventMetadata with STREAM_EVENT_TYPE_IMAGE_GENERATION), or make every fragment eligible: aws kinesisvideo tag-stream --stream-name %s --tags %s=%s --endpoint-url …", st.Name, StreamTag, AllFragments))
		default:
			r.add(diag.Info, "FRAGMENTS_TAGGED", fmt.Sprintf("%d of the %d fragments of the last %s carry the %s tag", tagged, len(recent), recentWindow, fragment.TagImageGeneration), "")
		}
	}
	if hdr, err := g.cfg.Store.Header(ctx, k, last.HeaderID); err == nil {
		if h, _, err := mkv.ReadFrames(hdr, mkv.Limits{}); err == nil {
			if v := videoTrack(h); v == nil {
				r.add(diag.Error, "NO_VIDEO_TRACK", "the stream's newest fragment has no video track", "send H.264 or H.265 video")
			} else if !decodable[v.CodecID] {
				r.add(diag.Error, "CODEC_UNSUPPORTED", fmt.Sprintf("the video codec %s cannot be decoded by kvsd (H.264 V_MPEG4/ISO/AVC and H.265 V_MPEGH/ISO/HEVC can)", v.CodecID),
					"encode the camera's video as H.264 or H.265")
			}
		}
	}
}

// diagnoseTask reports the generator's own view: deliveries, failures, backlog.
func (g *Generator) diagnoseTask(r *report, s status, on bool) {
	if lag := s.lag(g.cfg.Now()); on && lag > 0 {
		level := diag.Info
		if lag > g.cfg.LagWarn {
			level = diag.Warn
		}
		fix := ""
		if level == diag.Warn {
			fix = "more streams want images than this machine's cores can render: give kvsd more CPU, or fewer streams images, a longer SamplingInterval or smaller images; streams are served in turn, so every stream lags alike"
		}
		r.add(level, "IMAGES_LAG", fmt.Sprintf("image generation is %s behind this stream (its oldest fragment waiting arrived at %s; the warning threshold is %s)",
			lag.Round(time.Second), s.behindSince.UTC().Format(time.RFC3339), g.cfg.LagWarn), fix)
	}
	if s.expired > 0 {
		r.add(diag.Warn, "IMAGES_EXPIRED_UNMADE", fmt.Sprintf("%d fragments were removed (retention or the disk budget) before their images were made: image generation was too far behind", s.expired),
			"give image generation more CPU (see IMAGES_LAG), or keep video longer (retention, --max-disk-usage)")
	}
	if e := s.failing; e != nil && on {
		kind := "a transient error"
		if e.Permanent {
			kind = "an error that needs a fix at the destination"
		}
		r.add(diag.Error, "DELIVERY_FAILING", fmt.Sprintf("delivery to %s fails with %s (%s): %s; attempt %d failed, the next is at %s. No image is dropped: they wait and are retried until stored",
			e.URI, e.Code, kind, e.Message, e.Attempts, e.RetryAt.UTC().Format(time.RFC3339)), deliveryFix(e))
	}
	if err := s.renderErr; err != nil {
		switch {
		case errors.Is(err, imaging.ErrUnavailable):
			r.add(diag.Error, "MEDIA_UNAVAILABLE", "this kvsd was built without the media package (cgo, FFmpeg), so it cannot decode video; fragments wait for a kvsd that can",
				"build kvsd with CGO_ENABLED=1 and the FFmpeg/libjpeg-turbo development packages (make setup; make build)")
		case errors.Is(err, imaging.ErrUnsupportedCodec):
			r.add(diag.Error, "CODEC_UNSUPPORTED", fmt.Sprintf("the decoder refused codec %s: %v", s.renderCodec, err), "encode the camera's video as H.264 or H.265")
		default:
			r.add(diag.Warn, "MEDIA_ERROR", fmt.Sprintf("the last image that could not be rendered failed at %s: %v", s.renderAt.UTC().Format(time.RFC3339), err), "")
		}
	}
	if n := s.noSample; n.count > 0 {
		r.add(diag.Info, "FRAGMENTS_WITHOUT_SAMPLE", fmt.Sprintf("%d eligible fragments since kvsd started got no image because no sample time fell in them: images are taken at the multiples of the %d ms SamplingInterval on the %s timeline, across fragment boundaries, and a fragment shorter than that may hold none (the last: fragment %s, %d ms long, from %s). Nothing is lost: the images stay SamplingInterval apart; a lower SamplingInterval gives more",
			n.count, n.interval.Milliseconds(), n.clock, n.number, n.duration.Milliseconds(), n.start.UTC().Format("2006-01-02T15:04:05.000Z")), "")
	}
	msg := fmt.Sprintf("%d images delivered since kvsd started", s.delivered)
	if s.delivered > 0 {
		msg += fmt.Sprintf(" (last %s at %s)", s.lastURI, s.lastAt.UTC().Format(time.RFC3339))
	}
	waiting := fmt.Sprintf("%d fragments", s.queued)
	if s.queued > queueProbe {
		waiting = fmt.Sprintf("more than %d fragments", queueProbe)
	}
	msg += fmt.Sprintf("; waiting: %s and %d rendered images", waiting, s.pending)
	r.add(diag.Info, "IMAGES_DELIVERED", msg, "")
}

func deliveryFix(e *deliveryError) string {
	bucket, _, _ := destination(e.URI)
	switch e.Code {
	case "NoSuchBucket":
		return fmt.Sprintf("create the bucket (aws s3 mb s3://%s --endpoint-url <your S3 endpoint>) or point DestinationConfig.Uri at an existing bucket", bucket)
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "XAdminUserNotFound", "ExpiredToken", "InvalidToken":
		return "check the S3 credentials in kvsd serve's environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE) and that they may s3:PutObject into the bucket"
	case "NetworkError":
		return "check that the S3 endpoint given to kvsd serve --s3-endpoint is reachable"
	case "InvalidBucketName", "InvalidObjectName", "KeyTooLongError":
		return "fix DestinationConfig.Uri (s3://bucket[/path]) with update-image-generation-configuration"
	}
	return ""
}

func formatDesc(c *stream.ImageGenerationConfiguration) string {
	size := "at source size"
	switch {
	case c.WidthPixels != nil && c.HeightPixels != nil:
		size = fmt.Sprintf("at %d×%d px", *c.WidthPixels, *c.HeightPixels)
	case c.WidthPixels != nil:
		size = fmt.Sprintf("at %d px wide (aspect kept)", *c.WidthPixels)
	case c.HeightPixels != nil:
		size = fmt.Sprintf("at %d px high (aspect kept)", *c.HeightPixels)
	}
	if c.Format == "PNG" {
		return "PNG " + size
	}
	return fmt.Sprintf("JPEG quality %d %s", c.JPEGQuality(), size)
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// regionOf reads the region out of a stream ARN (arn:aws:kinesisvideo:REGION:…).
func regionOf(arn string) string {
	if parts := strings.Split(arn, ":"); len(parts) > 3 {
		return parts[3]
	}
	return "us-east-1"
}
