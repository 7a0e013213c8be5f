package fragstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/fragstore"
)

func diskUsage(e *env) int64 {
	var n int64
	for _, s := range segFiles(e, key) {
		n += s
	}
	return n
}

func TestExpire(t *testing.T) {
	e := openEnv(t, t.TempDir())
	e.append(key, span(1, 100)...) // 2 s apart: 30 s segments start at 1, 16, 31, 46, 61, 76, 91
	require.Len(t, segFiles(e, key), 7)
	full := diskUsage(e)

	// Server time strictly before the cutoff: 40 itself stays.
	n, err := e.s.Expire(ctx, key, frag(key, 40).ServerTime)
	require.NoError(t, err)
	require.Equal(t, 39, n)
	e.check(key, span(40, 100))
	require.NotContains(t, segFiles(e, key), fmt.Sprintf("%020d.seg", 1))
	require.NotContains(t, segFiles(e, key), fmt.Sprintf("%020d.seg", 16))
	require.Contains(t, segFiles(e, key), fmt.Sprintf("%020d.seg", 31), "31 still holds 40..45")
	require.Len(t, segFiles(e, key), 5)
	require.Less(t, diskUsage(e), full)

	// A cutoff a nanosecond after 40's ms start takes 40 as well.
	n, err = e.s.Expire(ctx, key, frag(key, 40).ServerTime.Add(time.Nanosecond))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	n, err = e.s.Expire(ctx, key, frag(key, 40).ServerTime)
	require.NoError(t, err)
	require.Zero(t, n, "idempotent")

	// A segment goes as soon as its newest fragment does.
	n, err = e.s.Expire(ctx, key, frag(key, 46).ServerTime)
	require.NoError(t, err)
	require.Equal(t, 5, n)
	require.NotContains(t, segFiles(e, key), fmt.Sprintf("%020d.seg", 31))

	// Everything: no media left, and numbering goes on.
	n, err = e.s.Expire(ctx, key, base.Add(24*time.Hour))
	require.NoError(t, err)
	require.Equal(t, 55, n)
	require.Empty(t, segFiles(e, key))
	_, err = e.s.Header(ctx, key, headerID)
	require.Error(t, err, "no fragment uses the header any more")
	last, err := e.s.LastSeq(ctx, key)
	require.NoError(t, err)
	require.Equal(t, uint64(100), last)
	streams, err := e.s.Streams(ctx)
	require.NoError(t, err)
	require.Contains(t, streams, key)
	e.append(key, 101)
	e = e.reopen()
	e.check(key, []uint64{101})
}

// TestExpireBacklog: more than one commit's worth of expired fragments (a retention cut or
// days of downtime). The index is bulk-loaded with entries sharing one media record.
func TestExpireBacklog(t *testing.T) {
	e := openEnv(t, t.TempDir())
	loc, err := e.media.Append(ctx, key, fragstore.Record{Seq: 1, Time: base, Data: []byte("shared")})
	require.NoError(t, err)
	var entries []fragstore.Entry
	for seq := uint64(1); seq <= 4500; seq++ {
		f := frag(key, seq)
		f.Size = loc.Length
		entries = append(entries, fragstore.Entry{Fragment: f, Location: loc})
	}
	require.NoError(t, e.db.Import(ctx, key, map[string][]byte{headerID: header}, entries))

	n, err := e.s.Expire(ctx, key, frag(key, 4401).ServerTime)
	require.NoError(t, err)
	require.Equal(t, 4400, n)
	left, err := e.s.After(ctx, key, 0, 1000)
	require.NoError(t, err)
	require.Len(t, left, 100)
	require.Equal(t, uint64(4401), left[0].Seq)
	b, err := e.s.Media(ctx, key, left[0])
	require.NoError(t, err)
	require.Equal(t, "shared", string(b))
}
