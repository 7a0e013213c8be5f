package disk_test

import (
	"context"
	"crypto/cipher"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/fragstore/disk"
	"github.com/kvsd/kvsd/internal/keys"
)

// renewingKeys is a real key file whose stream data key the test renews at will, as the Ring
// does once a day: the next segment then takes a new data key.
type renewingKeys struct {
	file *keys.File
	ring *keys.Ring // opens stored keys

	mu  sync.Mutex
	cur *keys.DataKey
}

func newRenewingKeys(t *testing.T, dir string) *renewingKeys {
	f, err := keys.LoadFile(filepath.Join(dir, keys.DefaultKeyFile), true)
	require.NoError(t, err)
	r := &renewingKeys{file: f, ring: keys.NewRing(f, nil)}
	r.renew(t)
	return r
}

// renew makes a new current data key. It may run off the test's goroutine: it fails the test
// without stopping it.
func (r *renewingKeys) renew(t *testing.T) *keys.DataKey {
	plain, w, err := r.file.GenerateDataKey(context.Background(), "")
	if err != nil {
		t.Error(err)
		return nil
	}
	aead, err := keys.NewAEAD(plain)
	if err != nil {
		t.Error(err)
		return nil
	}
	dk := &keys.DataKey{AEAD: aead, Wrapped: w}
	r.mu.Lock()
	r.cur = dk
	r.mu.Unlock()
	return dk
}

func (r *renewingKeys) DataKey(context.Context, fragstore.Key) (*keys.DataKey, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur, nil
}

func (r *renewingKeys) Open(ctx context.Context, w keys.Wrapped) (cipher.AEAD, error) {
	return r.ring.Open(ctx, w)
}

// A record prepared (sealed) with the stream's data key of the time, then appended to a new
// segment that took a renewed key, is sealed again with the new one: every record opens with
// the key its segment header names.
func TestPreparedAcrossKeyRenewal(t *testing.T) {
	dir := t.TempDir()
	rk := newRenewingKeys(t, dir)
	m := open(t, disk.Config{Dir: filepath.Join(dir, "media"), Keys: rk, SegmentSpan: time.Second})

	r1 := rec(1, 5000, base)
	l1, err := m.Append(ctx, key, r1)
	require.NoError(t, err)
	r2 := rec(2, 7000, base.Add(time.Second)) // a second later: a new segment
	p, err := m.Prepare(ctx, key, r2)
	require.NoError(t, err)
	renewed := rk.renew(t)
	l2, err := m.AppendPrepared(ctx, key, p)
	require.NoError(t, err)
	require.NotEqual(t, l1.Segment, l2.Segment)

	for _, c := range []struct {
		loc fragstore.Location
		r   fragstore.Record
	}{{l1, r1}, {l2, r2}} {
		got, err := m.Read(ctx, key, c.loc)
		require.NoError(t, err)
		require.Equal(t, c.r.Data, got)
	}
	info, _, err := disk.ScanSegment(segPath(filepath.Join(dir, "media"), key, l2.Segment), func(disk.ScannedRecord) error { return nil })
	require.NoError(t, err)
	require.Equal(t, renewed.Wrapped, *info.DataKey)

	// A released record is not appended again.
	_, err = m.AppendPrepared(ctx, key, p)
	require.Error(t, err)
}

// One goroutine prepares records while another appends the ones before, as ingest does, with
// segments rolling and the data key renewed under them: every record reads back.
func TestPrepareWhileAppending(t *testing.T) {
	dir := t.TempDir()
	rk := newRenewingKeys(t, dir)
	m := open(t, disk.Config{Dir: filepath.Join(dir, "media"), Keys: rk, SegmentSpan: time.Second})

	const n = 40
	records := make([]fragstore.Record, n)
	for i := range records {
		// Three records a second: a new segment every third one.
		records[i] = rec(uint64(i+1), 3000+i*97, base.Add(time.Duration(i)*time.Second/3))
	}
	next := make(chan fragstore.PreparedRecord)
	go func() {
		defer close(next)
		for i, r := range records {
			if i%5 == 4 {
				rk.renew(t)
			}
			p, err := m.Prepare(ctx, key, r)
			if err != nil {
				t.Error(err)
				return
			}
			next <- p
		}
	}()
	var locs []fragstore.Location
	for p := range next {
		loc, err := m.AppendPrepared(ctx, key, p)
		require.NoError(t, err)
		locs = append(locs, loc)
	}
	require.Len(t, locs, n)
	require.Greater(t, locs[n-1].Segment, locs[0].Segment+10)
	for i, loc := range locs {
		got, err := m.Read(ctx, key, loc)
		require.NoError(t, err, "record %d", i+1)
		require.Equal(t, records[i].Data, got)
	}
}
