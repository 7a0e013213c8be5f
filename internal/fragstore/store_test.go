package fragstore_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/fragstore/disk"
	"github.com/kvsd/kvsd/internal/stream"
)

func TestAppendRead(t *testing.T) {
	e := openEnv(t, t.TempDir())
	e.append(key, span(1, 40)...)
	e.check(key, span(1, 40))

	last, err := e.s.LastSeq(ctx, key)
	require.NoError(t, err)
	require.Equal(t, uint64(40), last)
	f, err := e.s.Fragment(ctx, key, 7)
	require.NoError(t, err)
	require.Equal(t, fragment.FormatNumber(key.CreatedMs, 7), f.Number)
	h, err := e.s.Header(ctx, key, headerID)
	require.NoError(t, err)
	require.Equal(t, header, h)

	_, err = e.s.Fragment(ctx, key, 41)
	require.ErrorIs(t, err, fragstore.ErrNotFound)
	_, err = e.s.Header(ctx, key, "nope")
	require.ErrorIs(t, err, fragstore.ErrNotFound)
	_, err = e.s.Media(ctx, key, &fragment.Fragment{Seq: 41})
	require.ErrorIs(t, err, fragstore.ErrNotFound)

	// Every record is a fragment written at 2 s spacing: 30 s segments hold 15 each.
	segs, err := e.media.Segments(ctx, key)
	require.NoError(t, err)
	require.Len(t, segs, 3)

	e = e.reopen()
	e.check(key, span(1, 40))
	e.append(key, 41)
	e.check(key, span(1, 41))
}

// plainMedia hides disk.Media's ReadAppend, as a backend without it would be.
type plainMedia struct{ fragstore.Media }

// TestMediaAppendFallback: with a backend that cannot read into a buffer, MediaAppend reads
// and copies, with the same result.
func TestMediaAppendFallback(t *testing.T) {
	e := openEnv(t, t.TempDir())
	e.append(key, 1, 2, 3)
	s, err := fragstore.Open(fragstore.Config{Media: plainMedia{e.media}, Index: e.db})
	require.NoError(t, err)
	for seq := uint64(1); seq <= 3; seq++ {
		f, err := s.Fragment(ctx, key, seq)
		require.NoError(t, err)
		b, err := s.MediaAppend(ctx, key, f, []byte("x"))
		require.NoError(t, err)
		require.Equal(t, append([]byte("x"), media(seq)...), b)
	}
	b, err := s.MediaAppend(ctx, key, &fragment.Fragment{Seq: 41}, []byte("x"))
	require.ErrorIs(t, err, fragstore.ErrNotFound)
	require.Equal(t, []byte("x"), b)
}

func TestAppendRejects(t *testing.T) {
	e := openEnv(t, t.TempDir())
	e.append(key, 1, 2)
	for name, tc := range map[string]struct {
		f      *fragment.Fragment
		header []byte
		media  []byte
	}{
		"seq not after last": {frag(key, 2), header, media(2)},
		"seq 0":              {&fragment.Fragment{Number: fragment.FormatNumber(key.CreatedMs, 0), HeaderID: headerID}, header, media(3)},
		"number of another stream": {func() *fragment.Fragment {
			f := frag(key, 3)
			f.Number = fragment.FormatNumber(key.CreatedMs+1, 3)
			return f
		}(), header, media(3)},
		"no header":    {frag(key, 3), nil, media(3)},
		"no header id": {func() *fragment.Fragment { f := frag(key, 3); f.HeaderID = ""; return f }(), header, media(3)},
		"no media":     {frag(key, 3), header, nil},
		"nil fragment": {nil, header, media(3)},
	} {
		require.Error(t, e.s.Append(ctx, key, tc.header, tc.f, tc.media), name)
	}
	e.check(key, span(1, 2))
	// A gap in sequences is allowed (a sequence reserved by a failed append stays unused).
	e.append(key, 4)
	e.check(key, []uint64{1, 2, 4})
}

func TestListPagesAndBounds(t *testing.T) {
	e := openEnv(t, t.TempDir())
	e.append(key, span(1, 30)...) // producer starts base, base+2 s, …; server 300 ms later
	for _, kind := range []fragstore.TimeKind{fragstore.ProducerTime, fragstore.ServerTime} {
		var got []uint64
		var cur fragstore.Cursor
		for pages := 0; ; pages++ {
			require.Less(t, pages, 20)
			fs, next, err := e.s.List(ctx, key, kind, base, base.Add(time.Hour), cur, 7)
			require.NoError(t, err)
			for _, f := range fs {
				got = append(got, f.Seq)
			}
			if next.String() == "" {
				break
			}
			// Through the token form, as ListFragments carries it.
			require.Regexp(t, regexp.MustCompile(`^[a-zA-Z0-9+/]+={0,2}$`), next.String())
			require.LessOrEqual(t, len(next.String()), 4096)
			cur, err = fragstore.ParseCursor(next.String())
			require.NoError(t, err)
		}
		require.Equal(t, span(1, 30), got)
	}

	// Sub-millisecond bounds: a start exactly on the bound is in, a start before it is not.
	list := func(kind fragstore.TimeKind, from, to time.Time) []uint64 {
		fs, next, err := e.s.List(ctx, key, kind, from, to, fragstore.Cursor{}, 1000)
		require.NoError(t, err)
		require.Empty(t, next.String())
		var out []uint64
		for _, f := range fs {
			out = append(out, f.Seq)
		}
		return out
	}
	s2 := base.Add(2 * time.Second) // producer start of 2
	require.Equal(t, []uint64{2}, list(fragstore.ProducerTime, s2, s2))
	require.Empty(t, list(fragstore.ProducerTime, s2.Add(time.Microsecond), s2.Add(2*time.Second-time.Microsecond)))
	require.Equal(t, []uint64{2}, list(fragstore.ProducerTime, s2.Add(-time.Microsecond), s2.Add(time.Microsecond)))
	require.Equal(t, []uint64{2, 3}, list(fragstore.ServerTime, s2, s2.Add(2300*time.Millisecond)))
	require.Empty(t, list(fragstore.ProducerTime, s2, s2.Add(-time.Millisecond)))

	// A page ending exactly at the last match has no next page.
	fs, next, err := e.s.List(ctx, key, fragstore.ProducerTime, base, base.Add(18*time.Second), fragstore.Cursor{}, 10)
	require.NoError(t, err)
	require.Len(t, fs, 10)
	require.Empty(t, next.String())

	// SeqAt and After through the Store.
	seq, err := e.s.SeqAt(ctx, key, fragstore.ProducerTime, s2.Add(1999*time.Millisecond+999*time.Microsecond))
	require.NoError(t, err)
	require.Equal(t, uint64(2), seq)
	seq, err = e.s.SeqAt(ctx, key, fragstore.ServerTime, base)
	require.NoError(t, err)
	require.Equal(t, uint64(1), seq)
	_, err = e.s.SeqAt(ctx, key, fragstore.ServerTime, base.Add(time.Hour))
	require.ErrorIs(t, err, fragstore.ErrNotFound)
	after, err := e.s.After(ctx, key, 28, 10)
	require.NoError(t, err)
	require.Len(t, after, 2)
}

func TestCursorTokens(t *testing.T) {
	require.Equal(t, "", fragstore.Cursor{}.String())
	c, err := fragstore.ParseCursor("")
	require.NoError(t, err)
	require.Equal(t, fragstore.Cursor{}, c)

	for _, bad := range []string{"!!!", "AAAA", "not base64", strings.Repeat("A", 4096), "AQAAAAAAAAAAAAAAAAAAAAAA==", "AwEAAAAAAAAAAAAAAAAAAAAA"} {
		_, err := fragstore.ParseCursor(bad)
		require.ErrorIs(t, err, stream.ErrInvalidArgument, "%q", bad)
	}

	e := openEnv(t, t.TempDir())
	e.append(key, span(1, 3)...)
	_, next, err := e.s.List(ctx, key, fragstore.ProducerTime, base, base.Add(time.Hour), fragstore.Cursor{}, 1)
	require.NoError(t, err)
	_, _, err = e.s.List(ctx, key, fragstore.ServerTime, base, base.Add(time.Hour), next, 1)
	require.ErrorIs(t, err, stream.ErrInvalidArgument, "a producer-time cursor on the server timeline")
}

func TestDeleteStream(t *testing.T) {
	e := openEnv(t, t.TempDir())
	other := fragstore.Key{Name: key.Name, CreatedMs: key.CreatedMs + 5000}
	e.append(key, span(1, 20)...)
	e.append(other, span(1, 3)...)
	require.NoError(t, e.s.DeleteStream(ctx, key))

	e.check(key, nil)
	last, err := e.s.LastSeq(ctx, key)
	require.NoError(t, err)
	require.Zero(t, last)
	segs, err := e.media.Segments(ctx, key)
	require.NoError(t, err)
	require.Empty(t, segs)
	keys, err := e.s.Streams(ctx)
	require.NoError(t, err)
	require.Equal(t, []fragstore.Key{other}, keys)
	e.check(other, span(1, 3))

	e.append(key, 1) // the key starts over
	e = e.reopen()
	e.check(key, []uint64{1})
}

func TestConcurrentStreams(t *testing.T) {
	e := openEnv(t, t.TempDir())
	const streams, each = 6, 20
	keys := make([]fragstore.Key, streams)
	for i := range keys {
		keys[i] = fragstore.Key{Name: "cam" + string(rune('a'+i)), CreatedMs: int64(i + 1)}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for _, k := range keys {
		wg.Go(func() {
			for seq := uint64(1); seq <= each; seq++ {
				if err := e.s.Append(ctx, k, header, frag(k, seq), media(seq)); err != nil {
					errs <- err
				}
			}
		})
		wg.Go(func() { // readers and retention alongside the writer
			for range each {
				fs, _, err := e.s.List(ctx, k, fragstore.ServerTime, base, base.Add(time.Hour), fragstore.Cursor{}, 1000)
				if err == nil && len(fs) > 0 {
					_, err = e.s.Media(ctx, k, fs[len(fs)-1])
					if errors.Is(err, fragstore.ErrNotFound) {
						err = nil // expired in between
					}
				}
				if err == nil {
					_, err = e.s.Expire(ctx, k, base.Add(4*time.Second))
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for _, k := range keys {
		_, err := e.s.Expire(ctx, k, base.Add(4*time.Second))
		require.NoError(t, err)
		e.check(k, span(3, each)) // 1 and 2 started before base+4 s on the server timeline
	}
	e = e.reopen()
	for _, k := range keys {
		e.check(k, span(3, each))
	}
}

func TestMetrics(t *testing.T) {
	dir := t.TempDir()
	e := openEnv(t, dir)
	e.close()
	e.openBackends()
	reg := prometheus.NewRegistry()
	s, err := fragstore.Open(fragstore.Config{Media: e.media, Index: e.db, Registerer: reg})
	require.NoError(t, err)
	e.s = s
	e.append(key, 1, 2, 3)
	n, err := s.Expire(ctx, key, frag(key, 3).ServerTime)
	require.NoError(t, err)
	require.Equal(t, 2, n)

	mfs, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, mf := range mfs { // (no import of the client_model types: it is not a direct dependency)
		m := mf.GetMetric()[0]
		got[mf.GetName()] = m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
	}
	require.Equal(t, map[string]float64{
		"kvsd_store_bytes_total":             float64(len(media(1)) + len(media(2)) + len(media(3))),
		"kvsd_store_fragments_expired_total": 2,
		"kvsd_store_fragments_evicted_total": 0,
		"kvsd_store_append_seconds":          3, // observations
		"kvsd_store_media_write_seconds":     3,
		"kvsd_store_commit_seconds":          3,
		"kvsd_store_commit_fragments":        3, // one commit each: every Append waits for its own
	}, got)

	// A second store on the same registry is refused rather than counting twice.
	_, err = fragstore.Open(fragstore.Config{Media: e.media, Index: e.db, Registerer: reg})
	require.Error(t, err)
}

// TestSegmentsDescribeThemselves: the media alone names each fragment's stream, number,
// timestamps and header, so an index could be rebuilt from it.
func TestSegmentsDescribeThemselves(t *testing.T) {
	e := openEnv(t, t.TempDir())
	e.append(key, span(1, 20)...)
	entries, err := os.ReadDir(streamDir(e, key))
	require.NoError(t, err)
	seen := 0
	for _, d := range entries {
		path := filepath.Join(streamDir(e, key), d.Name())
		info, _, err := disk.ScanSegment(path, func(disk.ScannedRecord) error { return nil })
		require.NoError(t, err)
		require.NotNil(t, info.DataKey, "the segment names its data key")
		_, _, err = disk.ScanSegment(path, func(r disk.ScannedRecord) error {
			var m struct {
				Number     string `json:"number"`
				ServerMs   int64  `json:"serverMs"`
				ProducerMs int64  `json:"producerMs"`
				HeaderID   string `json:"headerId"`
				Header     []byte `json:"header"`
			}
			require.NoError(t, json.Unmarshal(r.Meta, &m))
			f, err := e.s.Fragment(ctx, key, r.Seq)
			require.NoError(t, err)
			require.Equal(t, f.Number, m.Number)
			require.Equal(t, f.ServerTime.UnixMilli(), m.ServerMs)
			require.Equal(t, f.ProducerTime.UnixMilli(), m.ProducerMs)
			require.Equal(t, headerID, m.HeaderID)
			require.Equal(t, header, m.Header)
			require.True(t, r.Sealed)
			require.NotContains(t, string(r.Data), string(media(r.Seq)[:64]))
			data, err := disk.Unseal(ctx, e.media.Keys(), info, r)
			require.NoError(t, err)
			require.Equal(t, media(r.Seq), data)
			seen++
			return nil
		})
		require.NoError(t, err)
		require.Equal(t, key, info.Key)
	}
	require.Equal(t, 20, seen)
}

func TestOpenNeedsBackends(t *testing.T) {
	_, err := fragstore.Open(fragstore.Config{})
	require.Error(t, err)
}

// Fragments prepared ahead of their writes (as ingest prepares the next while one is written)
// are stored as Write stores them; one released unwritten leaves nothing behind, and one
// cannot be written twice.
func TestPreparedAhead(t *testing.T) {
	for _, plain := range []bool{false, true} {
		t.Run(fmt.Sprintf("plain=%v", plain), func(t *testing.T) {
			e := openEnvWith(t, t.TempDir(), plain)
			var ps []*fragstore.Prepared
			for seq := uint64(1); seq <= 3; seq++ {
				p, err := e.s.Prepare(ctx, key, header, frag(key, seq), media(seq))
				require.NoError(t, err)
				ps = append(ps, p)
			}
			ps[2].Release()
			for _, p := range ps[:2] {
				c, err := e.s.WritePrepared(ctx, p, 0)
				require.NoError(t, err)
				require.NoError(t, c.Wait(ctx))
			}
			_, err := e.s.WritePrepared(ctx, ps[1], 0)
			require.Error(t, err)
			e.check(key, span(1, 2))

			e = e.reopen()
			e.check(key, span(1, 2))
			require.NotContains(t, e.logs.String(), "unindexed", "recovery found nothing to cut")
			e.append(key, 3)
			e.check(key, span(1, 3))
		})
	}
}
