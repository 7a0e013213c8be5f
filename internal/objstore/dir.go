package objstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Dir is a local folder laid out like S3 buckets: object key K of bucket B is the file
// Root/B/K ("/" in keys are directories), and its content type and user metadata are kept
// beside it in Root/B/K.metadata.json:
//
//	{"ContentType":"image/jpeg","Metadata":{"aws_kinesisvideo_fragment_number":"9…"}}
//
// Put writes both files atomically, metadata first, so an object that is visible always has
// its metadata; putting a key again replaces both. A new file is written unnamed (O_TMPFILE)
// and linked in under its name (inotify: IN_CREATE); a replaced one, or any where O_TMPFILE
// is unsupported, is written to a temporary ".<name>.<random>.tmp" file renamed into place
// (IN_MOVED_TO). Buckets are created on first use: the folder is kvsd's own, and images
// should land there the first time.
//
// Durability comes in groups: Sync makes everything Put so far durable with one syncfs(2),
// because on small files an fsync per file costs more than the rest of the write (a caller
// that records progress durably, like the image generator's cursor, calls Sync first).
//
// Objects put one after another in the same directory with the same content type and
// metadata (the images of one fragment) share one metadata file under their names (hard
// links, Linux): making a file costs far more than naming one, the most on an ext4 without a
// journal, which skips every recently freed inode when it picks one. A put of one of those
// keys replaces its own name only; nothing writes a metadata file in place.
type Dir struct {
	Root string

	mu sync.Mutex
	// kept holds, by directory, the metadata file Put created there last, open, so that
	// the next objects with the same metadata link it (at most maxKept directories).
	kept map[string]keptFile
}

// keptFile is an open metadata file and its content.
type keptFile struct {
	fd   int
	data []byte
}

// maxKept bounds the open metadata files a Dir keeps: one per directory being written to
// (each image generation worker writes one stream's images at a time).
const maxKept = 16

// MetadataSuffix ends the name of the file that holds an object's content type and metadata.
const MetadataSuffix = ".metadata.json"

// Metadata is the content of an object's MetadataSuffix file.
type Metadata struct {
	ContentType string            `json:"ContentType"`
	Metadata    map[string]string `json:"Metadata"`
}

// bucketPattern is S3's bucket naming rule (3–63 characters of lower-case letters, digits,
// dots and hyphens, starting and ending with a letter or digit); it also keeps bucket names
// from naming anything outside Root.
var bucketPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// Put writes the object and its metadata; they are visible when it returns and durable after
// the next Sync.
func (d *Dir) Put(ctx context.Context, bucket, key string, body []byte, contentType string, meta map[string]string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	path, err := d.path(bucket, key)
	if err != nil {
		return err
	}
	m, err := json.Marshal(Metadata{ContentType: contentType, Metadata: meta})
	if err != nil {
		return &Error{Code: "InvalidArgument", Permanent: true, Err: err}
	}
	if err := d.putMetadata(path+MetadataSuffix, m); err != nil {
		return localError(err)
	}
	return localError(replace(path, body))
}

// Sync makes every object Put so far durable (file data, names and directories).
func (d *Dir) Sync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return localError(syncFS(d.Root))
}

// ReadMetadata returns what Put stored beside the object bucket/key.
func (d *Dir) ReadMetadata(bucket, key string) (Metadata, error) {
	var m Metadata
	path, err := d.path(bucket, key)
	if err != nil {
		return m, err
	}
	b, err := os.ReadFile(path + MetadataSuffix)
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(b, &m)
}

// path maps bucket/key to a file below Root, refusing anything that would leave the bucket:
// keys come from stream configurations, which any API caller can set.
func (d *Dir) path(bucket, key string) (string, error) {
	if !bucketPattern.MatchString(bucket) || strings.Contains(bucket, "..") {
		return "", &Error{Code: "InvalidBucketName", Permanent: true, Err: fmt.Errorf("bucket name %q is not a valid S3 bucket name", bucket)}
	}
	if len(key) == 0 || len(key) > 1024 {
		return "", &Error{Code: "KeyTooLongError", Permanent: true, Err: fmt.Errorf("object key of %d bytes (1–1024 allowed)", len(key))}
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.ContainsAny(seg, "\x00\\") || strings.HasSuffix(seg, MetadataSuffix) {
			return "", &Error{Code: "InvalidObjectName", Permanent: true,
				Err: fmt.Errorf("object key %q cannot be stored in a folder (empty, '.', '..' or '\\' segments, or a %s name)", key, MetadataSuffix)}
		}
	}
	return filepath.Join(d.Root, bucket, filepath.FromSlash(key)), nil
}

// errUnsupported: the file system cannot create a file the way createNew does.
var errUnsupported = errors.New("objstore: unnamed temporary files unsupported here")

// replace writes data to path so that readers see the old file or the whole new one. A new
// name is linked in from an unnamed file once written (createNew, Linux); an existing name,
// or where that does not work, gets a temporary file beside it renamed over it. A missing
// directory is made on the way.
func replace(path string, data []byte) error {
	if !syncEach {
		err := inDir(path, func() error { return createNew(path, data) })
		if err == nil || !(errors.Is(err, fs.ErrExist) || errors.Is(err, errUnsupported)) {
			return err
		}
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+"."+strconv.FormatUint(rand.Uint64(), 36)+".tmp")
	var f *os.File
	err := inDir(path, func() (err error) {
		f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		return err
	})
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil && syncEach {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// inDir runs create, a creation of path or of a file beside it, and runs it again after
// making path's directory when that was missing (an object's first in its directory).
func inDir(path string, create func() error) error {
	err := create()
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		err = create()
	}
	return err
}

// localError classifies file-system failures: a full disk frees up, a permission or a file
// where a directory should be does not change by itself.
func localError(err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, fs.ErrPermission):
		return &Error{Code: "AccessDenied", Permanent: true, Err: err}
	case errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.ENAMETOOLONG):
		return &Error{Code: "InvalidObjectName", Permanent: true, Err: err}
	}
	return &Error{Code: "LocalWriteError", Err: err}
}
