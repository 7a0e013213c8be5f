package imagegen

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/imaging"
	"github.com/kvsd/kvsd/internal/stream"
)

// GetImages limits (KVS model and documentation, §4.7).
const (
	MaxImagesWindow       = 300 * time.Second
	DefaultImagesPerPage  = 25
	MaxImagesPerPage      = 100
	DefaultSamplingMillis = 3000 // the model leaves SamplingInterval optional; older models' minimum
)

// GetImagesInput is a GetImages request as kvsapi decoded it (timeline already checked).
type GetImagesInput struct {
	Kind             fragstore.TimeKind
	Start, End       time.Time
	SamplingInterval *int64 // ms
	Format           string
	FormatConfig     map[string]string
	WidthPixels      *int
	HeightPixels     *int
	MaxResults       *int64
	NextToken        string
}

// Image is one entry of GetImages' answer: the sample time and either the image or why there
// is none.
type Image struct {
	Time    time.Time
	Error   string // "", NoMedia or MediaError
	Content []byte
}

// Image errors GetImages reports per sample.
const (
	NoMedia    = "NO_MEDIA"    // no stored fragment covers the time
	MediaError = "MEDIA_ERROR" // a fragment covers it, but no image could be made
)

// imagesToken is what GetImages' NextToken carries: the query's identity and where the next
// page starts.
type imagesToken struct {
	Kind     fragstore.TimeKind `json:"k"`
	Start    int64              `json:"s"`
	End      int64              `json:"e"`
	Interval int64              `json:"i"`
	Next     int                `json:"n"`
}

var tokenPattern = regexp.MustCompile(`^[a-zA-Z0-9+/]+={0,2}$`)

// GetImages renders one page of images of a stored stream, one entry per sample time
// Start, Start+interval, … ≤ End. It works on any stored fragment, tagged or not.
func (g *Generator) GetImages(ctx context.Context, st *stream.Stream, in GetImagesInput) ([]Image, string, error) {
	began := g.cfg.Now()
	defer func() { g.metrics.getImages.Observe(g.cfg.Now().Sub(began).Seconds()) }()
	spec, interval, page, err := validateGetImages(in)
	if err != nil {
		return nil, "", err
	}
	if st.RetentionHours == 0 {
		return nil, "", fmt.Errorf("%w: stream %s keeps no data (DataRetentionInHours is 0), so there are no stored images to get", stream.ErrNoDataRetention, st.Name)
	}
	total := int(in.End.Sub(in.Start)/interval) + 1
	first := 0
	if in.NextToken != "" {
		if first, err = parseImagesToken(in, interval, total); err != nil {
			return nil, "", err
		}
	}
	last := min(first+page, total)
	times := make([]time.Time, 0, last-first)
	for i := first; i < last; i++ {
		times = append(times, in.Start.Add(time.Duration(i)*interval))
	}
	images, err := g.imagesAt(ctx, fragstore.KeyOf(st), in.Kind, times, spec)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if last < total {
		b, _ := json.Marshal(imagesToken{Kind: in.Kind, Start: in.Start.UnixMilli(), End: in.End.UnixMilli(), Interval: interval.Milliseconds(), Next: last})
		next = base64.StdEncoding.EncodeToString(b)
	}
	return images, next, nil
}

// Validate applies AWS's rules to the request alone (before the stream is looked up).
func (in GetImagesInput) Validate() error {
	_, _, _, err := validateGetImages(in)
	return err
}

// validateGetImages applies AWS's rules and returns the encoding, the interval and the page size.
func validateGetImages(in GetImagesInput) (imaging.Spec, time.Duration, int, error) {
	if in.Format != "JPEG" && in.Format != "PNG" {
		return imaging.Spec{}, 0, 0, stream.Invalid("Format %q must be JPEG or PNG", in.Format)
	}
	if in.End.Before(in.Start) {
		return imaging.Spec{}, 0, 0, stream.Invalid("EndTimestamp must not be before StartTimestamp")
	}
	if in.End.Sub(in.Start) > MaxImagesWindow {
		return imaging.Spec{}, 0, 0, stream.Invalid("the range from StartTimestamp to EndTimestamp is %s; it must not exceed %s", in.End.Sub(in.Start), MaxImagesWindow)
	}
	ms := int64(DefaultSamplingMillis)
	if in.SamplingInterval != nil {
		ms = *in.SamplingInterval
	}
	if ms < stream.MinSamplingIntervalMs {
		return imaging.Spec{}, 0, 0, stream.Invalid("SamplingInterval must be at least %d ms, got %d", stream.MinSamplingIntervalMs, ms)
	}
	page := int64(DefaultImagesPerPage)
	if in.MaxResults != nil {
		page = *in.MaxResults
	}
	if page < 1 || page > MaxImagesPerPage {
		return imaging.Spec{}, 0, 0, stream.Invalid("MaxResults must be between 1 and %d, got %d", MaxImagesPerPage, page)
	}
	if w := in.WidthPixels; w != nil && (*w < 1 || *w > stream.MaxWidthPixels) {
		return imaging.Spec{}, 0, 0, stream.Invalid("WidthPixels must be between 1 and %d, got %d", stream.MaxWidthPixels, *w)
	}
	if h := in.HeightPixels; h != nil && (*h < 1 || *h > stream.MaxHeightPixels) {
		return imaging.Spec{}, 0, 0, stream.Invalid("HeightPixels must be between 1 and %d, got %d", stream.MaxHeightPixels, *h)
	}
	if fc := in.FormatConfig; fc != nil {
		v, ok := fc["JPEGQuality"]
		q, err := strconv.Atoi(v)
		if len(fc) != 1 || !ok {
			return imaging.Spec{}, 0, 0, stream.Invalid("FormatConfig must hold exactly one entry, JPEGQuality")
		}
		if err != nil || q < 1 || q > 100 {
			return imaging.Spec{}, 0, 0, stream.Invalid("FormatConfig JPEGQuality must be an integer from 1 to 100, got %q", v)
		}
	}
	if t := in.NextToken; t != "" && (len(t) > 4096 || !tokenPattern.MatchString(t)) {
		return imaging.Spec{}, 0, 0, stream.Invalid("NextToken is not a token returned by GetImages")
	}
	return specOf(in.Format, in.FormatConfig, in.WidthPixels, in.HeightPixels), time.Duration(ms) * time.Millisecond, int(page), nil
}

func parseImagesToken(in GetImagesInput, interval time.Duration, total int) (int, error) {
	bad := stream.Invalid("NextToken is not a token returned by GetImages for this StreamName, ImageSelectorType, time range and SamplingInterval")
	raw, err := base64.StdEncoding.DecodeString(in.NextToken)
	if err != nil {
		return 0, bad
	}
	var t imagesToken
	if json.Unmarshal(raw, &t) != nil || t.Kind != in.Kind || t.Start != in.Start.UnixMilli() || t.End != in.End.UnixMilli() ||
		t.Interval != interval.Milliseconds() || t.Next < 1 || t.Next >= total {
		return 0, bad
	}
	return t.Next, nil
}

// sampleGroup is the samples one fragment covers.
type sampleGroup struct {
	frag    *fragment.Fragment
	indexes []int
	offsets []time.Duration
}

// imagesAt renders the image at each time: samples are grouped by the fragment that covers
// them, and each fragment is decoded once.
func (g *Generator) imagesAt(ctx context.Context, k fragstore.Key, kind fragstore.TimeKind, times []time.Time, spec imaging.Spec) ([]Image, error) {
	out := make([]Image, len(times))
	var groups []*sampleGroup
	var cur *sampleGroup
	for i, t := range times {
		out[i] = Image{Time: t, Error: NoMedia}
		if cur == nil || !covers(cur.frag, kind, t) {
			f, err := g.fragmentAt(ctx, k, kind, t)
			if err != nil {
				return nil, err
			}
			if f == nil {
				continue
			}
			if cur == nil || cur.frag.Seq != f.Seq {
				cur = &sampleGroup{frag: f}
				groups = append(groups, cur)
			}
		}
		cur.indexes = append(cur.indexes, i)
		cur.offsets = append(cur.offsets, t.Sub(startOn(cur.frag, kind)))
	}
	var slot decoderSlot
	defer slot.close()
	for _, gr := range groups {
		results, err := g.renderGroup(ctx, &slot, k, gr, spec)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		for j, i := range gr.indexes {
			switch {
			case errors.Is(err, fragstore.ErrNotFound):
				// expired between the lookup and the read: no media any more
			case err != nil:
				out[i].Error = MediaError
			case results[j].Err == nil:
				out[i] = Image{Time: out[i].Time, Content: results[j].Image}
			case !errors.Is(results[j].Err, imaging.ErrNoFrame):
				out[i].Error = MediaError
			}
		}
	}
	return out, nil
}

func (g *Generator) renderGroup(ctx context.Context, slot *decoderSlot, k fragstore.Key, gr *sampleGroup, spec imaging.Spec) ([]imaging.Result, error) {
	v, err := loadVideo(ctx, g.cfg.Store, k, gr.frag, nil)
	if err != nil {
		return nil, err
	}
	g.leadIn(ctx, k, gr.frag, v)
	dec, err := slot.get(g.cfg.NewDecoder, v)
	if err != nil {
		return nil, err
	}
	if err := g.render.enter(ctx); err != nil {
		return nil, err
	}
	defer g.render.leave()
	before := dec.Stats()
	results := dec.Render(v.packets, gr.offsets, spec)
	g.metrics.observeRender(before, dec.Stats())
	if len(results) != len(gr.offsets) {
		return nil, fmt.Errorf("decoder returned %d results for %d times", len(results), len(gr.offsets))
	}
	return results, nil
}

// fragmentAt returns the fragment whose [start, start+duration) holds t, or nil.
func (g *Generator) fragmentAt(ctx context.Context, k fragstore.Key, kind fragstore.TimeKind, t time.Time) (*fragment.Fragment, error) {
	seq, err := g.cfg.Store.SeqAt(ctx, k, kind, t)
	if errors.Is(err, fragstore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	f, err := g.cfg.Store.Fragment(ctx, k, seq)
	if errors.Is(err, fragstore.ErrNotFound) {
		return nil, nil
	}
	if err != nil || !covers(f, kind, t) {
		return nil, err
	}
	return f, nil
}

// covers reports whether t falls within f on the kind timeline. A fragment without duration
// (a single frame) covers its start instant only.
func covers(f *fragment.Fragment, kind fragstore.TimeKind, t time.Time) bool {
	start := startOn(f, kind)
	if t.Before(start) {
		return false
	}
	return t.Before(start.Add(f.Duration)) || (f.Duration == 0 && t.Equal(start))
}

func startOn(f *fragment.Fragment, kind fragstore.TimeKind) time.Time {
	if kind == fragstore.ServerTime {
		return f.ServerTime
	}
	return f.ProducerTime
}
