package disk

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/keys"
)

// BenchmarkReadSection reads 520-KB encrypted records (a 2-s fragment of 1080p at 2 Mbit/s)
// one after another from a segment in the page cache, as a clip does.
func BenchmarkReadSection(b *testing.B) {
	dir := b.TempDir()
	kf, err := keys.LoadFile(filepath.Join(dir, "kvsd.key"), true)
	if err != nil {
		b.Fatal(err)
	}
	m, err := Open(Config{Dir: filepath.Join(dir, "media"), Keys: keys.NewRing(kf, nil), Buffered: true})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	data := make([]byte, 520<<10)
	var locs []fragstore.Location
	for i := range 32 {
		loc, err := m.Append(context.Background(), goldenKey, fragstore.Record{Seq: uint64(i + 1), Time: time.Now(), Meta: []byte("{}"), Data: data})
		if err != nil {
			b.Fatal(err)
		}
		locs = append(locs, loc)
	}
	f, _, err := m.OpenSegment(context.Background(), goldenKey, locs[0].Segment)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 0, 600<<10)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := range b.N {
		loc := locs[i%len(locs)]
		if loc.Segment != locs[0].Segment {
			b.Fatal("records span segments")
		}
		if buf, err = m.ReadSection(context.Background(), f, loc, buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}
