// Package bolt is kvsd's embedded catalog: a single bbolt file holding every stream's metadata
// and the fragment index.
//
// File layout (schema version 1; docs/format/catalog.md has the full description):
//
//	meta      bucket: "schema" -> decimal schema version ("1")
//	streams   bucket: stream name -> JSON stream record {"v":1,"name":...}
//	created   bucket: stream name -> latest creation ms ever stored under it (8 bytes), kept
//	          after the stream is deleted, so creation times strictly increase per name
//	fragments bucket: per stream Key, the fragment index (fragments.go; catalog.Index)
//
// Keys in streams are the raw stream names, so bbolt's byte order is the ListStreams order and
// a prefix listing is a cursor Seek plus a walk that stops at the first non-matching key.
//
// The stream methods use Update (one commit each, rare). Fragment entries arrive grouped by
// fragstore's group commit (PutFragments: one Update for many streams' entries); PutFragment,
// expiries and state writes go through Batch so that concurrent callers share fsyncs.
package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/kvsd/kvsd/internal/catalog"
	"github.com/kvsd/kvsd/internal/catalog/streamrec"
	"github.com/kvsd/kvsd/internal/stream"
)

// schemaVersion is the version of the file layout this build writes and understands.
const schemaVersion = 1

// lockTimeout bounds the wait for bbolt's exclusive file lock: another kvsd holding it will
// not let go, so failing fast with a clear message beats hanging at startup.
const lockTimeout = time.Second

var (
	bucketMeta    = []byte("meta")
	bucketStreams = []byte("streams")
	bucketCreated = []byte("created")
	keySchema     = []byte("schema")
)

var _ catalog.Catalog = (*DB)(nil)

// DB is the bbolt-backed catalog.Catalog: stream records (here), the fragment index
// (fragments.go) and state (state.go). It is safe for concurrent use.
type DB struct {
	db     *bbolt.DB
	epochs atomic.Uint64 // the last lease epoch granted (lease.go)
	work   workClaims    // work claims, in memory (work.go)
}

// Open opens or creates the catalog file at path.
func Open(path string) (*DB, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, fmt.Errorf("open catalog %s: data dir is in use by another kvsd process (file lock not released within %v)", path, lockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("open catalog %s: %w", path, err)
	}
	// Batch waits up to MaxBatchDelay for other writers to share a commit. bbolt's 10 ms default
	// would be added to every lone call; 1 ms still lets concurrent callers fill a batch, since
	// each commit's fsync takes longer. (Fragment entries do not wait here: fragstore's group
	// commit calls PutFragments.)
	db.MaxBatchDelay = time.Millisecond
	if err := db.Update(initSchema); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open catalog %s: %w", path, err)
	}
	return &DB{db: db}, nil
}

// initSchema stamps a new file with the schema version and refuses files a newer kvsd wrote.
func initSchema(tx *bbolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	if v := meta.Get(keySchema); v != nil {
		n, err := strconv.Atoi(string(v))
		switch {
		case err != nil || n < 1:
			return fmt.Errorf("schema version %q is not valid; the file is not a kvsd catalog or is damaged", v)
		case n > schemaVersion:
			return fmt.Errorf("schema version %d is newer than this kvsd supports (%d); run a newer kvsd", n, schemaVersion)
		}
	} else if err := meta.Put(keySchema, []byte(strconv.Itoa(schemaVersion))); err != nil {
		return err
	}
	if _, err := tx.CreateBucketIfNotExists(bucketStreams); err != nil {
		return err
	}
	// Older schema-1 builds ignore these buckets, so adding them needs no version bump.
	if _, err := tx.CreateBucketIfNotExists(bucketCreated); err != nil {
		return err
	}
	_, err = tx.CreateBucketIfNotExists(bucketFragments)
	return err
}

// Close releases the file and its lock.
func (d *DB) Close() error { return d.db.Close() }

func notFound(name string) error {
	return fmt.Errorf("%w: stream %s does not exist", stream.ErrNotFound, name)
}

// load decodes the named stream from b, or returns a wrapped ErrNotFound.
func load(b *bbolt.Bucket, name string) (*stream.Stream, error) {
	v := b.Get([]byte(name))
	if v == nil {
		return nil, notFound(name)
	}
	return streamrec.Decode(v)
}

// CreateStream stores s; ErrInUse if the name is taken. It moves s's creation time past the
// latest one stored under the name (stream.Store.CreateStream).
func (d *DB) CreateStream(ctx context.Context, s *stream.Stream) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return d.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketStreams)
		if b.Get([]byte(s.Name)) != nil {
			return fmt.Errorf("%w: stream %s already exists", stream.ErrInUse, s.Name)
		}
		if last, ok := lastCreated(tx, s.Name); ok && s.CreationTime.UnixMilli() <= last {
			s.SetCreationTime(time.UnixMilli(last + 1).UTC())
		}
		if err := noteCreated(tx, s); err != nil {
			return err
		}
		v, err := streamrec.Encode(s)
		if err != nil {
			return err
		}
		return b.Put([]byte(s.Name), v)
	})
}

// lastCreated returns the latest creation ms noted for name.
func lastCreated(tx *bbolt.Tx, name string) (int64, bool) {
	v := tx.Bucket(bucketCreated).Get([]byte(name))
	if len(v) != 8 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(v)), true
}

// noteCreated records s's creation time as its name's latest unless a later one is noted
// (streams created before the bucket existed are noted when they are deleted).
func noteCreated(tx *bbolt.Tx, s *stream.Stream) error {
	ms := s.CreationTime.UnixMilli()
	if last, ok := lastCreated(tx, s.Name); ok && last >= ms {
		return nil
	}
	return tx.Bucket(bucketCreated).Put([]byte(s.Name), binary.BigEndian.AppendUint64(nil, uint64(ms)))
}

// GetStream returns a fresh copy of the named stream.
func (d *DB) GetStream(ctx context.Context, name string) (*stream.Stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var s *stream.Stream
	err := d.db.View(func(tx *bbolt.Tx) (err error) {
		s, err = load(tx.Bucket(bucketStreams), name)
		return err
	})
	return s, err
}

// ListStreams returns up to limit streams named with prefix and sorting after startAfter.
func (d *DB) ListStreams(ctx context.Context, prefix, startAfter string, limit int) ([]*stream.Stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit < 1 {
		return nil, nil
	}
	pre, after := []byte(prefix), []byte(startAfter)
	// Start at whichever bound is later; a startAfter before the prefix range is irrelevant.
	start := pre
	if bytes.Compare(after, pre) > 0 {
		start = after
	}
	var out []*stream.Stream
	err := d.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketStreams).Cursor()
		for k, v := c.Seek(start); k != nil && len(out) < limit; k, v = c.Next() {
			if !bytes.HasPrefix(k, pre) {
				break // keys are sorted: nothing later can match either
			}
			if bytes.Equal(k, after) {
				continue
			}
			s, err := streamrec.Decode(v)
			if err != nil {
				return err
			}
			out = append(out, s)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateStream applies fn to a copy of the stream and stores it, in one write transaction, so
// concurrent updates serialise and fn's checks see the value it replaces. An error from fn
// rolls back and is returned unwrapped.
func (d *DB) UpdateStream(ctx context.Context, name string, fn func(*stream.Stream) error) (*stream.Stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var s *stream.Stream
	err := d.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketStreams)
		var err error
		if s, err = load(b, name); err != nil {
			return err
		}
		if err := fn(s); err != nil {
			return err
		}
		if s.Name != name {
			// The key is the name; a rename here would leave the record under the old key.
			return fmt.Errorf("update stream %s: fn renamed it to %s; streams cannot be renamed", name, s.Name)
		}
		v, err := streamrec.Encode(s)
		if err != nil {
			return err
		}
		return b.Put([]byte(name), v)
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// DeleteStream removes the stream if check, run inside the transaction, returns nil; check's
// error is returned unwrapped.
func (d *DB) DeleteStream(ctx context.Context, name string, check func(*stream.Stream) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return d.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketStreams)
		s, err := load(b, name)
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(s); err != nil {
				return err
			}
		}
		if err := noteCreated(tx, s); err != nil {
			return err
		}
		return b.Delete([]byte(name))
	})
}
