package bolt

import (
	"bytes"
	"context"

	bbolt "go.etcd.io/bbolt"

	"github.com/kvsd/kvsd/internal/catalog"
)

// bucketState holds small durable records of background components (image generation,
// notifications): one sub-bucket per component, key → value. Their cursors over the fragment
// index live here, which is what makes their work survive restarts.
var bucketState = []byte("state")

// LoadState returns the value saved under component/key, or catalog.ErrNoState.
func (d *DB) LoadState(ctx context.Context, component, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []byte
	err := d.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketState)
		if b != nil {
			b = b.Bucket([]byte(component))
		}
		if b == nil {
			return catalog.ErrNoState
		}
		v := b.Get([]byte(key))
		if v == nil {
			return catalog.ErrNoState
		}
		out = bytes.Clone(v)
		return nil
	})
	return out, err
}

// SaveState durably stores value under component/key. Concurrent callers share commits.
func (d *DB) SaveState(ctx context.Context, component, key string, value []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return d.db.Batch(putState(component, key, value))
}

func putState(component, key string, value []byte) func(tx *bbolt.Tx) error {
	return func(tx *bbolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(bucketState)
		if err != nil {
			return err
		}
		b, err := root.CreateBucketIfNotExists([]byte(component))
		if err != nil {
			return err
		}
		return b.Put([]byte(key), value)
	}
}

// DeleteState removes component/key; a missing key is not an error.
func (d *DB) DeleteState(ctx context.Context, component, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return d.db.Batch(func(tx *bbolt.Tx) error {
		if b := tx.Bucket(bucketState); b != nil {
			if c := b.Bucket([]byte(component)); c != nil {
				return c.Delete([]byte(key))
			}
		}
		return nil
	})
}

// StateKeys lists the keys saved for component, in byte order.
func (d *DB) StateKeys(ctx context.Context, component string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var keys []string
	err := d.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketState)
		if b != nil {
			b = b.Bucket([]byte(component))
		}
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, _ []byte) error {
			keys = append(keys, string(k))
			return nil
		})
	})
	return keys, err
}
