package imagegen

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kvsd/kvsd/internal/objstore"
	"github.com/kvsd/kvsd/internal/stream"
)

// The gallery: the images delivered for a stream, read back from its destination (the local
// folder or S3) for kvsd's console. What is listed is what the destination holds under the
// stream's current DestinationConfig.Uri, whoever wrote it; keys are KVS's (objectKey).

// ErrNoImage is the failure of OpenDelivered for a key that is not a delivered image of the
// stream.
var ErrNoImage = errors.New("no such delivered image")

// DeliveredImage is one image at the stream's destination.
type DeliveredImage struct {
	Key            string
	URI            string    // s3://bucket/key
	Time           time.Time // the image time in its key
	Size           int64
	ContentType    string
	ProducerTime   time.Time // the fragment's, from the metadata (zero if missing)
	ServerTime     time.Time
	FragmentNumber string
	Tags           map[string]string // the custom metadata: the fragment's non-AWS tags
}

// ListDeliveredInput pages the gallery, newest first.
type ListDeliveredInput struct {
	From, To   time.Time // image times, inclusive; zero: open
	MaxResults int       // 1–100, default 50
	NextToken  string
}

// imageName matches the end of an image key: _<epoch ms>_<UUID>.<jpg|png>.
var imageName = regexp.MustCompile(`_([0-9]{1,16})_([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(jpg|png)$`)

// gallerySource is the stream's destination as a Reader, with its bucket and key folder.
func (g *Generator) gallerySource(st *stream.Stream) (objstore.Reader, string, string, error) {
	r, ok := g.cfg.Objects.(objstore.Reader)
	if !ok {
		return nil, "", "", stream.Invalid("this kvsd's image destination cannot be listed")
	}
	c := st.ImageGeneration
	if c == nil || c.DestinationConfig == nil {
		return nil, "", "", stream.Invalid("stream %s has no image-generation configuration, so no destination to list", st.Name)
	}
	bucket, path, err := destination(c.DestinationConfig.Uri)
	if err != nil {
		return nil, "", "", stream.Invalid("%v", err)
	}
	if path != "" {
		path += "/"
	}
	return r, bucket, path, nil
}

// imageTime parses key as an image of st and returns its time.
func (g *Generator) imageTime(st *stream.Stream, folder, key string) (time.Time, bool) {
	name, ok := strings.CutPrefix(key, folder)
	if !ok || strings.Contains(name, "/") {
		return time.Time{}, false
	}
	m := imageName.FindStringSubmatchIndex(name)
	if m == nil {
		return time.Time{}, false
	}
	owner := g.cfg.AccountID + "_" + st.Name
	if rest := name[:m[0]]; rest != owner && !strings.HasSuffix(rest, "_"+owner) {
		return time.Time{}, false
	}
	ms, err := strconv.ParseInt(name[m[2]:m[3]], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}

// ListDelivered lists the stream's images at its destination, newest first, with their
// metadata; a stream without image-generation configuration has none.
func (g *Generator) ListDelivered(ctx context.Context, st *stream.Stream, in ListDeliveredInput) ([]DeliveredImage, string, error) {
	if in.MaxResults == 0 {
		in.MaxResults = 50
	}
	if in.MaxResults < 1 || in.MaxResults > 100 {
		return nil, "", stream.Invalid("MaxResults must be 1–100, got %d", in.MaxResults)
	}
	if !in.From.IsZero() && !in.To.IsZero() && in.To.Before(in.From) {
		return nil, "", stream.Invalid("EndTimestamp %s is before StartTimestamp %s", in.To.UTC().Format(time.RFC3339Nano), in.From.UTC().Format(time.RFC3339Nano))
	}
	after, err := decodeGalleryToken(in.NextToken)
	if err != nil {
		return nil, "", err
	}
	if st.ImageGeneration == nil {
		return nil, "", nil // no destination: nothing delivered
	}
	r, bucket, folder, err := g.gallerySource(st)
	if err != nil {
		return nil, "", err
	}
	objs, err := r.List(ctx, bucket, folder)
	if err != nil {
		return nil, "", fmt.Errorf("listing s3://%s/%s: %w", bucket, folder, err)
	}
	var imgs []DeliveredImage
	for _, o := range objs {
		t, ok := g.imageTime(st, folder, o.Key)
		if !ok || (!in.From.IsZero() && t.Before(in.From)) || (!in.To.IsZero() && t.After(in.To)) {
			continue
		}
		img := DeliveredImage{Key: o.Key, URI: "s3://" + bucket + "/" + o.Key, Time: t, Size: o.Size}
		if after != nil && !older(img, *after) {
			continue
		}
		imgs = append(imgs, img)
	}
	sort.Slice(imgs, func(i, j int) bool { return older(imgs[j], imgs[i]) })
	next := ""
	if len(imgs) > in.MaxResults {
		imgs = imgs[:in.MaxResults]
		last := imgs[len(imgs)-1]
		next = base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(last.Time.UnixMilli(), 10) + "/" + last.Key))
	}
	for i := range imgs {
		m, err := r.Head(ctx, bucket, imgs[i].Key)
		if err != nil {
			continue // removed meanwhile, or unreadable: listed without metadata
		}
		describe(&imgs[i], m)
	}
	return imgs, next, nil
}

// older orders images by time, then key.
func older(a, b DeliveredImage) bool {
	if !a.Time.Equal(b.Time) {
		return a.Time.Before(b.Time)
	}
	return a.Key < b.Key
}

func decodeGalleryToken(tok string) (*DeliveredImage, error) {
	if tok == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	ms, key, ok := strings.Cut(string(b), "/")
	n, perr := strconv.ParseInt(ms, 10, 64)
	if err != nil || !ok || perr != nil {
		return nil, stream.Invalid("NextToken is not one this operation returned")
	}
	return &DeliveredImage{Time: time.UnixMilli(n), Key: key}, nil
}

// describe fills img from its metadata.
func describe(img *DeliveredImage, m objstore.Metadata) {
	img.ContentType = m.ContentType
	msTime := func(v string) time.Time {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return time.Time{}
		}
		return time.UnixMilli(n)
	}
	for k, v := range m.Metadata {
		switch strings.ToLower(k) {
		case MetaProducerTimestamp:
			img.ProducerTime = msTime(v)
		case MetaServerTimestamp:
			img.ServerTime = msTime(v)
		case MetaFragmentNumber:
			img.FragmentNumber = v
		default:
			if img.Tags == nil {
				img.Tags = map[string]string{}
			}
			img.Tags[strings.ToLower(k)] = v
		}
	}
}

// OpenDelivered opens one of the stream's images (a key ListDelivered returned) and returns
// its body and content type; the caller closes it.
func (g *Generator) OpenDelivered(ctx context.Context, st *stream.Stream, key string) (io.ReadCloser, string, error) {
	r, bucket, folder, err := g.gallerySource(st)
	if err != nil {
		return nil, "", err
	}
	if _, ok := g.imageTime(st, folder, key); !ok {
		return nil, "", fmt.Errorf("%w: %q is not an image key of stream %s at s3://%s/%s", ErrNoImage, key, st.Name, bucket, folder)
	}
	body, m, err := r.Open(ctx, bucket, key)
	if errors.Is(err, objstore.ErrNoSuchKey) {
		return nil, "", fmt.Errorf("%w: s3://%s/%s is gone", ErrNoImage, bucket, key)
	}
	if err != nil {
		return nil, "", err
	}
	return body, m.ContentType, nil
}
