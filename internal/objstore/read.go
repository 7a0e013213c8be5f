package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Object is a stored object as List describes it.
type Object struct {
	Key  string
	Size int64
}

// Reader reads back what a Store put: the console's gallery of delivered images. Dir and S3
// implement it.
type Reader interface {
	// List returns the objects whose keys start with prefix and have no "/" after it (one
	// folder level, as S3's ListObjectsV2 with delimiter "/"), in key order, at most
	// MaxList of them.
	List(ctx context.Context, bucket, prefix string) ([]Object, error)
	// Head returns an object's content type and user metadata.
	Head(ctx context.Context, bucket, key string) (Metadata, error)
	// Open returns an object's body with its content type and metadata; the caller closes it.
	Open(ctx context.Context, bucket, key string) (io.ReadCloser, Metadata, error)
}

// MaxList bounds what one List returns, so a folder of millions of objects costs bounded memory.
const MaxList = 100_000

// ErrNoSuchKey is the failure of Head and Open for an object that does not exist.
var ErrNoSuchKey = &Error{Code: "NoSuchKey", Permanent: true}

// List lists the folder of prefix: its files (not the metadata files beside them, nor the
// temporary files of writes in progress) whose names start with prefix's last segment.
func (d *Dir) List(ctx context.Context, bucket, prefix string) ([]Object, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	folder, name := "", prefix
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		folder, name = prefix[:i], prefix[i+1:]
	}
	dir := filepath.Join(d.Root, bucket)
	if folder != "" {
		p, err := d.path(bucket, folder)
		if err != nil {
			return nil, err
		}
		dir = p
	} else if _, err := d.path(bucket, "x"); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, localError(err)
	}
	var out []Object
	for _, e := range entries {
		n := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(n, ".") || strings.HasSuffix(n, MetadataSuffix) || !strings.HasPrefix(n, name) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		key := n
		if folder != "" {
			key = folder + "/" + n
		}
		out = append(out, Object{Key: key, Size: info.Size()})
		if len(out) == MaxList {
			break
		}
	}
	return out, nil
}

// Head reads the metadata file beside the object.
func (d *Dir) Head(ctx context.Context, bucket, key string) (Metadata, error) {
	if err := ctx.Err(); err != nil {
		return Metadata{}, err
	}
	m, err := d.ReadMetadata(bucket, key)
	if errors.Is(err, fs.ErrNotExist) {
		return m, ErrNoSuchKey
	}
	return m, err
}

// Open opens the object's file.
func (d *Dir) Open(ctx context.Context, bucket, key string) (io.ReadCloser, Metadata, error) {
	m, err := d.Head(ctx, bucket, key)
	if err != nil {
		return nil, m, err
	}
	path, _ := d.path(bucket, key) // Head checked it
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, m, ErrNoSuchKey
	}
	if err != nil {
		return nil, m, localError(err)
	}
	return f, m, nil
}

// List pages through ListObjectsV2 with delimiter "/".
func (s *S3) List(ctx context.Context, bucket, prefix string) ([]Object, error) {
	var out []Object
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket),
		Prefix: aws.String(prefix), Delimiter: aws.String("/")})
	for p.HasMorePages() && len(out) < MaxList {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, classifyS3(ctx, err)
		}
		for _, o := range page.Contents {
			out = append(out, Object{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out[:min(len(out), MaxList)], nil
}

// Head is HeadObject.
func (s *S3) Head(ctx context.Context, bucket, key string) (Metadata, error) {
	o, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return Metadata{}, notFound(classifyS3(ctx, err))
	}
	return Metadata{ContentType: aws.ToString(o.ContentType), Metadata: o.Metadata}, nil
}

// Open is GetObject.
func (s *S3) Open(ctx context.Context, bucket, key string) (io.ReadCloser, Metadata, error) {
	o, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, Metadata{}, notFound(classifyS3(ctx, err))
	}
	return o.Body, Metadata{ContentType: aws.ToString(o.ContentType), Metadata: o.Metadata}, nil
}

// notFound turns S3's answers for a missing object (HEAD has no body, so no code: "NotFound")
// into ErrNoSuchKey.
func notFound(err error) error {
	var e *Error
	if errors.As(err, &e) && (e.Code == "NoSuchKey" || e.Code == "NotFound") {
		return fmt.Errorf("%w: %v", ErrNoSuchKey, e.Err)
	}
	return err
}

var (
	_ Reader = (*Dir)(nil)
	_ Reader = (*S3)(nil)
)
