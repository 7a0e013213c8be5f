package fragstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kvsd/kvsd/internal/catalog/bolt"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/fragstore/disk"
)

// benchDir holds the 30-day index, built once per process (it takes a while) and removed by
// TestMain.
var benchDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		_ = os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

// month is a Store whose index holds 30 days of 2-s fragments of one stream (1,296,000
// entries) and no media.
var month struct {
	once sync.Once
	s    *fragstore.Store
	err  error
}

const (
	monthFragments = 30 * 24 * 3600 / 2
	fragmentEvery  = 2 * time.Second
)

func monthStore(b *testing.B) *fragstore.Store {
	month.once.Do(func() {
		start := time.Now()
		month.s, month.err = buildMonth()
		var size int64
		if fi, err := os.Stat(filepath.Join(benchDir, "catalog.db")); err == nil {
			size = fi.Size()
		}
		b.Logf("built a %d-fragment index in %v, file %d MiB", monthFragments, time.Since(start).Round(time.Millisecond), size>>20)
	})
	if month.err != nil {
		b.Fatal(month.err)
	}
	return month.s
}

func buildMonth() (*fragstore.Store, error) {
	dir, err := os.MkdirTemp("", "fragstore-bench-")
	if err != nil {
		return nil, err
	}
	benchDir = dir
	db, err := bolt.Open(filepath.Join(dir, "catalog.db"))
	if err != nil {
		return nil, err
	}
	ix := db
	const chunk = 50000
	entries := make([]fragstore.Entry, 0, chunk)
	for seq := uint64(1); seq <= monthFragments; seq++ {
		p := base.Add(time.Duration(seq-1) * fragmentEvery)
		f := &fragment.Fragment{
			Seq: seq, Number: fragment.FormatNumber(key.CreatedMs, seq), Timecode: uint64(p.UnixMilli()),
			ProducerTime: p, ServerTime: p.Add(600 * time.Millisecond), Duration: fragmentEvery,
			Size: 500000, HeaderID: headerID,
		}
		loc := fragstore.Location{Segment: (seq-1)/15*15 + 1, Offset: int64((seq-1)%15) * 500100, Length: 500000}
		entries = append(entries, fragstore.Entry{Fragment: f, Location: loc})
		if len(entries) == chunk || seq == monthFragments {
			if err := ix.Import(context.Background(), key, map[string][]byte{headerID: header}, entries); err != nil {
				return nil, err
			}
			entries = entries[:0]
		}
	}
	m, err := disk.Open(disk.Config{Dir: filepath.Join(dir, "media")})
	if err != nil {
		return nil, err
	}
	return fragstore.Open(fragstore.Config{Media: m, Index: ix})
}

// BenchmarkListHourOf30Days is ListFragments over a random hour of a 30-day stream: 1800
// fragments, in pages of 1000 through the cursor. One op is the whole hour; p50/p99 are of
// the hours.
func BenchmarkListHourOf30Days(b *testing.B) {
	s := monthStore(b)
	r := rand.New(rand.NewPCG(1, 2))
	var lat []time.Duration
	total := 0
	for b.Loop() {
		from := base.Add(time.Duration(r.Int64N(int64(30*24*time.Hour - time.Hour))))
		start := time.Now()
		var cur fragstore.Cursor
		n := 0
		for {
			fs, next, err := s.List(ctx, key, fragstore.ProducerTime, from, from.Add(time.Hour), cur, 1000)
			if err != nil {
				b.Fatal(err)
			}
			n += len(fs)
			if next.String() == "" {
				break
			}
			cur = next
		}
		lat = append(lat, time.Since(start))
		if n < 1800 || n > 1801 {
			b.Fatalf("listed %d fragments in an hour", n)
		}
		total += n
	}
	reportLatency(b, "", lat)
	b.ReportMetric(float64(total)/float64(len(lat)), "fragments/op")
}

// reportLatency adds p50 and p99 in ms.
func reportLatency(b *testing.B, prefix string, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), prefix+"p50-ms")
	b.ReportMetric(q(0.99), prefix+"p99-ms")
}

// BenchmarkAppend is one stream appending 500 KB fragments back to back, each waiting for its
// own commit: media fdatasync, then the index commit (the group commit with nothing to group).
func BenchmarkAppend(b *testing.B) {
	e := openEnv(b, b.TempDir())
	data := make([]byte, 500_000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	b.SetBytes(int64(len(data)))
	seq := uint64(0)
	var lat []time.Duration
	for b.Loop() {
		seq++
		start := time.Now()
		if err := e.s.Append(ctx, key, header, frag(key, seq), data); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	reportLatency(b, "", lat)
}

// timedIndex records how long each group commit (one index transaction) takes.
type timedIndex struct {
	fragstore.Index
	mu   sync.Mutex
	puts []time.Duration
}

func (t *timedIndex) PutFragments(ctx context.Context, puts []fragstore.Put) error {
	start := time.Now()
	err := t.Index.PutFragments(ctx, puts)
	t.mu.Lock()
	t.puts = append(t.puts, time.Since(start))
	t.mu.Unlock()
	return err
}

// BenchmarkAppend200Cameras: 200 streams, each appending one fragment every 2 s (spread over
// the 2 s), as a busy kvsd sees them. One op is one 2-s round of 200 fragments; run it with
// -benchtime=10x or so for a stable p99. Reports the index commit (Put) and the whole Append.
func BenchmarkAppend200Cameras(b *testing.B) {
	// 64 KiB keeps the disk traffic modest: this is about commits. (With real 500 KB fragments,
	// 50 MB/s in all, p99 was 16 ms per Append on the 2-core development VM.)
	const cameras, fragSize = 200, 64 << 10
	e := openEnv(b, b.TempDir())
	e.close()
	e.openBackends()
	ti := &timedIndex{Index: e.db}
	s, err := fragstore.Open(fragstore.Config{Media: e.media, Index: ti})
	if err != nil {
		b.Fatal(err)
	}
	e.s = s
	data := make([]byte, fragSize)
	seqs := make([]uint64, cameras)
	var mu sync.Mutex
	var appends []time.Duration
	for b.Loop() {
		var wg sync.WaitGroup
		for c := range cameras {
			k := fragstore.Key{Name: fmt.Sprintf("cam%03d", c), CreatedMs: 1700000000000}
			wg.Go(func() {
				time.Sleep(time.Duration(c) * 2 * time.Second / cameras)
				seqs[c]++
				start := time.Now()
				if err := s.Append(ctx, k, header, frag(k, seqs[c]), data); err != nil {
					b.Error(err)
				}
				mu.Lock()
				appends = append(appends, time.Since(start))
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	reportLatency(b, "put-", ti.puts)
	reportLatency(b, "append-", appends)
}
