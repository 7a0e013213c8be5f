package fragstore_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/catalog/bolt"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/fragstore/disk"
	kvskeys "github.com/kvsd/kvsd/internal/keys"
	"github.com/kvsd/kvsd/internal/logtest"
	"github.com/kvsd/kvsd/internal/mkv"
)

var (
	ctx  = context.Background()
	key  = fragstore.Key{Name: "cam-1", CreatedMs: 1700000000123}
	base = time.UnixMilli(1700000100000).UTC()
)

// env is a Store over a data dir laid out as kvsd lays it out: catalog.db and media/.
type env struct {
	t     testing.TB
	dir   string
	db    *bolt.DB
	media *disk.Media
	s     *fragstore.Store
	logs  *logtest.Buffer
	buf   []byte // reused by check's MediaAppend
	plain bool   // media in clear (no Keys), as before encryption at rest
}

func openEnv(t testing.TB, dir string) *env {
	t.Helper()
	return openEnvWith(t, dir, false)
}

// openEnvWith is openEnv with the media encrypted (a key file in dir, as kvsd does) or not.
func openEnvWith(t testing.TB, dir string, plain bool) *env {
	t.Helper()
	e := &env{t: t, dir: dir, logs: &logtest.Buffer{}, plain: plain}
	e.openBackends()
	s, err := fragstore.Open(fragstore.Config{Media: e.media, Index: e.db,
		Logger: slog.New(slog.NewTextHandler(e.logs, nil))})
	require.NoError(t, err)
	e.s = s
	t.Cleanup(e.close)
	return e
}

// openBackends opens catalog and media without a Store (no recovery): what a crash test uses
// to leave the backends in the states a crash would.
func (e *env) openBackends() {
	db, err := bolt.Open(filepath.Join(e.dir, "catalog.db"))
	require.NoError(e.t, err)
	cfg := disk.Config{Dir: filepath.Join(e.dir, "media")}
	if !e.plain {
		f, err := kvskeys.LoadFile(filepath.Join(e.dir, kvskeys.DefaultKeyFile), true)
		require.NoError(e.t, err)
		cfg.Keys = kvskeys.NewRing(f, nil)
	}
	m, err := disk.Open(cfg)
	require.NoError(e.t, err)
	e.db, e.media = db, m
}

func (e *env) close() {
	if e.s != nil {
		require.NoError(e.t, e.s.Close())
		e.s = nil
	} else if e.media != nil {
		require.NoError(e.t, e.media.Close())
	}
	e.media = nil
	if e.db != nil {
		require.NoError(e.t, e.db.Close())
		e.db = nil
	}
}

// reopen closes everything and opens a Store again, running recovery.
func (e *env) reopen() *env {
	e.close()
	return openEnvWith(e.t, e.dir, e.plain)
}

var header = []byte("\x1a\x45\xdf\xa3 EBML … Tracks")

const headerID = "hdr-1"

// frag is fragment seq of k: 2 s long, producer start base+2(seq-1) s, server 300 ms later.
func frag(k fragstore.Key, seq uint64) *fragment.Fragment {
	p := base.Add(time.Duration(seq-1) * 2 * time.Second)
	return &fragment.Fragment{
		Seq: seq, Number: fragment.FormatNumber(k.CreatedMs, seq), Timecode: uint64(p.UnixMilli()),
		ProducerTime: p, ServerTime: p.Add(300 * time.Millisecond), Duration: 2 * time.Second,
		HeaderID: headerID, Tags: []mkv.SimpleTag{{Name: "n", Value: fmt.Sprint(seq)}},
	}
}

// media is the deterministic content of fragment seq (its size varies with seq too).
func media(seq uint64) []byte {
	r := rand.New(rand.NewPCG(seq, 77))
	b := make([]byte, 1000+r.IntN(40000))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func (e *env) append(k fragstore.Key, seqs ...uint64) {
	e.t.Helper()
	for _, seq := range seqs {
		f := frag(k, seq)
		require.NoError(e.t, e.s.Append(ctx, k, header, f, media(seq)))
		require.Equal(e.t, int64(len(media(seq))), f.Size)
	}
}

func span(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// check asserts that exactly seqs are stored for k, each entry and its media as appended.
func (e *env) check(k fragstore.Key, seqs []uint64) {
	e.t.Helper()
	got, err := e.s.After(ctx, k, 0, 1<<30)
	require.NoError(e.t, err)
	var gotSeqs []uint64
	for _, f := range got {
		gotSeqs = append(gotSeqs, f.Seq)
	}
	require.Equal(e.t, seqs, gotSeqs)
	for _, f := range got {
		want := frag(k, f.Seq)
		want.Size = int64(len(media(f.Seq)))
		require.Equal(e.t, want.ServerTime.UnixMilli(), f.ServerTime.UnixMilli())
		want.ProducerTime, want.ServerTime, f.ProducerTime, f.ServerTime = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		require.NotZero(e.t, f.Location, "listed entries carry their Location")
		want.Location = f.Location // opaque: the media read below checks it
		require.Equal(e.t, want, f)
		b, err := e.s.Media(ctx, k, f)
		require.NoError(e.t, err, "media of %d", f.Seq)
		if !bytes.Equal(media(f.Seq), b) {
			require.FailNow(e.t, "media differs", "fragment %d", f.Seq)
		}
		// MediaAppend appends the same bytes after what the buffer holds.
		e.buf, err = e.s.MediaAppend(ctx, k, f, append(e.buf[:0], "prefix"...))
		require.NoError(e.t, err, "media of %d", f.Seq)
		if string(e.buf[:6]) != "prefix" || !bytes.Equal(media(f.Seq), e.buf[6:]) {
			require.FailNow(e.t, "MediaAppend differs", "fragment %d", f.Seq)
		}
	}
}
